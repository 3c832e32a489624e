"""
Faults injected into real runs on sandbox-1: the network cut in the middle of a dump and
of a restore, pyinfra killed mid-restore, the disk filling during a backup, the database
container stopped or restarted during a restore, two rollbacks at once, a host that is
unreachable from the start, and damaged snapshot files.

Each case asserts the exact outcome: the live database either untouched or wholly at the
snapshot (its checksum says which), the services running, the snapshots intact, one clear
error naming the cause, and a rerun that converges.

The runs use their own inventory over sandbox-1: a `reliability` database of about 12 MB
(big enough that a dump or a load lasts long enough to be hit while it runs) as the only
component, no maintenance switch, and its own snapshot root. The stack, its other data and
the other tests' snapshots are left alone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import RUN_LINE, RUNS, STATE, Run, Sandbox, SandboxHost, sql

from .conftest import ROOT as REPO
from .conftest import host_named, inventory_file

HOST = "sandbox-1"
SNAPSHOTS = "/var/backups/layra-reliability"
LOCK = "/srv/layra/.git/layra-rollback.lock"
WORK_LOCK = "/srv/layra/.git/layra-rollback.work"
DATABASE = "reliability"
ROWS = 12000
# 1 KiB of hex per row, the same on every seeding: the checksum of a fresh seed is known
BODY = "CONCAT(" + ", ".join(f"MD5({i} * 100000 + seq)" for i in range(32)) + ")"
COMPONENTS = {"mysql": {"engine": "mysql", "service": "mysql", "user": "root",
                        "password_key": "MYSQL_ROOT_PASSWORD", "databases": [DATABASE]}}
DATA = {"layra_components": COMPONENTS, "layra_maintenance": False, "layra_snapshot_root": SNAPSHOTS}
# iptables in the host: the controller's packets to sshd answered with resets (live sessions too)
CUT = ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"]


class Target:
    """sandbox-1 as these tests see it: its reliability database, snapshots, lock and network."""

    def __init__(self, sandbox: Sandbox, directory: Path):
        self.sandbox = sandbox
        self.host: SandboxHost = host_named(sandbox, HOST)
        self.container = self.host.container
        self.directory = directory
        self.inventory = inventory_file(directory, {HOST: DATA})
        self.base = ""      # the snapshot every restore goes back to
        self.seeded = ""    # the database's checksum as seeded (and in that snapshot)
        self.damaged = ""   # its checksum after `damage`

    # the database

    def sql(self, statement: str) -> str:
        return sql(self.host, statement, database="")

    def checksum(self) -> str:
        return self.sql(f"SELECT COUNT(*), SUM(CRC32(body)) FROM {DATABASE}.blobs")

    def seed(self):
        self.sql(f"DROP DATABASE IF EXISTS {DATABASE}; DROP DATABASE IF EXISTS {DATABASE}__restore; "
                 f"DROP DATABASE IF EXISTS {DATABASE}__pre_restore; CREATE DATABASE {DATABASE}; "
                 f"USE {DATABASE}; CREATE TABLE blobs (id INT PRIMARY KEY, body MEDIUMTEXT NOT NULL); "
                 f"INSERT INTO blobs SELECT seq, {BODY} FROM seq_1_to_{ROWS}")

    def damage(self):
        """What a bad release did: a quarter of the rows gone, others rewritten (the same every time)."""
        self.sql(f"DELETE FROM {DATABASE}.blobs WHERE id % 4 = 0; "
                 f"UPDATE {DATABASE}.blobs SET body = 'lost' WHERE id % 7 = 0")
        assert self.checksum() == self.damaged

    def shadow_left(self) -> bool:
        return DATABASE + "__restore" in self.sql("SHOW DATABASES").split()

    # runs

    def pyinfra(self, deploy: str, *args: str, inventory: str | None = None) -> Run:
        return self.sandbox.pyinfra(deploy, *args, inventory=inventory or self.inventory)

    def start(self, deploy: str, *args: str, inventory: str | None = None) -> subprocess.Popen:
        """A run in the background, in its own process group (so it can be killed whole)."""
        return subprocess.Popen(
            [sys.executable, "-m", "pyinfra", "-y", inventory or self.inventory, deploy, *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "LAYRA_SANDBOX_DIR": str(STATE), "LAYRA_RUNS_DIR": str(RUNS), "COLUMNS": "200"})

    def faulted(self, run: subprocess.Popen, moment, fault, mend=lambda: None) -> str:
        """Once ``moment()`` returns (the run has reached the point to hit), ``fault()``; then
        the run's whole output. ``mend()`` runs whatever happens; a run left over is killed."""
        try:
            moment()
            fault()
            output, _ = run.communicate(timeout=300)
        finally:
            mend()
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)  # its process group: pyinfra and nothing else
                run.wait()
        return output

    def in_host(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", self.container, *command], capture_output=True, text=True,
                              check=check)

    def wait_until_running(self, program: str, *needles: str, process: subprocess.Popen | None = None,
                           timeout: float = 120):
        """Until ``program`` runs on the host with every one of ``needles`` among its arguments
        (not a shell whose script merely names them). One watcher process in the host sweeps
        /proc every 20 ms: polling through `docker exec` would load the machine under test."""
        script = ("import glob, os, sys, threading, time\n"
                  # our docker client gone (its stdin closed): stop sweeping
                  "threading.Thread(target=lambda: (sys.stdin.read(), os._exit(2)), daemon=True).start()\n"
                  "end = time.monotonic() + float(sys.argv[1])\n"
                  "while time.monotonic() < end:\n"
                  "    for f in glob.glob('/proc/[0-9]*/cmdline'):\n"
                  "        try: argv = open(f, 'rb').read().decode(errors='replace').split('\\0')\n"
                  "        except OSError: continue\n"
                  "        if os.path.basename(argv[0]) == sys.argv[2] and all(n in argv for n in sys.argv[3:]):\n"
                  "            print(f); sys.exit(0)\n"
                  "    time.sleep(0.02)\n"
                  "sys.exit(1)\n")
        watcher = subprocess.Popen(["docker", "exec", "-i", self.container, "python3", "-c", script, str(timeout),
                                    program, *needles], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            while watcher.poll() is None:
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"the run ended before {program} ran:\n{process.stdout.read()[-3000:]}")
                time.sleep(0.02)
        finally:
            watcher.stdin.close()
            if watcher.poll() is None:
                watcher.kill()
            watcher.wait()
        assert watcher.returncode == 0, f"{program} {needles} did not run on {HOST} within {timeout}s"

    def dumping(self, process: subprocess.Popen):
        """Until the dump of the reliability database runs."""
        self.wait_until_running("mariadb-dump", "--single-transaction", DATABASE, process=process)

    def loading(self, process: subprocess.Popen):
        """Until the restore reads the snapshot's dump into the shadow database."""
        self.wait_until_running("zstd", "-dc", f"{SNAPSHOTS}/{self.base}/mysql.{DATABASE}.sql.zst", process=process)

    def cut_network(self):
        self.in_host(*CUT)

    def mend_network(self):
        self.in_host(*[a if a != "-I" else "-D" for a in CUT], check=False)

    # what the host holds

    def snapshots(self) -> list[str]:
        return sorted(self.host.ssh(f"ls -A {SNAPSHOTS}").split())

    def lock(self) -> dict | None:
        text = self.host.ssh(f"cat {LOCK} 2>/dev/null || true")
        return json.loads(text) if text else None

    def services_running(self) -> bool:
        states = self.host.ssh("docker ps -a --filter label=com.docker.compose.project=layra "
                               "--format '{{.Label \"com.docker.compose.service\"}} {{.State}}'")
        return bool(states) and all(line.split()[1] == "running" for line in states.splitlines())

    def wait_for_mysql(self):
        """Until its own healthcheck passes, run now (Docker's first check comes an interval
        after the start): what a rerun's phase 2 calls healthy."""
        self.host.stack("for i in $(seq 1 120); do docker compose exec -T mysql mariadb-admin --protocol=tcp "
                        "-h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1")

    def rollback_converges(self, *extra: str) -> Run:
        """A rollback to the base snapshot that ends green with the database at the snapshot."""
        run = self.pyinfra("rollback.py", "--data", f"snapshot={self.base}", *extra)
        assert run.ok, run.output[-4000:]
        assert self.checksum() == self.seeded
        assert not self.shadow_left() and self.lock() is None and self.services_running()
        return run


@pytest.fixture(autouse=True)
def no_fault_outlives_its_test(target: Target):
    """A test that fails midway must not fail the next ones: the network mended, no lock
    left, the database as seeded (a test whose point is not a rollback ends without one)."""
    yield
    target.mend_network()
    target.host.ssh(f"rm -f {LOCK}")
    if target.checksum() != target.seeded or target.shadow_left():
        target.seed()


def run_id(output: str) -> str:
    match = RUN_LINE.search(output)
    assert match, output[-3000:]
    return match.group(1)


def new_snapshot(run: Run) -> str:
    ids = set(re.findall(r"snapshot (\d{8}T\d{6}Z-[\w.-]+)", run.output))
    assert len(ids) == 1, run.output[-3000:]
    return ids.pop()


@pytest.fixture(scope="module")
def target(sandbox: Sandbox, tmp_path_factory) -> Target:
    target = Target(sandbox, tmp_path_factory.mktemp("faults"))
    target.mend_network()
    target.host.ssh(f"rm -rf {SNAPSHOTS} {LOCK}")
    target.seed()
    target.seeded = target.checksum()
    run = target.pyinfra("backup.py", "--data", "label=base")
    assert run.ok, run.output[-4000:]
    target.base = new_snapshot(run)
    target.sql(f"DELETE FROM {DATABASE}.blobs WHERE id % 4 = 0; UPDATE {DATABASE}.blobs SET body = 'lost' WHERE id % 7 = 0")
    target.damaged = target.checksum()
    assert target.damaged != target.seeded
    target.seed()  # every test starts at the snapshot (a seed is the same every time)
    assert target.checksum() == target.seeded
    yield target
    target.mend_network()
    target.host.ssh(f"rm -rf {SNAPSHOTS} {LOCK}")
    target.sql(f"DROP DATABASE IF EXISTS {DATABASE}; DROP DATABASE IF EXISTS {DATABASE}__pre_restore")


def test_a_second_rollback_while_one_runs_is_refused_naming_the_holder_and_since_when(target: Target):
    target.damage()
    first = target.start("rollback.py", "--data", f"snapshot={target.base}")
    try:
        for _ in range(600):
            holder = target.lock()
            if holder or first.poll() is not None:
                break
            time.sleep(0.1)
        assert holder, "the first run never took the lock"

        second = target.pyinfra("rollback.py", "--data", f"snapshot={target.base}")

        output, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not second.ok
    assert (f"{HOST}: another rollback holds the lock {LOCK}: run {holder['run_id']} by {holder['who']} "
            f"(pid {first.pid}) since {holder['since']}. Its process is still running here.") in second.output
    assert "--> Beginning operation run" not in second.output, "refused while planning, before any change"
    assert first.returncode == 0, output[-4000:]
    assert run_id(output) == holder["run_id"]
    assert target.checksum() == target.seeded and target.lock() is None and target.services_running()


def test_a_killed_run_mid_restore_leaves_a_stale_lock_that_is_broken_explicitly_and_the_rerun_finishes(
        target: Target):
    target.damage()
    killed = target.start("rollback.py", "--data", f"snapshot={target.base}")
    try:
        target.loading(killed)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # its process group: pyinfra and nothing else
        killed.wait()
    holder = target.lock()
    assert holder and holder["pid"] == killed.pid
    # the load the killed run started goes on on the host, under the stack's work lock
    assert f"mysql/{DATABASE}: load the shadow copy (pid " in target.host.ssh(f"cat {WORK_LOCK}")

    refused = target.pyinfra("rollback.py", "--data", f"snapshot={target.base}")
    assert not refused.ok
    assert f"run {holder['run_id']} by {holder['who']} (pid {killed.pid}) since {holder['since']}" in refused.output
    assert "Its process is gone: the lock is stale." in refused.output
    assert f"break its lock with --data break_lock={holder['run_id']}" in refused.output
    assert target.lock() == holder, "a refused run leaves the lock alone"

    wrong = target.pyinfra("rollback.py", "--data", f"snapshot={target.base}", "--data",
                           "break_lock=20200101T000000Z-rollback")
    assert not wrong.ok and target.lock() == holder, "only the named run's lock is broken"

    rerun = target.rollback_converges("--data", f"break_lock={holder['run_id']}")
    assert f"breaking the stale lock of run {holder['run_id']} (by {holder['who']} since {holder['since']})" \
        in rerun.output
    assert target.checksum() in (target.damaged, target.seeded), "the live database is whole, one side or the other"


def killed_while_keeping_the_displaced_copy(target: Target) -> dict:
    """A rollback of the damaged database SIGKILLed after its window: the swap is done, the
    displaced copy is being dumped into the safety snapshot. The lock it left."""
    target.damage()
    killed = target.start("rollback.py", "--data", f"snapshot={target.base}")
    try:
        target.wait_until_running("mariadb-dump", "--single-transaction", f"{DATABASE}__pre_restore", process=killed)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    return target.lock()


def test_a_run_killed_while_keeping_the_displaced_copy_is_completed_by_the_rerun_which_keeps_a_later_write_in_its_own(
        target: Target):
    holder = killed_while_keeping_the_displaced_copy(target)
    earlier = f"{holder['run_id'].split('-')[0]}-safety-before-rollback"
    assert target.checksum() == target.seeded, "the swap was done"
    assert f"{DATABASE}__pre_restore" in target.sql("SHOW DATABASES").split(), "the displaced copy is still aside"
    assert f"{earlier}.partial" in target.snapshots() and earlier not in target.snapshots()
    # a user's write on the restored data: the rerun swaps again, displacing it
    target.sql(f"INSERT INTO {DATABASE}.blobs VALUES ({ROWS + 1}, 'written after the swap')")

    rerun = target.rollback_converges("--data", f"break_lock={holder['run_id']}")
    assert f"kept first into its unfinished safety snapshot {earlier}, completed before this run's window" \
        in rerun.output
    assert f"continuing the safety snapshot {earlier} an earlier run left unfinished: keeping first the copies " \
           f"it displaced (mysql.{DATABASE})" in rerun.output
    own = f"{run_id(rerun.output).split('-')[0]}-safety-before-rollback"
    assert {earlier, own} <= set(target.snapshots()) and f"{earlier}.partial" not in target.snapshots()

    def manifest(snapshot: str) -> dict:
        return json.loads(target.host.ssh(f"cat {SNAPSHOTS}/{snapshot}/manifest.json"))
    assert manifest(earlier)["parts"][f"mysql.{DATABASE}"]["fingerprint"]["tables"]["blobs"]["rows"] == \
        ROWS - ROWS // 4, "the killed run's undo: the damaged data it displaced"
    assert manifest(earlier)["stack"]["commit"], "the stack state the killed run saved before its window"
    assert manifest(own)["parts"][f"mysql.{DATABASE}"]["fingerprint"]["tables"]["blobs"]["rows"] == ROWS + 1, \
        "the rerun's undo: the restored data with the write made since"
    assert f"{DATABASE}__pre_restore" not in target.sql("SHOW DATABASES").split()

    undo = target.pyinfra("rollback.py", "--data", f"snapshot={earlier}", "--data", "safety_snapshot=skip")
    assert undo.ok, undo.output[-4000:]
    assert target.checksum() == target.damaged, "the completed safety snapshot undoes the killed run's rollback"


SECOND = DATABASE + "_b"


def test_a_run_killed_between_two_components_swaps_is_finished_by_the_rerun_with_its_safety_snapshot(
        target: Target, tmp_path):
    """Two components, each a MySQL database: the second's swap waits on a table lock held
    by another session, so the run is killed with the first swapped and the second not."""
    components = {**COMPONENTS, "mysql_b": {**COMPONENTS["mysql"], "databases": [SECOND]}}
    inventory = inventory_file(tmp_path, {HOST: {**DATA, "layra_components": components}})
    second = f"SELECT COUNT(*), SUM(CRC32(body)) FROM {SECOND}.blobs"
    target.sql(f"DROP DATABASE IF EXISTS {SECOND}; DROP DATABASE IF EXISTS {SECOND}__restore; "
               f"DROP DATABASE IF EXISTS {SECOND}__pre_restore; CREATE DATABASE {SECOND}; "
               f"USE {SECOND}; CREATE TABLE blobs (id INT PRIMARY KEY, body TEXT NOT NULL); "
               f"INSERT INTO blobs SELECT seq, MD5(seq) FROM seq_1_to_1000")
    seeded_second = target.sql(second)
    backup = target.pyinfra("backup.py", "--data", "label=two", inventory=inventory)
    assert backup.ok, backup.output[-4000:]
    both = new_snapshot(backup)
    target.damage()
    target.sql(f"DELETE FROM {SECOND}.blobs WHERE id % 2 = 0")
    damaged_second = target.sql(second)
    holder = subprocess.Popen(["docker", "exec", target.container, "sh", "-c",
                               'cd /srv/layra && MYSQL_PWD=$(sed -n "s/^MYSQL_ROOT_PASSWORD=//p" .env) '
                               "docker compose exec -T -e MYSQL_PWD mysql mariadb -uroot -e "
                               f"'LOCK TABLES {SECOND}.blobs READ; SELECT SLEEP(300)'"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    waiting = (f"SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'RENAME TABLE%{SECOND}%' "
               "AND STATE LIKE '%metadata lock%'")
    killed = target.start("rollback.py", "--data", f"snapshot={both}", inventory=inventory)
    try:
        deadline = time.monotonic() + 180
        while not (target.checksum() == target.seeded and target.sql(waiting)):
            assert killed.poll() is None, f"the run ended before the second swap:\n{killed.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "the first component was not swapped with the second one waiting"
            time.sleep(0.2)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        for query in target.sql(waiting).split():
            target.sql(f"KILL QUERY {query}")  # the killed run's RENAME, left queued in the server
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    for session in target.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(300)%' "
                              "AND INFO NOT LIKE '%PROCESSLIST%'").split():
        target.sql(f"KILL {session}")  # the lock holder's session, its client gone
    lock = target.lock()
    safety = f"{lock['run_id'].split('-')[0]}-safety-before-rollback"
    assert target.checksum() == target.seeded and target.sql(second) == damaged_second, "one swapped, one not"
    assert f"{DATABASE}__pre_restore" in target.sql("SHOW DATABASES").split(), "the first's displaced copy aside"
    assert f"{safety}.partial" in target.snapshots()

    rerun = target.pyinfra("rollback.py", "--data", f"snapshot={both}", "--data", f"break_lock={lock['run_id']}",
                           inventory=inventory)
    assert rerun.ok, rerun.output[-4000:]
    assert f"continuing the safety snapshot {safety} an earlier run left unfinished: keeping first the copies " \
           f"it displaced (mysql.{DATABASE})" in rerun.output
    assert target.checksum() == target.seeded and target.sql(second) == seeded_second
    manifest = json.loads(target.host.ssh(f"cat {SNAPSHOTS}/{safety}/manifest.json"))
    rows = {name: part["fingerprint"]["tables"]["blobs"]["rows"] for name, part in manifest["parts"].items()}
    # the first's copy the killed run displaced, the second's this run displaced (the killed
    # run's swap of it never moved a table: its empty aside database is no copy)
    assert rows == {f"mysql.{DATABASE}": ROWS - ROWS // 4, f"mysql_b.{SECOND}": 500}
    databases = target.sql("SHOW DATABASES").split()
    assert not {f"{DATABASE}__pre_restore", f"{SECOND}__pre_restore", f"{SECOND}__restore"} & set(databases)
    assert target.lock() is None and target.services_running()
    again = target.pyinfra("rollback.py", "--data", f"snapshot={both}", inventory=inventory)
    assert again.ok, again.output[-3000:]
    assert f"mysql_b/{SECOND}: no change: already matches the snapshot" in again.output
    target.sql(f"DROP DATABASE IF EXISTS {SECOND}")


def test_staging_without_room_on_the_servers_filesystem_is_refused_naming_the_mib_missing_and_changes_nothing(
        target: Target, tmp_path):
    # a full disk, as the plan sees it: more headroom asked than the filesystem has free
    # (the sizes, the free space and the refusal are the real ones of sandbox-1)
    inventory = inventory_file(tmp_path, {HOST: {**DATA, "layra_staging_headroom_mb": 2**30}})
    target.damage()
    before = target.snapshots()
    refused = target.pyinfra("rollback.py", "--data", f"snapshot={target.base}", inventory=inventory)
    assert not refused.ok
    match = re.search(rf"{HOST}: staging mysql\.{DATABASE} beside the live data needs about (\d+) MiB on (\S+), "
                      r"(\d+) MiB are free: (\d+) MiB missing; nothing was changed", refused.output)
    assert match, refused.output[-3000:]
    needed, free, missing = (int(match[i]) for i in (1, 3, 4))
    assert needed > 2**30 and abs(needed - free - missing) <= 1
    assert target.checksum() == target.damaged and not target.shadow_left()
    assert target.lock() is None and target.snapshots() == before, "no lock taken, no safety snapshot started"


def orphaned_step(target: Target, seconds: int) -> subprocess.Popen:
    """A data-changing step of a run that is gone, still running on the host: it holds the
    work lock as our steps do (hold_work.sh), for ``seconds``."""
    from pyinfra_testing.util import get_command_string

    from facts.lock import holding_work
    hold = get_command_string(holding_work("/srv/layra", f"mysql/{DATABASE}: swap the shadow copy in"))
    step = subprocess.Popen(["docker", "exec", target.container, "bash", "-c", f"{hold} echo held; sleep {seconds}"],
                            stdout=subprocess.PIPE, text=True)
    assert step.stdout.readline().strip() == "held"
    return step


def test_a_rerun_waits_for_an_earlier_runs_step_still_changing_data_and_refuses_naming_it_after_its_wait(
        target: Target, tmp_path):
    step = orphaned_step(target, 20)
    try:
        impatient = inventory_file(tmp_path, {HOST: {**DATA, "layra_work_wait": 1}}, name="impatient")
        refused = target.pyinfra("rollback.py", "--data", f"snapshot={target.base}", inventory=impatient)
        assert not refused.ok
        assert (f"{HOST}: steps of an earlier run still change data here after 1s: "
                f"mysql/{DATABASE}: swap the shadow copy in (pid ") in refused.output
        assert "--> Beginning operation run" not in refused.output, "refused while planning, before any change"
        target.damage()
        waited = target.rollback_converges()   # the default wait outlasts the step's 20 s
        assert "steps of an earlier run still change data here, waiting up to 60s" in waited.output
        assert "the earlier run's steps have ended" in waited.output
        assert step.poll() is not None, "the rerun went on only once the step had ended"
    finally:
        step.kill()


def test_a_stale_lock_refusal_says_that_maintenance_is_still_on_and_how_to_lift_it(target: Target, tmp_path):
    guarded = inventory_file(tmp_path, {HOST: {key: value for key, value in DATA.items() if key != "layra_maintenance"}},
                             name="guarded")
    on = target.pyinfra("maintenance.py", "--data", "maintenance=on", inventory=guarded)
    assert on.ok, on.output[-3000:]
    dead = {"run_id": "20261121T130000Z-rollback", "who": "ops@nowhere", "controller": socket.gethostname(),
            "pid": 999999999, "command": "pyinfra ...", "token": "0" * 32, "since": "2026-11-21T13:00:02Z"}
    target.host.ssh(f"umask 077; printf '%s\\n' {shlex.quote(json.dumps(dead))} > {LOCK}")
    try:
        refused = target.pyinfra("rollback.py", "--data", f"snapshot={target.base}", inventory=guarded)
    finally:
        off = target.pyinfra("maintenance.py", "--data", "maintenance=off", inventory=guarded)
        assert off.ok, off.output[-3000:]
    assert not refused.ok
    assert "Its process is gone: the lock is stale." in refused.output
    assert ("MAINTENANCE IS STILL ON here (MAINTENANCE_MODE=true in the env file, the nginx drop-in "
            "nginx/layra.d/maintenance.conf in place, backend containers running with it): writes get 503 until it "
            f"is lifted. Once that run is over, lift it with: pyinfra {guarded} maintenance.py --data maintenance=off "
            f"--limit {HOST}") in refused.output


def test_the_network_cut_while_staging_leaves_the_live_database_untouched_and_the_rerun_finishes(target: Target):
    target.damage()
    cut = target.start("rollback.py", "--data", f"snapshot={target.base}")
    # the shadow copy loads before the window: the cut comes before anything live moves
    output = target.faulted(cut, lambda: target.loading(cut), target.cut_network, target.mend_network)
    assert cut.returncode != 0, output[-4000:]
    record = json.loads(Path(RUN_LINE.search(output).group(3)).read_text())
    assert record["hosts"][HOST]["status"] == "failed" and "Stage the parts" in record["hosts"][HOST]["error"]
    assert "restore" not in record["phases"], "the run never reached its window"
    assert f"mysql/{DATABASE}: failed after" in output and "SSH connection lost" in output, "the error names the cause"
    # the controller could not release the lock it held over the dead connection, and says so
    assert f"!!! {HOST}: the rollback lock stays" in output
    assert f"break it: --data break_lock={record['run_id']}" in output
    assert target.checksum() == target.damaged, "the live database as it was"
    assert target.services_running()

    target.rollback_converges("--data", f"break_lock={record['run_id']}")


def test_the_network_cut_mid_dump_keeps_no_snapshot_and_a_rerun_of_that_id_completes_it(target: Target):
    before = target.snapshots()
    cut = target.start("backup.py", "--data", "label=cut")
    output = target.faulted(cut, lambda: target.dumping(cut), target.cut_network, target.mend_network)
    assert cut.returncode != 0, output[-4000:]
    snapshot_id = re.search(r"Start snapshot (\d{8}T\d{6}Z-cut)", output).group(1)
    # nothing complete under that id: at most the unfinished directory a retry clears
    assert set(target.snapshots()) - set(before) <= {f"{snapshot_id}.partial"}
    assert target.checksum() == target.seeded and target.services_running()

    rerun = target.pyinfra("backup.py", "--data", f"snapshot={snapshot_id}")
    assert rerun.ok, rerun.output[-4000:]
    assert set(target.snapshots()) - set(before) == {snapshot_id}
    manifest = json.loads(target.host.ssh(f"cat {SNAPSHOTS}/{snapshot_id}/manifest.json"))
    assert manifest["parts"][f"mysql.{DATABASE}"]["fingerprint"] == json.loads(target.host.ssh(
        f"cat {SNAPSHOTS}/{target.base}/mysql.{DATABASE}.json"))["fingerprint"]


@pytest.mark.parametrize("fault", ["stop", "restart"])
def test_the_database_container_going_down_mid_restore_leaves_live_data_untouched_and_the_rerun_finishes(
        target: Target, fault: str):
    target.damage()
    run = target.start("rollback.py", "--data", f"snapshot={target.base}")
    output = target.faulted(run, lambda: target.loading(run), lambda: target.host.stack(f"docker compose {fault} mysql"))
    assert run.returncode != 0, output[-4000:]
    assert f"mysql/{DATABASE} was not touched" in output
    assert f"!!! {HOST}: the rollback lock stays" not in output, "a failure the controller saw releases the lock"
    if fault == "stop":
        target.host.stack("docker compose start mysql")
    target.wait_for_mysql()
    # live untouched; a shadow copy the server died under may stay, never swapped in (its
    # fingerprint is checked first) and dropped by the next load
    assert target.checksum() == target.damaged
    assert target.lock() is None

    target.rollback_converges()


def test_the_disk_filling_during_a_backup_keeps_no_snapshot_names_the_cause_and_the_rerun_completes(target: Target):
    tiny = "/mnt/reliability-tiny"
    # room for the estimate (the data plus 64 MiB of headroom), filled once the dump runs
    target.host.ssh(f"mkdir -p {tiny} && (! mountpoint -q {tiny} || umount {tiny}) && "
                    f"mount -t tmpfs -o size=112m,mode=0700 tmpfs {tiny}")
    inventory = inventory_file(target.directory, {HOST: {**DATA, "layra_snapshot_root": f"{tiny}/snapshots"}},
                               name="tiny_disk")
    try:
        full = target.start("backup.py", "--data", "label=full", inventory=inventory)
        # every byte left taken, while the dump writes
        output = target.faulted(full, lambda: target.dumping(full), lambda: target.host.ssh(
            f"dd if=/dev/zero of={tiny}/filler bs=1M status=none 2>/dev/null; "
            f"[ $(df --output=avail -B1 {tiny} | tail -1) -lt 1048576 ]"))
        assert full.returncode != 0, output[-4000:]
        # from the compressor (zstd) or the client writing its output (docker compose exec)
        assert "no space left on device" in output.lower(), output[-6000:]
        assert re.search(r"backup \d{8}T\d{6}Z-full failed: no snapshot was kept", output), output[-4000:]
        assert target.host.ssh(f"ls -A {tiny}/snapshots") == "", "no snapshot and no partial directory"
        assert target.checksum() == target.seeded and target.services_running()

        target.host.ssh(f"rm -f {tiny}/filler")
        rerun = target.pyinfra("backup.py", "--data", "label=full", inventory=inventory)
        assert rerun.ok, rerun.output[-4000:]
        assert len(target.host.ssh(f"ls -A {tiny}/snapshots").split()) == 1
    finally:
        target.host.ssh(f"umount {tiny}", check=False)


@pytest.mark.parametrize("deploy", [["rollback.py", "--data", "snapshot={base}"], ["backup.py", "--data", "label=gone"]],
                         ids=["rollback", "backup"])
def test_a_host_unreachable_from_the_start_stops_the_run_on_every_host_before_any_change(target: Target, deploy):
    target.damage()
    before = target.snapshots()
    closed = inventory_file(target.directory, {HOST: DATA}, name="one_gone", extra_hosts=[
        ("sandbox-gone", {"ssh_hostname": "127.0.0.1", "ssh_port": 9, "ssh_user": "root",
                          "ssh_known_hosts_file": str(STATE / "known_hosts"), **DATA})])

    run = target.pyinfra(*(argument.format(base=target.base) for argument in deploy), inventory=closed)

    assert not run.ok
    assert "[sandbox-gone] Could not connect" in run.output
    assert ("sandbox-gone could not be reached (see above): nothing was done on any host. "
            "Bring it back, or leave it out knowingly with --limit") in run.output
    assert "--> Beginning operation run" not in run.output
    assert target.checksum() == target.damaged and target.lock() is None and target.snapshots() == before


@pytest.mark.parametrize("damage, named", [
    ("truncate -s 1000 {dir}/mysql.reliability.sql.zst", "fails its checksums, nothing was restored: mysql.reliability.sql.zst is 1000 bytes (want "),
    ("printf '\\x55' | dd of={dir}/mysql.reliability.sql.zst bs=1 seek=4000 conv=notrunc status=none",
     "fails its checksums, nothing was restored: mysql.reliability.sql.zst sha256 "),
    ("rm {dir}/manifest.json", "no snapshot '{id}' under /var/backups/layra-reliability"),
    ("sed -i 's/\"size\": [0-9]*/\"size\": 1/g' {dir}/manifest.json", " bytes (want 1)"),
    ("rm {dir}/mysql.reliability.json", "mysql.reliability.json is missing"),
], ids=["truncated", "a-flipped-byte", "manifest-missing", "manifest-edited", "descriptor-missing"])
def test_a_damaged_snapshot_is_refused_naming_the_file_before_anything_changes(target: Target, damage: str, named: str,
                                                                               request):
    # a copy of the base snapshot under its own id (the manifest names its id), then damaged
    snapshot_id = f"{target.base}-{request.node.callspec.id}"
    directory = f"{SNAPSHOTS}/{snapshot_id}"
    target.host.ssh(f"cp -a {SNAPSHOTS}/{target.base} {directory} && python3 -c 'import json, sys; "
                    "m = json.load(open(sys.argv[1])); m[\"id\"] = sys.argv[2]; json.dump(m, open(sys.argv[1], \"w\"))' "
                    f"{directory}/manifest.json {snapshot_id}")
    target.damage()
    target.host.ssh(damage.format(dir=directory))
    before = target.snapshots()
    try:
        refused = target.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}")

        assert not refused.ok
        assert named.format(id=snapshot_id) in refused.output, refused.output[-3000:]
        assert "--> Beginning operation run" not in refused.output, "refused while planning"
        assert "Traceback" not in refused.output
        assert target.checksum() == target.damaged and target.snapshots() == before and target.lock() is None
    finally:
        target.host.ssh(f"rm -rf {directory}")
