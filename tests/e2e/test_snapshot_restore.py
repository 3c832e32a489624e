"""
Snapshots and the MySQL and Redis engines over real SSH on the sandbox: back up, damage
the data, see the concrete diff, restore, prove it with fingerprints; refusals of corrupt
snapshots and broken dumps leave live data exactly as it was. (That no password leaks,
sampled on the hosts' command lines throughout a backup and a rollback, is
tests/reliability/test_secrets.py.)

sandbox-1 holds Redis as a cache (flushed by pattern), sandbox-2 as state (RDB restore).
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import Sandbox, SandboxHost, redis_cli, sql

ROOT = "/var/backups/layra"
MYSQL_ONLY = {"mysql": {"engine": "mysql", "service": "mysql", "password_key": "MYSQL_ROOT_PASSWORD",
                        "databases": ["layra"]}}


def manifest(host: SandboxHost, snapshot_id: str) -> dict:
    return json.loads(host.ssh(f"cat {ROOT}/{snapshot_id}/manifest.json"))


def backup(sandbox: Sandbox, label: str, *args: str) -> str:
    run = sandbox.pyinfra("backup.py", "--data", f"label={label}", *args)
    assert run.ok, run.output
    ids = set(re.findall(rf"snapshot (\d{{8}}T\d{{6}}Z-{label})", run.output))
    assert len(ids) == 1, run.output
    return ids.pop()


def damage(host: SandboxHost):
    sql(host, "DELETE FROM knowledge_bases ORDER BY id LIMIT 1; "
              "CREATE TABLE IF NOT EXISTS extra (x INT); INSERT INTO extra VALUES (1), (2)")


@pytest.fixture(scope="module", autouse=True)
def clean_slate(sandbox: Sandbox):
    sandbox.at_good_release()
    for host in sandbox.hosts:
        host.ssh(f"rm -rf {ROOT}")
        sql(host, "DROP TABLE IF EXISTS extra")
        # `damage` deletes a knowledge base per run: top them up so reruns on one sandbox work
        sql(host, "INSERT INTO knowledge_bases (name, owner_id, created_at) "
                  "SELECT CONCAT('kb-e2e-', seq), 1, NOW() FROM seq_1_to_3 "
                  "WHERE (SELECT COUNT(*) FROM knowledge_bases) < 3")
    yield


def test_backup_writes_a_whole_verified_snapshot_with_checksums_and_private_permissions(sandbox: Sandbox):
    snapshot_id = backup(sandbox, "whole")

    for host in sandbox.hosts:
        assert host.ssh(f"ls {ROOT} | grep -c partial || true") == "0"
        found = manifest(host, snapshot_id)
        assert found["id"] == snapshot_id and found["stack"]["commit"] == host.commit()
        assert "mysql.layra" in found["parts"]
        sums = dict(line.split("  ", 1)[::-1] for line in
                    host.ssh(f"cd {ROOT}/{snapshot_id} && find . -type f ! -name manifest.json ! -name .verified"
                             " -printf '%P\\n'"
                             " | xargs -d '\\n' sha256sum").splitlines())
        assert {name: entry["sha256"] for name, entry in found["files"].items()} == sums
        # the backup read back what it wrote: the snapshot is verified from birth
        assert host.ssh(f"cat {ROOT}/{snapshot_id}/.verified").startswith("20")
        modes = set(host.ssh(f"find {ROOT}/{snapshot_id} -type d -printf 'd%m\\n' -o -type f -printf 'f%m\\n'").split())
        assert modes == {"d700", "f600"}
    assert "redis" in manifest(sandbox.hosts[1], snapshot_id)["parts"]
    assert "redis" not in manifest(sandbox.hosts[0], snapshot_id)["parts"]


def test_rollback_restores_rows_tables_and_every_redis_database_shows_the_diff_first_and_then_changes_nothing(
        sandbox: Sandbox, tmp_path):
    state = sandbox.hosts[1]  # its Redis holds state (rdb: true), in databases 0 and 2 as Layra's
    for host in sandbox.hosts:
        sql(host, "CREATE OR REPLACE VIEW kb_names AS SELECT name FROM knowledge_bases; "
                  "DROP PROCEDURE IF EXISTS kb_count; CREATE PROCEDURE kb_count() SELECT COUNT(*) FROM knowledge_bases")
    redis_cli(state, "-n", "0", "SET", "flags:e2e", "before")
    redis_cli(state, "-n", "1", "SET", "user:prefs:e2e", "dark")
    redis_cli(state, "-n", "2", "HSET", "task:e2e", "state", "running")
    snapshot_id = backup(sandbox, "restore")
    backed_up = {host.name: sql(host, "SELECT COUNT(*) FROM knowledge_bases") for host in sandbox.hosts}
    for host in sandbox.hosts:
        damage(host)
        sql(host, "DROP VIEW kb_names; DROP PROCEDURE kb_count")
    written_after = f"state:after-backup:{snapshot_id}"   # unique: reruns never find it in a snapshot
    redis_cli(state, "SET", written_after, "1")
    redis_cli(state, "-n", "0", "SET", "flags:e2e", "after")
    redis_cli(state, "-n", "1", "DEL", "user:prefs:e2e")
    redis_cli(state, "-n", "2", "HSET", "task:e2e", "state", "damaged")
    for host in sandbox.hosts:  # sessions of users logged in since: a cache, flushed
        redis_cli(host, "-n", "1", "SET", f"user:session:e2e-{snapshot_id}", "x")
    damaged = {host.name: sql(host, "SELECT COUNT(*) FROM knowledge_bases") for host in sandbox.hosts}

    dry = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}", "--dry",
                          "--data", f"plan_out={tmp_path / 'plan.json'}")

    assert dry.ok, dry.output
    assert "mysql/layra: restore from the snapshot" in dry.output
    for host in sandbox.hosts:
        assert (f"[{host.name}] plan:   knowledge_bases: {int(backed_up[host.name]) - 1} -> "
                f"{backed_up[host.name]} rows") in dry.output
    assert "table extra dropped (kept in the __pre_restore database)" in dry.output
    assert re.search(r"\[sandbox-2\] plan: redis: restore RDB, [\d,?]+ -> [\d,]+ keys?", dry.output)
    assert re.search(r"\[sandbox-1\] plan: redis: [\d,]+ keys? match(es)? db1 user:session:\* \(flush\)", dry.output)
    assert re.search(r"\[sandbox-1\] plan: redis: [\d,]+ keys? match(es)? db2 kb:cache:\*", dry.output)
    assert {host.name: sql(host, "SELECT COUNT(*) FROM knowledge_bases") for host in sandbox.hosts} == damaged
    assert next(plan for plan in json.loads((tmp_path / "plan.json").read_text())["hosts"]["sandbox-1"]
                if plan["component"] == "mysql/layra")["tables_dropped"] == ["extra"]

    run = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}")

    assert run.ok, run.output
    assert run.output.count("ok   phase 4 mysql/layra fingerprint") == len(sandbox.hosts)
    # the copy checked before the window, told by its tables' InnoDB ids and last writes
    assert run.output.count(", unwritten since (want the snapshot's: ") == len(sandbox.hosts), run.output
    for host in sandbox.hosts:
        assert sql(host, "SELECT COUNT(*) FROM knowledge_bases") == backed_up[host.name]
        assert sql(host, "SHOW TABLES LIKE 'extra'") == ""
        assert sql(host, "SELECT COUNT(*) FROM kb_names") == backed_up[host.name]
        assert sql(host, "SHOW PROCEDURE STATUS WHERE Db = 'layra' AND Name = 'kb_count'").count("kb_count") == 1
    assert redis_cli(state, "EXISTS", written_after) == "0"
    # the RDB brought every database back; the sessions were flushed after it
    assert redis_cli(state, "-n", "0", "GET", "flags:e2e") == "before"
    assert redis_cli(state, "-n", "1", "GET", "user:prefs:e2e") == "dark"
    assert redis_cli(state, "-n", "2", "HGET", "task:e2e", "state") == "running"
    assert re.search(r"ok   phase 4 redis fingerprint: 3 databases, [\d,]+ keys \(db0 [\d,]+, db1 1, db2 [\d,]+\)",
                     run.output), run.output
    for host in sandbox.hosts:  # (phase 3 logged in since: its own session is there)
        assert redis_cli(host, "-n", "1", "EXISTS", f"user:session:e2e-{snapshot_id}") == "0"
    # staged before the window, swapped in at a restart; the data it displaced (the writes
    # since the backup) kept in the safety snapshot, counted per database, then dropped
    record = run.record()["hosts"][state.name]
    kept = manifest(state, record["safety_snapshot"])["parts"]["redis"]
    assert kept["displaced"] is True
    aside, restored = record["displaced"]["redis"]["db0"]
    assert aside == restored + 1, "the key written after the backup is in the displaced copy"
    assert record["displaced"]["redis"]["db1"] == [0, 1]
    assert state.stack("docker compose exec -T redis ls -A /data </dev/null").split() == ["dump.rdb"]

    again = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}", "-v")

    assert again.ok, again.output
    totals = again.totals()
    assert (totals["changed"], totals["error"]) == (0, 0), again.output
    # the plan read every fingerprint once; nothing restored, nothing read again
    assert again.output.count(f"every part matched snapshot {snapshot_id} when planned: nothing to restore, "
                              "phase 4 not repeated") == len(sandbox.hosts), again.output
    assert "noop: mysql/layra already matches the snapshot" not in again.output


def test_a_dump_that_breaks_midway_leaves_the_live_database_exactly_as_it_was(sandbox: Sandbox):
    host = sandbox.hosts[0]
    only_mysql = ("--limit", host.name, "--data", f"layra_components={json.dumps(MYSQL_ONLY)}")
    snapshot_id = backup(sandbox, "broken", *only_mysql)
    damage(host)
    before = sql(host, "CHECKSUM TABLE knowledge_bases, extra, users")
    directory = f"{ROOT}/{snapshot_id}"
    # A dump cut off in the middle of an INSERT, its checksum recorded as if it were whole.
    host.ssh(
        f"cd {directory} && zstd -q -dc mysql.layra.sql.zst | head -c 2500 | zstd -q > broken.zst && "
        "printf 'INSERT INTO users VALUES (1,' | zstd -q >> broken.zst && mv broken.zst mysql.layra.sql.zst && "
        "sum=$(sha256sum mysql.layra.sql.zst | cut -d' ' -f1) && size=$(stat -c %s mysql.layra.sql.zst) && "
        "python3 -c 'import json,sys; m=json.load(open(\"manifest.json\")); "
        "m[\"files\"][\"mysql.layra.sql.zst\"].update(sha256=sys.argv[1], size=int(sys.argv[2])); "
        "json.dump(m, open(\"manifest.json\", \"w\"))' \"$sum\" \"$size\" && chmod 0600 *"
    )

    run = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}", *only_mysql)

    assert not run.ok
    assert "did not load; mysql/layra was not touched" in run.output
    assert sql(host, "CHECKSUM TABLE knowledge_bases, extra, users") == before
    assert sql(host, "SHOW DATABASES LIKE 'layra\\_\\_restore'") == ""


def test_a_backup_that_fails_midway_leaves_no_snapshot_and_no_partial_directory(sandbox: Sandbox):
    host = sandbox.hosts[0]
    before = host.ssh(f"ls -A {ROOT}")
    components = json.dumps({"mysql": {**MYSQL_ONLY["mysql"], "databases": ["layra", "no_such_db"]}})

    run = sandbox.pyinfra("backup.py", "--limit", host.name, "--data", "label=fails",
                          "--data", f"layra_components={components}")

    assert not run.ok
    assert "database 'no_such_db' does not exist in service 'mysql'" in run.output
    assert "failed: no snapshot was kept" in run.output
    assert "Traceback" not in run.output
    assert host.ssh(f"ls -A {ROOT}") == before


def test_a_backup_that_cannot_fit_is_refused_saying_how_much_is_missing(sandbox: Sandbox):
    host = sandbox.hosts[0]
    host.ssh("mkdir -p /mnt/tiny && (mountpoint -q /mnt/tiny || mount -t tmpfs -o size=1m tmpfs /mnt/tiny)")
    try:
        run = sandbox.pyinfra("backup.py", "--limit", host.name, "--data", "layra_snapshot_root=/mnt/tiny/snapshots")
        assert not run.ok
        assert re.search(r"a backup needs about \d+ MiB under /mnt/tiny/snapshots, 1 MiB are free on /mnt/tiny: "
                         r"\d+ MiB missing", run.output), run.output
        assert host.ssh("ls -A /mnt/tiny") == ""
    finally:
        host.ssh("umount /mnt/tiny")
