#!/usr/bin/env bash
# The demo: a bad release reaches every sandbox host, verification catches it, the dry run
# shows the concrete change, the rollback applies it, verification passes, and a second
# rollback changes nothing. Run by `make demo` after `make sandbox-up`.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${LAYRA_SANDBOX_DIR:-$PWD/.sandbox}
PYINFRA=(${VENV:-.venv}/bin/pyinfra -y inventories/sandbox.py)
ssh_host() {
  ssh -i "$STATE/id_ed25519" -o UserKnownHostsFile="$STATE/known_hosts" -o StrictHostKeyChecking=yes \
      -o BatchMode=yes -o IdentitiesOnly=yes "root@$1" "$2"
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
hosts=$(python3 -c 'import json,sys; print(" ".join(h["address"] for h in json.load(open(sys.argv[1]))))' "$STATE/hosts.json")

step "1. Release 1.1.0 is shipped by hand to every host (git checkout + compose up)"
for address in $hosts; do
  ssh_host "$address" 'cd /srv/layra && git checkout -q v1.1.0 && docker compose up -d --build --quiet-pull 2>&1 | tail -n 2'
done
sleep 5

step "2. Verification catches it (this run is expected to fail)"
"${PYINFRA[@]}" verify.py || echo "demo: verify failed, as it should on the bad release"

step "3. Dry run: what rolling back to v1.0.0 would change, per host (nothing is applied)"
"${PYINFRA[@]}" rollback.py --data commit=v1.0.0 --data plan_out="$STATE/plan.json" --dry
echo "demo: the same plan as JSON: $STATE/plan.json"

step "4. Roll back to v1.0.0 on every host"
start=$(date +%s.%N)
"${PYINFRA[@]}" rollback.py --data commit=v1.0.0
echo "demo: rollback took $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$start" "$(date +%s.%N)") s"

step "5. Verification passes"
"${PYINFRA[@]}" verify.py

step "6. A second rollback finds every host at the target and changes nothing"
"${PYINFRA[@]}" rollback.py --data commit=v1.0.0
