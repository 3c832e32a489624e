"""
The watcher and the guarded release on a real sandbox host (sandbox-1, over SSH).

Release 1.1.0 shipped by hand fails its health check behind nginx (503) and its migration
takes every knowledge base's owner. `layra-rollback watch --dry-run` decides and changes
nothing; `layra-rollback watch` rolls back by itself and its run record carries the
incident's detection and decision times; `migrate.py` of 1.1.0 rolls itself back.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyinfra_deploys.report import rto

from .conftest import ROOT, RUNS, STATE, Sandbox, sql
from .test_rollback_run import owners, seconds

HOST = "sandbox-1"
INTERVAL = "3s"


def layra(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyinfra_deploys.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
        env={**os.environ, "LAYRA_SANDBOX_DIR": str(STATE), "LAYRA_RUNS_DIR": str(RUNS), "COLUMNS": "200"},
    )


def host_state(host) -> dict:
    """What a dry run must leave as it was: commit, containers, data, maintenance, snapshots."""
    return {"commit": host.commit(), "containers": host.containers(), "owners": owners(host),
            "env": host.stack("sed -n 's/^MAINTENANCE_MODE=//p' .env"),
            "snapshots": host.ssh("ls -la --time-style=+%s /var/backups/layra")}


def last_record(output: str) -> dict:
    """The record of the run that printed its run line last (a rollback it ran prints first)."""
    paths = re.findall(r"--> Run \S+ (?:succeeded|failed): record (\S+)", output)
    assert paths, output[-3000:]
    return json.loads(Path(paths[-1]).read_text())


def runs_of(kind: str) -> set[str]:
    """The runs of that kind that reached sandbox-1."""
    return {path.parent.name for path in RUNS.glob(f"*-{kind}/record.json")
            if HOST in json.loads(path.read_text()).get("hosts", {})}


@pytest.fixture(scope="module")
def good_snapshot(sandbox: Sandbox) -> str:
    """sandbox-1 at 1.0.0, every knowledge base owned, and a verified snapshot of that."""
    run = sandbox.pyinfra("rollback.py", "--limit", HOST, "--data", "commit=v1.0.0")
    assert run.ok, run.output
    host = sandbox.hosts[0]
    sql(host, "UPDATE knowledge_bases SET owner_id = 1 WHERE owner_id = 0")
    snapshot_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-e2e-watch"
    run = sandbox.pyinfra("backup.py", "--limit", HOST, "--data", f"snapshot={snapshot_id}")
    assert run.ok, run.output
    return snapshot_id


@pytest.fixture(scope="module")
def bad_release(sandbox: Sandbox, good_snapshot: str):
    host = sandbox.hosts[0]
    owned = owners(host)
    host.deploy_by_hand("v1.1.0")
    for _ in range(60):
        if set(owners(host).split(",")) == {"0"} and host.health() == "503":
            break
        time.sleep(1)
    assert host.health() == "503" and set(owners(host).split(",")) == {"0"}, "1.1.0 did not go bad"
    return owned


def test_triggers_check_on_the_bad_release_exits_with_rollback(sandbox: Sandbox, bad_release):
    checked = layra("triggers", "check", "--inventory", "inventories/sandbox.py", "--limit", HOST,
                    "--samples", "2", "--interval", "2s")
    assert checked.returncode == 5, checked.stdout + checked.stderr
    assert "decision: ROLLBACK (CRITICAL: health-check on sandbox-1)" in checked.stdout
    assert "health_failed=1 (HTTP 503)" in checked.stdout


def test_a_dry_run_watch_decides_to_roll_back_but_changes_nothing_on_the_host(sandbox: Sandbox, bad_release,
                                                                             good_snapshot: str):
    host = sandbox.hosts[0]
    before, rollbacks = host_state(host), runs_of("rollback")
    watched = layra("watch", "--inventory", "inventories/sandbox.py", "--limit", HOST, "--snapshot", good_snapshot,
                    "--interval", INTERVAL, "--duration", "15s", "--dry-run")
    output = watched.stdout + watched.stderr
    assert watched.returncode == 0, output
    assert f"--> {HOST}: rollback target {good_snapshot}" in output
    assert "DRY RUN: would roll back now: pyinfra" in output and f"snapshot={good_snapshot}" in output
    assert "==> Rolling back" not in output
    assert host_state(host) == before, "a dry run changed the host"
    assert runs_of("rollback") == rollbacks


def test_a_failing_health_check_rolls_back_by_itself_and_the_report_shows_every_rto_bucket(
        sandbox: Sandbox, bad_release, good_snapshot: str, tmp_path):
    host = sandbox.hosts[0]
    alerts = tmp_path / "alerts.jsonl"
    watched = layra("watch", "--inventory", "inventories/sandbox.py", "--limit", HOST, "--snapshot", good_snapshot,
                    "--interval", INTERVAL, "--duration", "10m",
                    "--hook-command", f"sh -c 'cat >> {alerts}; echo >> {alerts}'")
    output = watched.stdout + watched.stderr
    assert watched.returncode == 0, output[-4000:]
    assert "!!! CRITICAL ROLLBACK: firing: rule health-check" in output

    run_id = re.search(r"--> Rolled back: run (\S+) succeeded", output).group(1)
    run = RUNS / run_id / "record.json"
    record = json.loads(run.read_text())
    assert record["status"] == "succeeded" and record["target"]["snapshot"] == good_snapshot
    incident = record["incident"]
    assert incident["trigger"].startswith("automatic: rule health-check (health_failed >= 1, 2 consecutive")
    detected, decided = seconds(incident["detected_at"]), seconds(incident["decided_at"])
    # two failed checks, one interval apart: detected within two polls of the first failure
    assert 2.5 <= detected - seconds(incident["started_at"]) <= 10
    assert 0 <= decided - detected < 5
    buckets = {bucket["name"]: bucket for bucket in rto(record)}
    assert set(buckets) == {"detection", "decision", "execution", "verification", "total"}
    assert {name: bucket["status"] for name, bucket in buckets.items()} == dict.fromkeys(buckets, "met"), buckets
    assert "not recorded" not in (run.parent / "report.md").read_text()

    assert host.commit() == host.commit("v1.0.0") and host.health() == "200"
    assert owners(host) == bad_release, "the knowledge bases' owners are back"
    events = [json.loads(line)["event"] for line in alerts.read_text().splitlines() if line.strip()]
    assert events[:1] == ["firing"] and events[-2:] == ["rollback_started", "rollback_finished"]
    detection_to_verified = seconds(record["ended_at"]) - detected
    (RUNS / "watch-detection-to-verified.txt").write_text(f"{detection_to_verified:.1f}\n")
    assert detection_to_verified < 600, "the RTO target"


def test_a_guarded_release_of_a_bad_commit_rolls_itself_back_and_verifies(sandbox: Sandbox, good_snapshot: str):
    host = sandbox.hosts[0]
    owned = owners(host)
    started = time.time()
    run = sandbox.pyinfra("migrate.py", "--limit", HOST, "--data", "commit=v1.1.0",
                          "--data", "watch_window=30s", "--data", f"watch_interval={INTERVAL}")
    assert not run.ok, "a release that was rolled back ends red"
    assert "==> Release v1.1.0 rolled back to snapshot" in run.output
    assert "release v1.1.0 did not hold" in run.output
    migrate = last_record(run.output)
    assert migrate["kind"] == "migrate" and migrate["release_outcome"] == "rolled back"
    assert migrate["incident"]["trigger"] == f"automatic: release v1.1.0 failed to deploy on {HOST}"
    snapshot_id = migrate["pre_migration_snapshot"]
    assert host.ssh(f"test -f /var/backups/layra/{snapshot_id}/.verified && echo verified") == "verified"
    rollback = json.loads((RUNS / migrate["rollback_run"] / "record.json").read_text())
    assert rollback["status"] == "succeeded" and rollback["target"]["snapshot"] == snapshot_id
    assert seconds(rollback["started_at"]) >= started
    checks = {(c["phase"], c["name"]): c["ok"] for h in rollback["hosts"].values() for c in h["checks"]}
    assert {phase for phase, _ in checks} == {1, 2, 3, 4} and all(checks.values())
    assert host.commit() == host.commit("v1.0.0") and host.health() == "200" and owners(host) == owned


def test_a_guarded_release_that_stays_healthy_holds_and_ends_green(sandbox: Sandbox, good_snapshot: str):
    host = sandbox.hosts[0]
    run = sandbox.pyinfra("migrate.py", "--limit", HOST, "--data", "commit=v1.0.0",
                          "--data", "watch_window=6s", "--data", f"watch_interval={INTERVAL}")
    assert run.ok, run.output[-4000:]
    assert "Release v1.0.0 held for 6s: no CRITICAL rule fired" in run.output
    migrate = last_record(run.output)
    assert migrate["release_outcome"] == "held" and "rollback_run" not in migrate
    assert host.commit() == host.commit("v1.0.0") and host.health() == "200"


def test_a_guarded_release_of_an_unknown_commit_is_refused_before_any_snapshot(sandbox: Sandbox):
    host = sandbox.hosts[0]
    before = host.ssh("ls /var/backups/layra")
    run = sandbox.pyinfra("migrate.py", "--limit", HOST, "--data", "commit=v9.9.9", "--data", "watch_window=5s")
    assert not run.ok
    assert "commit 'v9.9.9' is not in the repository at /srv/layra" in run.output
    assert host.ssh("ls /var/backups/layra") == before, "no pre-migration snapshot for a release that cannot ship"
    assert host.commit() == host.commit("v1.0.0") and host.health() == "200"
