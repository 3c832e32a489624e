"""The rollback lock's decisions: who may take it, what a refusal says, and the release of
a host that fails midway (the commands themselves are case files: tests/*/lock.*)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api import DeployError

from pyinfra_deploys.lock import Locks, lock_refusal, lock_to_break

HERE = "ops-1"
LOCK = "/srv/layra/.git/layra-rollback.lock"


def holder(pid: int, controller: str = HERE) -> dict:
    return {"run_id": "20261121T130000Z-rollback", "who": f"alice@{controller}", "controller": controller,
            "pid": pid, "since": "2026-11-21T13:00:02Z", "token": "5f0c4e1a9b7d2c3e"}


@pytest.fixture
def live_run():
    """A process that looks like a pyinfra run to the liveness check."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "pyinfra"])
    # Popen may return before the child has exec'd (gevent's, once pyinfra patched it)
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    for _ in range(500):
        if b"pyinfra" in cmdline.read_bytes():
            break
        time.sleep(0.01)
    yield process.pid
    process.kill()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_free_lock_may_be_taken():
    assert lock_refusal("/srv/layra", None, None, here=HERE) is None


def test_a_lock_held_by_a_running_run_is_refused_naming_the_run_the_user_and_since_when(live_run):
    refusal = lock_refusal("/srv/layra", holder(live_run), None, here=HERE)
    assert refusal == (f"another rollback holds the lock {LOCK}: run 20261121T130000Z-rollback by alice@ops-1 "
                       f"(pid {live_run}) since 2026-11-21T13:00:02Z. Its process is still running here. Wait for "
                       "it to end; if it is dead, break its lock with --data break_lock=20261121T130000Z-rollback")


def test_a_lock_whose_process_is_gone_is_called_stale_and_still_refused():
    refusal = lock_refusal("/srv/layra", holder(dead_pid()), None, here=HERE)
    assert "Its process is gone: the lock is stale." in refusal
    assert refusal.endswith("--data break_lock=20261121T130000Z-rollback")


def test_a_lock_from_another_machine_says_to_check_there():
    refusal = lock_refusal("/srv/layra", holder(1, controller="ops-2"), None, here=HERE)
    assert "It runs from ops-2: check there that it has ended before breaking its lock." in refusal


def test_breaking_the_named_stale_lock_is_allowed():
    assert lock_refusal("/srv/layra", holder(dead_pid()), "20261121T130000Z-rollback", here=HERE) is None


def test_breaking_a_lock_whose_run_still_runs_here_is_refused(live_run):
    refusal = lock_refusal("/srv/layra", holder(live_run), "20261121T130000Z-rollback", here=HERE)
    assert refusal == (f"run 20261121T130000Z-rollback still runs here (pid {live_run}): "
                       "its lock is not stale, refusing to break it")


def test_breaking_another_runs_id_does_not_break_this_lock():
    refusal = lock_refusal("/srv/layra", holder(dead_pid()), "20200101T000000Z-rollback", here=HERE)
    assert refusal.startswith("another rollback holds the lock")


def test_a_lock_file_we_did_not_write_is_refused_with_what_it_holds():
    refusal = lock_refusal("/srv/layra", {"unreadable": "locked by bob"}, None, here=HERE)
    assert refusal == (f"the rollback lock {LOCK} is not one we wrote ('locked by bob'): "
                       "make sure no rollback runs, then remove it by hand")


@pytest.mark.parametrize("value", ["x; rm -rf /", "../lock", "20261121T130000Z-rollback\n", "latest"])
def test_break_lock_must_be_a_run_id(value):
    with pytest.raises(DeployError, match="must be the run id the refusal named"):
        lock_to_break({"break_lock": value})


class FakeHost:
    def __init__(self, name: str, ok: bool = True, raises: Exception | None = None):
        self.name, self.print_prefix, self.ok, self.raises, self.commands = name, f"[{name}] ", ok, raises, []

    def run_shell_command(self, command):
        self.commands.append(command.get_raw_value())
        if self.raises:
            raise self.raises
        return self.ok, SimpleNamespace(stderr_lines=[] if self.ok else ["rm: Permission denied"])


class FakeState:
    def __init__(self, **arguments):
        self.arguments = {"_ignore_errors": False, "_continue_on_error": False, **arguments}

    def get_op_data_for_host(self, host, op_hash):
        return SimpleNamespace(global_arguments=self.arguments)


def holding(locks: Locks, host: FakeHost, stack_dir: str = "/srv/layra") -> Locks:
    locks.track(host.name, SimpleNamespace(_hash="take"), SimpleNamespace(_hash="release"), stack_dir)
    locks.operation_host_success(FakeState(), host, "take")
    return locks


def test_a_host_failing_midway_has_its_lock_released_at_once():
    host = FakeHost("sandbox-1")
    locks = holding(Locks(), host)
    locks.operation_host_error(FakeState(), host, "restore")
    assert host.commands == [f"if grep -qsF '\"token\": \"{locks.token}\"' {LOCK} ; then rm -f {LOCK} ; fi"]
    assert locks.warnings("20261121T130000Z-rollback") == []


def test_an_ignored_error_keeps_the_lock_for_the_rest_of_the_run():
    host = FakeHost("sandbox-1")
    locks = holding(Locks(), host)
    locks.operation_host_error(FakeState(_ignore_errors=True), host, "dump")
    assert host.commands == [] and "sandbox-1" in locks.holding


def test_a_host_whose_connection_is_gone_keeps_its_lock_and_the_summary_says_how_to_break_it():
    host = FakeHost("sandbox-1", raises=EOFError())
    locks = holding(Locks(), host)
    locks.operation_host_error(FakeState(), host, "restore")
    assert locks.warnings("20261121T130000Z-rollback") == [
        f"sandbox-1: the rollback lock stays: {LOCK} could not be removed (the SSH connection is lost: EOFError)",
        "once sure run 20261121T130000Z-rollback is over, break it: --data break_lock=20261121T130000Z-rollback"]


def test_a_host_that_never_took_the_lock_is_left_alone():
    host = FakeHost("sandbox-2")
    locks = Locks()
    locks.operation_host_error(FakeState(), host, "restore")
    assert host.commands == [] and locks.warnings("20261121T130000Z-rollback") == []


def test_a_released_lock_is_no_longer_held():
    host = FakeHost("sandbox-1")
    locks = holding(Locks(), host)
    locks.operation_host_success(FakeState(), host, "release")
    assert locks.holding == {} and locks.warnings("20261121T130000Z-rollback") == []


def test_each_host_releases_the_lock_of_its_own_stack():
    first, second = FakeHost("app-1"), FakeHost("data-1")
    locks = holding(holding(Locks(), first), second, stack_dir="/opt/layra")
    locks.operation_host_error(FakeState(), second, "restore")
    locks.operation_host_error(FakeState(), first, "restore")
    assert "/opt/layra/.git/layra-rollback.lock" in second.commands[0]
    assert "/srv/layra/.git/layra-rollback.lock" in first.commands[0]
