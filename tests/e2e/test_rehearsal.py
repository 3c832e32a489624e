"""
A staging rehearsal on the sandbox: sandbox-1 plays production (inventories/sandbox_prod.py),
sandbox-2 staging in production's shape (inventories/sandbox_staging.py). A fresh backup of
sandbox-1 is copied to sandbox-2 over SSH, staging is restored to it and rolled back, and
the rehearsal report times every phase against the RTO targets. sandbox-1's snapshots,
data fingerprints, containers and stack are byte-identical afterwards: production is only
read.

No release is shipped in between (the --release case, migrate.py's guarded release, is
to come): without one the rollback under test finds staging at the snapshot already.
MongoDB and Qdrant are stand-ins (see the README).

sandbox-2 gets its own data back at the end (its users table holds the hash of its own
demo password, which the other e2e tests log in with).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facts.compose import Stack
from facts.mongo import MongoFingerprint
from facts.mysql import MysqlFingerprint
from facts.qdrant import QdrantFingerprint

from .conftest import ROOT, RUNS, STACK, STATE, Run, Sandbox, SandboxHost

SOURCE, STAGING = "inventories/sandbox_prod.py", "inventories/sandbox_staging.py"
SNAPSHOTS = "/var/backups/layra"


def env() -> dict:
    """Read when a run starts, not at import: the lane's hosts file (LAYRA_SANDBOX_HOSTS) is
    set by the sandbox fixture, after this module is imported."""
    return {**os.environ, "LAYRA_SANDBOX_DIR": str(STATE), "LAYRA_RUNS_DIR": str(RUNS), "COLUMNS": "200"}


def pyinfra(inventory: str, deploy: str, *args: str) -> Run:
    result = subprocess.run([sys.executable, "-m", "pyinfra", "-y", inventory, deploy, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env=env())
    return Run(result.returncode, result.stdout + result.stderr)


def fact(host: SandboxHost, cls, *args, **kwargs):
    """A fact of ours read over plain ssh: the same command and parsing the deploys use."""
    instance = cls()
    command = instance.command(*args, **kwargs).get_raw_value()
    shell = instance.shell_executable or "sh"
    return instance.process(host.ssh(f"{shell} -c {shlex.quote(command)}").splitlines())


def fingerprints(host: SandboxHost) -> dict:
    """What the rollback compares, for every component both hosts restore through an API."""
    stack = Stack(STACK)
    return {
        "mysql": fact(host, MysqlFingerprint, stack, "layra"),
        "mongodb": fact(host, MongoFingerprint, stack, "layra"),
        "qdrant": fact(host, QdrantFingerprint, stack, "http://127.0.0.1:6333", "QDRANT_API_KEY"),
    }


def recorded(host: SandboxHost, directory: str) -> dict:
    """The fingerprints a snapshot recorded (its part descriptors): what phase 4 holds a restore to."""
    def of(descriptor: str) -> dict:
        return json.loads(host.ssh(f"cat {directory}/{descriptor}"))["fingerprint"]
    return {"mysql": of("mysql.layra.json"), "mongodb": of("mongodb.layra.json"),
            "qdrant": {"kb_vectors": of("qdrant.kb_vectors.json")}}


def snapshot_files(host: SandboxHost, directory: str) -> str:
    """Every entry under ``directory``: type, mode, size, path, and each file's sha256."""
    return host.ssh(f"cd {shlex.quote(directory)} && find . -printf '%y %m %s %P\\n' | sort && "
                    "find . -type f -exec sha256sum {} + | sort")


def production(host: SandboxHost) -> dict:
    """Everything a rehearsal must leave as it is on production."""
    return {
        "snapshots": snapshot_files(host, SNAPSHOTS),
        "fingerprints": fingerprints(host),
        # a container stopped, replaced or restarted would show here (the Milvus set, nginx...)
        "containers": host.ssh("docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}' "
                               "$(docker ps -aq --filter label=com.docker.compose.project=layra) | sort"),
        "stack": host.stack("git rev-parse HEAD && git tag | sort && sha256sum .env && ls -la nginx/layra.d"),
    }


def changes(before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=0)
    return "\n".join(lines)


def backup(host: SandboxHost, label: str) -> tuple[subprocess.Popen, str]:
    """A backup of one host through inventories/sandbox.py (its own shape), started in the
    background: ``(process, snapshot id)``."""
    snapshot_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{label}"
    process = subprocess.Popen(
        [sys.executable, "-m", "pyinfra", "-y", "inventories/sandbox.py", "backup.py", "--limit", host.name,
         "--data", f"snapshot={snapshot_id}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
    return process, snapshot_id


def finished(started: tuple[subprocess.Popen, str]) -> str:
    process, snapshot_id = started
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return snapshot_id


@pytest.fixture(scope="module")
def hosts(sandbox: Sandbox) -> tuple[SandboxHost, SandboxHost]:
    prod, staging = (next(h for h in sandbox.hosts if h.name == name) for name in ("sandbox-1", "sandbox-2"))
    return prod, staging


@pytest.fixture(scope="module")
def prod_snapshot(sandbox: Sandbox, hosts):
    """A fresh snapshot of sandbox-1 at 1.0.0; sandbox-2's own state comes back afterwards."""
    prod, staging = hosts
    sandbox.at_good_release()
    # both at once: the backups stop each host's Milvus set for a few seconds
    ours, theirs = backup(prod, "e2e-rehearsal"), backup(staging, "e2e-before-rehearsal")
    snapshot_id, own = finished(ours), finished(theirs)
    yield snapshot_id
    back = pyinfra("inventories/sandbox.py", "rollback.py", "--limit", staging.name, "--data", f"snapshot={own}")
    assert back.ok, back.output
    assert staging.commit() == staging.commit("v1.0.0") and staging.health() == "200"


def test_a_rehearsal_copies_restores_and_rolls_back_staging_and_leaves_production_byte_identical(
        hosts, prod_snapshot: str):
    prod, staging = hosts
    before = production(prod)
    source_manifest = json.loads(prod.ssh(f"cat {SNAPSHOTS}/{prod_snapshot}/manifest.json"))

    rehearsal = subprocess.run(
        [sys.executable, "-m", "pyinfra_deploys.cli", "rehearse", "--staging", STAGING, "--source", SOURCE,
         "--snapshot", prod_snapshot, "--release", "v1.1.0", "--watch-window", "10", "--runs-dir", str(RUNS)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=env())

    output = rehearsal.stdout + rehearsal.stderr
    assert rehearsal.returncode == 0, output[-5000:]
    assert output.count(f"--> source {SOURCE}: read only (nothing is written to sandbox-1)") == 1

    # the report: every step and every phase of each rollback run timed, the RTO verdict
    path = Path(rehearsal.stdout.strip().splitlines()[-1])
    assert path.name == "rehearsal.md" and path.parent.parent == RUNS and path.parent.name.endswith("-rehearsal")
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in path.parent.iterdir()} == {"0o600"}
    markdown, result = path.read_text(), json.loads((path.parent / "rehearsal.json").read_text())
    assert markdown.startswith(f"# Layra rollback rehearsal {path.parent.name}: PASS")
    assert result["status"] == "passed" and result["reasons"] == []
    # release 1.1.0 never gets healthy: migrate.py rolls it back itself, and that rollback
    # is the one under test
    assert {step["name"]: step["outcome"] for step in result["steps"]} == {
        "copy": "ok", "restore": "ok", "release": "rolled back", "rollback": "skipped"}
    for step, outcome in (("copy", "ok"), ("restore", "ok"), ("release", "rolled back")):
        assert re.search(rf"^\| \d \| {step} \| [\d:.]+Z \| [\dm .]+s \| {outcome} \|", markdown, re.M), step
    assert [run["step"] for run in result["rollback_runs"]] == ["restore", "release"]
    assert result["rollback_runs"][1]["under_test"]
    for run in result["rollback_runs"]:
        record = json.loads(Path(run["record"]).read_text())
        assert record["kind"] == "rollback" and record["status"] == "succeeded" and run["verified"]
        # the restore goes to production's snapshot; the release's own rollback to the
        # pre-migration snapshot it took of that same state
        snapshot = record["hosts"]["sandbox-2"]["snapshot"]
        assert snapshot == prod_snapshot if run["step"] == "restore" else snapshot.endswith("-pre-migration")
        section = markdown.split(f": run {run['run_id']}\n", 1)[1].split("\n## ", 1)[0]
        for phase in record["phases"]:
            assert re.search(rf"^{phase}\s+\+[\dm .]+s\s+[\dm .]+s$", section, re.M), f"{phase} of {run['run_id']}"
        assert re.search(r"^\| execution \| [\dm .]+s \| < 5m \| met \|", section, re.M), section
    assert result["rollback_runs"][0]["changed"], "the restore should have replaced sandbox-2's data"
    assert "> source sandbox-1: read only — fingerprints/snapshots not written" in markdown

    # staging holds the snapshot, checked on arrival, without production's env file
    copy = f"{SNAPSHOTS}/{prod_snapshot}"
    arrived = json.loads(staging.ssh(f"cat {copy}/manifest.json"))
    expected = {name: entry["sha256"] for name, entry in source_manifest["files"].items() if name != "stack/env"}
    sums = dict(line.split("  ", 1)[::-1] for line in staging.ssh(
        f"cd {copy} && find . -type f ! -name manifest.json ! -name .verified -printf '%P\\n' "
        "| xargs -d '\\n' sha256sum").splitlines())
    assert sums == expected and {name: e["sha256"] for name, e in arrived["files"].items()} == expected
    origin = arrived["copied_from"]
    assert (origin["host"], origin["inventory"], origin["left_out"]) == ("sandbox-1", SOURCE, ["stack/env"])
    assert staging.ssh(f"test -e {copy}/stack/env && echo there || echo absent") == "absent"
    assert staging.ssh(f"cat {copy}/.verified").startswith("20")
    modes = staging.ssh(f"find {copy} -type d -printf 'd%m\\n' -o -type f -printf 'f%m\\n'")
    assert set(modes.split()) == {"d700", "f600"}

    # staging's data is the snapshot's (production's: the snapshot is fresh), at its commit,
    # healthy, writes open
    live, snapshot_said = fingerprints(staging), recorded(prod, f"{SNAPSHOTS}/{prod_snapshot}")
    assert (live["mysql"], live["mongodb"]) == (snapshot_said["mysql"], snapshot_said["mongodb"])
    assert live["qdrant"]["collections"] == snapshot_said["qdrant"]
    assert live == before["fingerprints"]
    assert staging.commit() == staging.commit("v1.0.0") == source_manifest["stack"]["commit"]
    assert staging.health() == "200"
    assert staging.stack("sed -n 's/^MAINTENANCE_MODE=//p' .env") == "false"

    # a second copy changes nothing
    again = pyinfra(STAGING, "rehearse.py", "--data", f"snapshot={prod_snapshot}", "--data", f"source={SOURCE}")
    assert again.ok, again.output
    assert again.totals()["changed"] == 0, again.output
    assert "is already here with sandbox-1's checksums: nothing to copy" in again.output

    # production: byte-identical snapshots, same data, same containers, same stack
    after = production(prod)
    for what in ("snapshots", "containers", "stack"):
        assert after[what] == before[what], f"sandbox-1's {what} changed:\n" + changes(before[what], after[what])
    assert after["fingerprints"] == before["fingerprints"]
