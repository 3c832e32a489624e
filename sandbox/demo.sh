#!/usr/bin/env bash
# The demo, on the sandbox hosts (`make demo` brings them up first):
#   a snapshot is taken; release 1.1.0 ships and its migration damages data; verification
#   catches it; the dry run shows what a rollback changes; the watcher sees the health
#   check fail twice and runs the rollback itself (maintenance, safety snapshot, stack,
#   restores, caches, verify) with the incident's times; a second run changes nothing;
#   the report (true detection and decision times) and post-mortem draft are written;
#   last, a point-in-time rollback keeps the users' writes made before the release (MySQL's
#   binlog replayed onto the snapshot up to a point) and names the ones made after it.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${LAYRA_SANDBOX_DIR:-$PWD/.sandbox}
export LAYRA_RUNS_DIR=${LAYRA_RUNS_DIR:-$PWD/runs}
BIN=${VENV:-.venv}/bin
PYINFRA=("$BIN/pyinfra" -y inventories/sandbox.py)
ssh_host() {
  ssh -i "$STATE/id_ed25519" -o UserKnownHostsFile="$STATE/known_hosts" -o StrictHostKeyChecking=yes \
      -o BatchMode=yes -o IdentitiesOnly=yes "root@$1" "$2"
}
sql_on() {  # ADDRESS STATEMENT: run by the host's MariaDB client, the password read there
  # shellcheck disable=SC2016 # $(sed ...) runs on the host, in the remote shell
  ssh_host "$1" 'cd /srv/layra && MYSQL_PWD=$(sed -n "s/^MYSQL_ROOT_PASSWORD=//p" .env) docker compose exec -T -e MYSQL_PWD mysql mariadb -uroot -N -B layra -e "'"$2"'" </dev/null'
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
utc() { date -u +%Y-%m-%dT%H:%M:%SZ; }
hosts=$(python3 -c 'import json,sys; print(" ".join(h["address"] for h in json.load(open(sys.argv[1]))))' "$STATE/hosts.json")

step "0. Every host at the good release, 1.0.0, with its seeded data"
"${PYINFRA[@]}" rollback.py --data commit=v1.0.0 >"$STATE/demo-start.log" 2>&1 \
  || { tail -n 30 "$STATE/demo-start.log"; echo "demo: could not bring the hosts to 1.0.0"; exit 1; }
for address in $hosts; do   # owners as seeded (an earlier 1.1.0, e.g. from the tests, reset them)
  sql_on "$address" "UPDATE knowledge_bases SET owner_id = 1 WHERE owner_id = 0; DELETE FROM knowledge_bases WHERE name LIKE 'created by a user%'"
done

step "1. Before shipping, a snapshot of every host (backup.py): each component, checksummed and verified"
"${PYINFRA[@]}" backup.py --data label=before-1.1.0 >"$STATE/demo-backup.log" 2>&1 \
  || { tail -n 30 "$STATE/demo-backup.log"; echo "demo: the backup failed (log: $STATE/demo-backup.log)"; exit 1; }
grep -E 'snapshot [^ ]+: (about|all)' "$STATE/demo-backup.log" || true
snapshot=$(grep -oE 'snapshot [0-9]{8}T[0-9]{6}Z-before-1\.1\.0' "$STATE/demo-backup.log" | head -n 1 | cut -d' ' -f2)

step "1b. Users keep working: a knowledge base created on every host after the snapshot, before the release"
for address in $hosts; do
  sql_on "$address" "INSERT INTO knowledge_bases (name, owner_id, created_at) VALUES ('created by a user before 1.1.0', 2, NOW())"
done
sleep 1; point=$(utc); sleep 1
echo "demo: the point just before the release: $point"

step "2. Release 1.1.0 ships by hand (git checkout + compose up); its migration damages data"
for address in $hosts; do
  ssh_host "$address" 'cd /srv/layra && git checkout -q v1.1.0 && docker compose up -d --build --quiet-pull 2>&1 | tail -n 1 && docker compose exec -T nginx nginx -s reload'
done
sleep 6

step "3. Verification catches it (expected to fail: health 503, knowledge-base owners lost)"
{ "${PYINFRA[@]}" verify.py --data snapshot=latest 2>&1 || true; } | grep -E 'FAIL ' | head -n 12 || true

step "4. Dry run: what rolling back to the snapshot changes, per host and component (nothing applied)"
"${PYINFRA[@]}" rollback.py --data snapshot=latest --data plan_out="$STATE/plan.json" --dry 2>&1 | grep 'plan:' || true
echo "demo: the same plan as JSON in $STATE/plan.json"

step "5. The watcher: two failed health checks (a CRITICAL rule) and it rolls every host back by itself"
# (maintenance on, safety snapshot, stack, restores, caches, maintenance off, verify 1-4)
"$BIN/layra-rollback" watch --inventory inventories/sandbox.py --snapshot latest --interval 3s --duration 5m \
    </dev/null >"$STATE/demo-rollback.log" 2>&1 \
  || { tail -n 40 "$STATE/demo-rollback.log"; echo "demo: the rollback failed (log: $STATE/demo-rollback.log)"; exit 1; }
grep -E '^(--> (sandbox|Watching)|!!!|==>)|health-check|Starting operation|phase [1-4]|: (started|done in)' \
    "$STATE/demo-rollback.log" | sed -e 's/^--> Starting operation: Roll back the Layra stack | /-- /' \
  | grep -v 'Loaded fact' | awk '!seen[$0]++' | head -n 60 || true
run=$(sed -n 's/^--> Rolled back: run \([^ ]*\) succeeded.*/\1/p' "$STATE/demo-rollback.log")

step "6. A second rollback finds every host at the target and changes nothing"
"${PYINFRA[@]}" rollback.py --data snapshot=latest 2>&1 | grep -E 'Grand total|Run ' || true

step "7. Point-in-time: the writes users made before the release, back (the watcher's rollback to the snapshot dropped them)"
for address in $hosts; do
  sql_on "$address" "INSERT INTO knowledge_bases (name, owner_id, created_at) VALUES ('created by a user after the rollback', 3, NOW())"
done
"${PYINFRA[@]}" rollback.py --data snapshot="$snapshot" --data until="$point" --dry 2>&1 \
  | grep -E 'plan: mysql|plan:   (replay|after the point)|plan:     ' || true
"${PYINFRA[@]}" rollback.py --data snapshot="$snapshot" --data until="$point" >"$STATE/demo-point-in-time.log" 2>&1 \
  || { tail -n 40 "$STATE/demo-point-in-time.log"; echo "demo: the point-in-time rollback failed"; exit 1; }
grep -E 'phase 4 mysql|Run ' "$STATE/demo-point-in-time.log" || true
echo "demo: knowledge bases on the first host now (the user's earlier one kept; the later one is in the safety snapshot's SQL):"
sql_on "${hosts%% *}" "SELECT id, name, owner_id FROM knowledge_bases ORDER BY id"

step "8. The report of the watcher's rollback, with its timeline against the RTO targets"
"$BIN/layra-rollback" report "$run" --runs-dir "$LAYRA_RUNS_DIR"
"$BIN/layra-rollback" report "$run" --runs-dir "$LAYRA_RUNS_DIR" --stdout | sed -n '/^## Recovery time/,/^## Hosts/p' | head -n 32
echo
echo "demo: report, HTML timeline and post-mortem draft in $LAYRA_RUNS_DIR/$run/"
