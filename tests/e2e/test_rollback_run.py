"""
The whole rollback as an operator runs it during an incident, on both sandbox hosts:
release 1.1.0 ships, its migration damages data (every knowledge base loses its owner),
and `rollback.py --data snapshot=<before the release>` brings every host back: maintenance
on, safety snapshot, stack at the snapshot's commit, restores in parallel, caches flushed,
phase 4, maintenance off, phases 1-3, run record and report.

A client on sandbox-1 loops on a read (the knowledge-base list) and a write (create a
knowledge base) through nginx while the rollback runs. sandbox-1 keeps Redis as a cache;
sandbox-2 restores Redis from its RDB, which restarts Redis (reads that need Redis pause
there: see the README), so the client runs on sandbox-1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import ROOT, RUNS, STACK, STATE, Sandbox, SandboxHost, sql

SNAPSHOTS = "/var/backups/layra"
DROPIN = f"{STACK}/nginx/layra.d/maintenance.conf"

CLIENT = r"""
cd /srv/layra
password=$(sed -n 's/^LAYRA_DEMO_PASSWORD=//p' .env)
api=http://127.0.0.1:8090/api/v1
login() {
  token=$(printf '{"username":"demo","password":"%s"}' "$password" \
    | curl -s -m 5 --data-binary @- -H 'Content-Type: application/json' "$api/auth/login" \
    | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')
}
read_list() {
  curl -s -o /dev/null -m 5 -w '%{http_code}' -K <(printf 'header = "Authorization: Bearer %s"\n' "$token") "$api/knowledge-bases"
}
login
n=0
quiesced=
while [ ! -e /tmp/e2e-client.stop ]; do
  n=$((n + 1))
  code=$(read_list)
  if [ "$code" = 401 ]; then login; code=$(read_list); fi   # caches flushed: sessions are gone
  echo "$(date +%s.%N) GET $code"
  # writes stop once maintenance is lifted: the second run must find the data at the snapshot
  if [ -e nginx/layra.d/maintenance.conf ]; then quiesced=yes; elif [ -n "$quiesced" ]; then sleep 0.2; continue; fi
  code=$(printf '{"name":"written-during-rollback-%s"}' "$n" | curl -s -o /dev/null -m 5 -w '%{http_code}' \
    --data-binary @- -H 'Content-Type: application/json' \
    -K <(printf 'header = "Authorization: Bearer %s"\n' "$token") "$api/knowledge-bases")
  echo "$(date +%s.%N) POST $code"
  sleep 0.2
done
"""


def owners(host: SandboxHost) -> str:
    """The owner of every knowledge base but those the client writes once maintenance is off."""
    return sql(host, "SELECT GROUP_CONCAT(owner_id ORDER BY id) FROM knowledge_bases "
                     "WHERE name NOT LIKE 'written-during-rollback-%'")


def ship_the_bad_release(sandbox: Sandbox):
    """1.1.0 by hand on every host; wait until its migration has damaged the data."""
    for host in sandbox.hosts:
        host.deploy_by_hand("v1.1.0")
    for host in sandbox.hosts:
        for _ in range(60):
            if set(owners(host).split(",")) == {"0"}:
                break
            time.sleep(1)
        assert set(owners(host).split(",")) == {"0"}, f"{host.name}: 1.1.0's migration did not run"


def maintenance_state(host: SandboxHost) -> tuple[str, bool]:
    env = host.stack("sed -n 's/^MAINTENANCE_MODE=//p' .env")
    return env, host.ssh(f"test -e {DROPIN} && echo yes || echo no") == "yes"


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def snapshot(sandbox: Sandbox) -> str:
    """Every host at 1.0.0 with its knowledge bases owned, and a snapshot of that."""
    sandbox.at_good_release()
    for host in sandbox.hosts:
        sql(host, "UPDATE knowledge_bases SET owner_id = 1 WHERE owner_id = 0")
    snapshot_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-e2e-before-1.1.0"
    run = sandbox.pyinfra("backup.py", "--data", f"snapshot={snapshot_id}")
    assert run.ok, run.output
    return snapshot_id


def test_a_bad_release_is_rolled_back_on_every_host_with_writes_503_and_reads_served_throughout(
        sandbox: Sandbox, snapshot: str):
    owned = {host.name: owners(host) for host in sandbox.hosts}
    ship_the_bad_release(sandbox)
    client_host = sandbox.hosts[0]
    client_host.ssh("rm -f /tmp/e2e-client.stop /tmp/e2e-client.log")
    client_host.ssh(f"cat > /tmp/e2e-client.sh <<'EOF'\n{CLIENT}\nEOF\n"
                    "setsid bash /tmp/e2e-client.sh >/tmp/e2e-client.log 2>&1 </dev/null & echo $! >/tmp/e2e-client.pid")
    time.sleep(2)

    run = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}")

    client_host.ssh("touch /tmp/e2e-client.stop; pid=$(cat /tmp/e2e-client.pid); "
                    "for i in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done")
    assert run.ok, run.output
    record = run.record()
    for host in sandbox.hosts:
        assert host.commit() == host.commit("v1.0.0")
        assert owners(host) == owned[host.name]
        assert host.health() == "200"
        assert maintenance_state(host) == ("false", False)
        tags = host.stack(f"git tag --points-at {host.commit('v1.0.0')} 'rollback-*'").split()
        assert record["tag"] in tags
        entry = record["hosts"][host.name]
        assert (entry["status"], entry["maintenance"], entry["snapshot"]) == ("succeeded", "off", snapshot)
        assert host.ssh(f"test -f {SNAPSHOTS}/{entry['safety_snapshot']}/manifest.json && echo whole") == "whole"
        assert {check["phase"] for check in entry["checks"]} == {1, 2, 3, 4}
        assert all(check["ok"] for check in entry["checks"])
    assert run.output.count("ok   phase 4 mysql/layra fingerprint") == len(sandbox.hosts)
    assert run.output.count("ok   phase 3 login returns a token") == len(sandbox.hosts)
    assert record["status"] == "succeeded"
    # staged before the window; the displaced copies made durable after it (MySQL's swap
    # displaces: nothing of the safety snapshot is dumped inside the window)
    assert list(record["phases"]) == ["stage", "maintenance_on", "stack", "restore", "caches",
                                      "verify_integrity", "maintenance_off", "verify_infrastructure",
                                      "verify_connectivity", "verify_functionality", "safety_snapshot"]
    assert phase_problems(record) == []

    # the client: every read answered, writes answered 503 while maintenance was on
    log = [line.split() for line in client_host.ssh("cat /tmp/e2e-client.log").splitlines() if line.strip()]
    # from the first operation to the last (a release shipped by hand, as 1.1.0 was, leaves
    # nginx pointing at the replaced backend: 502/504 until our first reload)
    window = seconds(record["started_at"]), seconds(record["ended_at"])
    reads = [int(code) for when, method, code in log if method == "GET" and window[0] <= float(when) <= window[1]]
    writes = [(float(when), int(code)) for when, method, code in log if method == "POST"]
    quiesced = (seconds(record["phases"]["maintenance_on"]["ended_at"]),
                seconds(record["phases"]["maintenance_off"]["started_at"]))
    during = [code for when, code in writes if quiesced[0] < when < quiesced[1]]
    assert len(reads) >= 20 and set(reads) == {200}, f"reads answered {sorted(set(reads))}"
    assert len(during) >= 10 and set(during) == {503}, f"writes while quiesced answered {sorted(set(during))}"
    assert {code for when, code in writes if window[0] <= when <= window[1]} <= {201, 503}
    # every write made before the window is in the displaced copy, so in the safety snapshot,
    # and the report counts it
    written = sum(1 for when, code in writes if code == 201 and when < quiesced[0])
    safety = json.loads(client_host.ssh(f"cat {SNAPSHOTS}/{record['hosts'][client_host.name]['safety_snapshot']}"
                                        "/manifest.json"))
    aside = safety["parts"]["mysql.layra"]["fingerprint"]["tables"]["knowledge_bases"]["rows"]
    snapshot_rows = json.loads(client_host.ssh(f"cat {SNAPSHOTS}/{snapshot}/manifest.json"))[
        "parts"]["mysql.layra"]["fingerprint"]["tables"]["knowledge_bases"]["rows"]
    assert written >= 1 and aside == snapshot_rows + written, (aside, snapshot_rows, written)
    assert record["hosts"][client_host.name]["displaced"]["mysql.layra"]["knowledge_bases"] == [aside, snapshot_rows]

    # the report: every phase with its duration, the RTO table, the post-mortem draft
    report = subprocess.run([sys.executable, "-m", "pyinfra_deploys.cli", "report", record["run_id"],
                             "--runs-dir", str(RUNS), "--stdout"], cwd=ROOT, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    for phase in record["phases"]:
        assert re.search(rf"{phase}\s.*\d+(\.\d+)?\s?s", report.stdout), f"{phase} not in the report"
    assert (f"`mysql.layra` `knowledge_bases`: {aside} in the displaced copy, {snapshot_rows} restored "
            f"(+{written})") in report.stdout
    directory = RUNS / record["run_id"]
    assert {"record.json", "report.md", "report.html", "postmortem.md"} <= {p.name for p in directory.iterdir()}
    assert "<svg" in (directory / "report.html").read_text()
    assert "## Root Cause Analysis" in (directory / "postmortem.md").read_text()

    again = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}")

    assert again.ok, again.output
    assert again.totals()["changed"] == 0, again.output
    assert all(entry["safety_snapshot"] is None for entry in again.record()["hosts"].values())


def phase_problems(record: dict) -> list[str]:
    """Where the record's phases disagree with its operations: a phase that does not span
    exactly its own operations, phases that overlap, an operation no host ran."""
    problems = []
    ops = [op for entry in record["hosts"].values() for op in entry["operations"]]
    problems += [f"{op['name']} never ended" for op in ops if not op["ended_at"]]
    for name, span in record["phases"].items():
        own = [op for op in ops if op["phase"] == name]
        if span != {"started_at": min(op["started_at"] for op in own), "ended_at": max(op["ended_at"] for op in own)}:
            problems.append(f"{name} spans {span}, its operations otherwise")
    spans = list(record["phases"].items())
    problems += [f"{a} ends after {b} starts" for (a, first), (b, second) in zip(spans, spans[1:])
                 if first["ended_at"] > second["started_at"]]
    return problems


def test_a_failing_verification_fails_the_run_naming_the_check(sandbox: Sandbox):
    sandbox.at_good_release()

    run = sandbox.pyinfra("rollback.py", "--data", "commit=v1.0.0", "--data", "layra_max_memory_used_pct=1")

    assert not run.ok
    assert re.search(r"phase 1 \(infrastructure\): 1 of \d+ checks failed: memory used is [\d.]+% \(want < 1.0%\)",
                     run.output), run.output[-3000:]
    record = run.record()
    assert record["status"] == "failed"
    assert all("memory used" in entry["error"] for entry in record["hosts"].values())


def test_a_host_cut_off_midway_is_reported_and_the_others_finish_consistent(sandbox: Sandbox, snapshot: str):
    good, cut = sandbox.hosts[0], sandbox.hosts[1]
    owned = owners(good)
    ship_the_bad_release(sandbox)
    container = cut.container
    reject = ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"]

    process = subprocess.Popen(
        [sys.executable, "-m", "pyinfra", "-y", "inventories/sandbox.py", "rollback.py", "--data", f"snapshot={snapshot}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "LAYRA_SANDBOX_DIR": str(STATE), "LAYRA_RUNS_DIR": str(RUNS), "COLUMNS": "200"})
    try:
        # midway: once maintenance is on there, cut the host's SSH (the live session too)
        for _ in range(600):
            if subprocess.run(["docker", "exec", container, "test", "-e", DROPIN]).returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run(["docker", "exec", container, *reject], check=True)
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
        subprocess.run(["docker", "exec", container, *[a if a != "-I" else "-D" for a in reject]])

    assert process.returncode != 0, output
    assert good.commit() == good.commit("v1.0.0") and owners(good) == owned, output[-6000:]
    assert maintenance_state(good) == ("false", False), output[-6000:]
    assert f"MAINTENANCE MODE IS STILL ON on {cut.name}" in output, output[-6000:]
    lift = f"pyinfra inventories/sandbox.py maintenance.py --data maintenance=off --limit {cut.name}"
    assert lift in output
    record = json.loads(Path(re.search(r"--> Run \S+ failed: record (\S+)", output).group(1)).read_text())
    assert record["hosts"][good.name]["status"] == "succeeded"
    assert record["hosts"][cut.name]["status"] in ("failed", "unreachable")
    assert record["hosts"][cut.name]["maintenance"] == "on"

    # the lift command the run printed works, and a rerun converges
    lifted = sandbox.pyinfra("maintenance.py", "--data", "maintenance=off", "--limit", cut.name)
    assert lifted.ok, lifted.output
    assert maintenance_state(cut) == ("false", False)
    # the cut host still holds the run's lock (it could not be released over a dead
    # connection); the run said how to break it, and a rerun that does converges
    assert f"break it: --data break_lock={record['run_id']}" in output
    refused = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}")
    assert not refused.ok and f"run {record['run_id']} by " in refused.output
    rerun = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}", "--data", f"break_lock={record['run_id']}")
    assert rerun.ok, rerun.output
    assert cut.commit() == cut.commit("v1.0.0") and set(owners(cut).split(",")) != {"0"}
