"""
A point-in-time rollback on a real sandbox host (sandbox-1's MariaDB keeps a ROW binlog).

A backup; users write rows A; the guarded release of 1.1.0 (migrate.py) saves the binlog
point, its migration takes every knowledge base's owner, and the watch rolls it back to its
own pre-migration snapshot; users write rows B. Then `rollback.py --data snapshot=<the
backup> --data until=migration`: the live database holds the backup's rows plus A, none of
the migration's damage, none of B; B is named in the dry run and in the report and is in
the SQL the safety snapshot exports; a second run changes nothing. A point past a DDL
statement on the database (the watch's rollback's swap) is refused before anything changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import Sandbox, sql

HOST = "sandbox-1"
ROOT = "/var/backups/layra"


def rows(host) -> str:
    return sql(host, "SELECT GROUP_CONCAT(CONCAT(id, ':', name, ':', owner_id) ORDER BY id SEPARATOR ' ') "
                     "FROM knowledge_bases")


def written(host, name: str, owner: int) -> str:
    """Inserts a knowledge base as a user would; its id."""
    return sql(host, f"INSERT INTO knowledge_bases (name, owner_id, created_at) VALUES ('{name}', {owner}, NOW()); "
                     "SELECT LAST_INSERT_ID()")


def record_of(output: str) -> dict:
    paths = re.findall(r"--> Run \S+ (?:succeeded|failed): record (\S+)", output)
    assert paths, output[-3000:]
    return json.loads(Path(paths[-1]).read_text())


@pytest.fixture(scope="module")
def scene(sandbox: Sandbox):
    """The backup, A, the released-and-rolled-back migration, B; the host put back after."""
    host = sandbox.hosts[0]
    run = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", "commit=v1.0.0")
    assert run.ok, run.output[-3000:]
    backup = sandbox.pyinfra("backup.py", "--limit", HOST, "--data", "label=point-in-time")
    assert backup.ok, backup.output[-3000:]
    snapshot = re.search(r"snapshot (\d{8}T\d{6}Z-point-in-time)", backup.output)[1]
    backed_up = rows(host)
    a = [written(host, "written-before-the-release-1", 1), written(host, "written-before-the-release-2", 2)]
    with_a = rows(host)
    release = sandbox.pyinfra("migrate.py", "--limit", HOST, "--data", "commit=v1.1.0",
                              "--data", "watch_window=20s", "--data", "watch_interval=3s")
    assert "==> Release v1.1.0 rolled back to snapshot" in release.output, release.output[-3000:]
    point = json.loads(host.ssh("cat /srv/layra/.git/layra-release-point.mysql.json"))
    b = written(host, "written-after-the-release", 3)
    yield {"host": host, "snapshot": snapshot, "backed_up": backed_up, "a": a, "with_a": with_a, "b": b,
           "point": point}
    undo = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", f"snapshot={snapshot}",
                           "--data", "safety_snapshot=skip")
    assert undo.ok, undo.output[-3000:]
    host.ssh(f"rm -rf {ROOT}/{snapshot}")


def test_the_dry_run_names_what_is_replayed_and_the_writes_after_the_point_and_changes_nothing(
        sandbox: Sandbox, scene: dict):
    host = scene["host"]
    before = rows(host)
    dry = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", f"snapshot={scene['snapshot']}",
                          "--data", "until=migration", "--dry")
    assert dry.ok, dry.output[-3000:]
    point = f"{scene['point']['file']}:{scene['point']['position']}"
    assert re.search(rf"\[{HOST}\] plan:   replay the binlog \S+ -> {re.escape(point)} \(the release's, [^)]+\): "
                     r"\d+ transactions?; knowledge_bases \+2 inserted, 0 updated, 0 deleted", dry.output), dry.output
    after = re.search(rf"\[{HOST}\] plan:     knowledge_bases: (\d+) inserted, (\d+) updated, 0 deleted: (.*)",
                      dry.output)
    assert after and f"INSERT {scene['b']}" in after[3], dry.output
    assert int(after[2]) >= 1, "the migration's update of the owners is after the point"
    assert rows(host) == before


def test_the_rollback_keeps_the_writes_before_the_migration_and_moves_the_later_ones_aside(
        sandbox: Sandbox, scene: dict):
    host = scene["host"]
    run = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", f"snapshot={scene['snapshot']}",
                          "--data", "until=migration")
    assert run.ok, run.output[-4000:]
    assert rows(host) == scene["with_a"], "the backup's rows, A with their owners, no damage, no B"
    assert sql(host, f"SELECT COUNT(*) FROM knowledge_bases WHERE id = {scene['b']}") == "0"
    assert re.search(rf"\[{HOST}\] ok   phase 4 mysql/layra fingerprint: .* \(want the replayed target's: ", run.output)
    record = record_of(run.output)
    assert record["target"]["until"] == "migration"
    assert any(f"INSERT {scene['b']}" in line for line in record["hosts"][HOST]["plan"])
    safety = record["hosts"][HOST]["safety_snapshot"]
    exported = host.ssh(f"cat {ROOT}/{safety}/mysql.layra.after-point.sql")
    assert "### INSERT INTO `layra`.`knowledge_bases`" in exported and "'written-after-the-release'" in exported
    # the watch's rollback swapped the tables after the point; this run's own swap is not in
    # the export: it ends where this run's window began
    assert exported.count("RENAME TABLE `layra`.`users` TO `layra__pre_restore`.`users`") == 1
    manifest = json.loads(host.ssh(f"cat {ROOT}/{safety}/manifest.json"))
    assert "mysql.layra.after-point.sql" in manifest["files"]

    again = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", f"snapshot={scene['snapshot']}",
                            "--data", "until=migration")
    assert again.ok, again.output[-3000:]
    assert f"[{HOST}] plan: mysql/layra: no change: already the snapshot replayed" in again.output
    assert rows(host) == scene["with_a"]


def test_a_ddl_between_the_snapshot_and_the_point_is_refused_before_anything_changes(sandbox: Sandbox, scene: dict):
    # since the backup, the release and the watch's rollback changed the schema (the swap's
    # RENAME TABLE, a DDL statement): no point after them is reached by replaying row events
    host = scene["host"]
    point = sql(host, "SHOW MASTER STATUS").split("\t")
    before = rows(host)
    refused = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", f"snapshot={scene['snapshot']}",
                              "--data", f"until={point[0]}:{point[1]}")
    assert not refused.ok
    assert (f"mysql/layra: until={point[0]}:{point[1]} refused: a DDL statement on layra between the snapshot "
            "and the point ('") in refused.output, refused.output[-3000:]
    assert "nothing was changed (a rollback to the snapshot alone, without until=, is possible)" in refused.output
    assert rows(host) == before and host.ssh("ls /srv/layra/.git/layra-rollback.lock 2>/dev/null || true") == ""
