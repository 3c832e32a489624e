"""The stack's work lock (facts/scripts/hold_work.sh, work_in_progress.sh) between real
processes on this machine: a step holds it (facts.lock.holding_work) while another run
asks whether work is in progress (the WorkInProgress fact, run by sh and read as pyinfra
reads it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from facts.lock import WorkInProgress, holding_work, work_lock_path

WHAT = "mysql/layra: load the shadow copy"


@pytest.fixture
def stack_dir(tmp_path):
    (tmp_path / ".git").mkdir()
    return str(tmp_path)


def hold(stack_dir: str, then: str, what: str = WHAT) -> subprocess.Popen:
    """A step's shell holding the lock, then running ``then``; it has said "held" once it holds it."""
    step = subprocess.Popen(["sh", "-c", f"{holding_work(stack_dir, what).get_raw_value()} echo held; {then}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert step.stdout.readline() == "held\n", step.stderr.read()
    return step


def work_in_progress(stack_dir: str, wait: int = 0) -> list[str]:
    command = WorkInProgress().command(stack_dir, wait).get_raw_value()
    run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return WorkInProgress().process(run.stdout.splitlines())


def test_without_a_lock_file_no_work_is_in_progress(stack_dir):
    assert work_in_progress(stack_dir) == []


def test_a_step_holding_the_lock_is_named_with_its_shells_pid_and_freed_once_it_ends(stack_dir):
    step = hold(stack_dir, "read -r _ || :")  # until its stdin closes
    try:
        (line,) = work_in_progress(stack_dir)
        assert line.startswith(f"{WHAT} (pid {step.pid}, since ")
    finally:
        step.communicate("")
    assert step.returncode == 0
    assert work_in_progress(stack_dir) == []
    assert os.path.getsize(work_lock_path(stack_dir)) == 0  # its line cleared once free


def test_steps_of_one_run_hold_it_side_by_side_and_both_are_named(stack_dir):
    first = hold(stack_dir, "read -r _ || :")
    second = hold(stack_dir, "read -r _ || :", what="redis cache: restore the RDB")
    try:
        assert [line.split(" (pid")[0] for line in work_in_progress(stack_dir)] == [WHAT, "redis cache: restore the RDB"]
    finally:
        first.communicate("")
        second.communicate("")


def test_asking_with_a_wait_waits_for_the_step_to_end(stack_dir):
    step = hold(stack_dir, "sleep 1")
    started = time.monotonic()
    assert work_in_progress(stack_dir, wait=30) == []
    assert time.monotonic() - started >= 0.5
    step.wait(timeout=10)


def test_what_a_killed_steps_shell_started_still_holds_the_lock_and_is_reported(stack_dir):
    # the shell ends; the sleep it started keeps the lock's descriptor, as a dump would
    step = hold(stack_dir, "sleep 60 >/dev/null 2>&1 & echo $!")
    child = int(step.stdout.readline())
    step.wait(timeout=10)
    try:
        assert work_in_progress(stack_dir) == ["a step whose shell is gone (what it started still holds the lock)"]
    finally:
        os.kill(child, signal.SIGTERM)
    for _ in range(100):
        if work_in_progress(stack_dir) == []:
            break
        time.sleep(0.05)
    assert work_in_progress(stack_dir) == []


def test_a_step_whose_lock_cannot_be_opened_fails_saying_so(tmp_path):
    command = holding_work(str(tmp_path / "no-stack"), WHAT).get_raw_value()
    run = subprocess.run(["sh", "-c", f"{command} echo went on"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and run.stdout == ""
    assert f"cannot open the work lock {tmp_path}/no-stack/.git/layra-rollback.work" in run.stderr
