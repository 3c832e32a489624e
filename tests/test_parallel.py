"""parallel.concurrently, run for real on @local: through pyinfra's API (planning, then
execution, as the CLI does) and once through the CLI. The steps are the throwaway
operations of tests/parallel_steps.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import parallel_steps
import pytest
from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operation import OperationMeta, add_op
from pyinfra.api.operations import run_ops
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from facts.compose import Stack
from facts.shell import UnreadableOutput
from operations import mysql, parallel, redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def logged(caplog):
    caplog.set_level(logging.INFO, logger="pyinfra")


def step(operation: str, label: str, **kwargs) -> parallel.Step:
    return parallel.Step(getattr(parallel_steps, operation), kwargs, label)


@dataclass
class Run:
    meta: OperationMeta
    planned_changes: int  # operations pyinfra's planning found would change
    seconds: float  # execution only


def run(groups, **global_arguments) -> Run:
    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    (host, meta), = add_op(state, parallel.concurrently, groups=groups, **global_arguments).items()
    planned_changes = state.get_meta_for_host(host).ops_change
    started = time.monotonic()
    try:
        run_ops(state)
    except PyinfraError:  # "No hosts remaining!": @local, the only host, failed
        pass
    return Run(meta, planned_changes, time.monotonic() - started)


def lines(caplog, text: str) -> list[int]:
    return [i for i, record in enumerate(caplog.records) if text in record.getMessage()]


def test_two_groups_that_each_sleep_run_side_by_side(caplog):
    result = run([[step("slept", "a", seconds=1)], [step("slept", "b", seconds=1)]])

    assert result.meta.did_succeed() and result.meta.did_change()
    # both groups started before either finished (an overlap, not a wall time: a busy machine
    # stretches both), and each took at least its own second
    assert max(lines(caplog, "a: started") + lines(caplog, "b: started")) < min(lines(caplog, ": done in"))
    done = [record.getMessage() for record in caplog.records if ": done in" in record.getMessage()]
    assert len(done) == 2 and all(float(message.rsplit(" ", 1)[1].rstrip("s")) >= 1 for message in done)


def test_a_step_reads_its_facts_only_after_the_step_before_it_ran(tmp_path):
    marker = tmp_path / "marker"
    # file_seen alone fails while the file is not there ...
    assert run([[step("file_seen", "alone", path=str(marker))]]).meta.did_error()
    # ... and, after file_present in its group, sees the file that step made
    result = run([[step("file_present", "pair", path=str(marker)), step("file_seen", "pair", path=str(marker))]])

    assert result.meta.did_succeed() and marker.exists()


def test_a_failing_step_stops_its_own_group_and_the_operation_fails_naming_it(tmp_path, caplog):
    never, other = tmp_path / "never", tmp_path / "other"
    result = run([
        [step("failed", "broken", message="boom"), step("file_present", "broken", path=str(never))],
        [step("slept", "other", seconds=1), step("file_present", "other", path=str(other))],
    ])

    assert result.meta.did_error()
    assert other.exists() and not never.exists()
    assert lines(caplog, "1 of 2 groups failed: broken (parallel_steps.failed): boom")
    assert lines(caplog, "other: done in")


def test_a_second_run_at_the_target_changes_nothing(tmp_path):
    groups = [[step("file_present", "one", path=str(tmp_path / "one"))],
              [step("file_present", "two", path=str(tmp_path / "two"))]]
    first, second = run(groups), run(groups)

    assert first.planned_changes == 1 and first.meta.did_change()
    assert second.planned_changes == 0
    assert second.meta.did_succeed() and not second.meta.did_change()


def test_global_arguments_of_the_operation_reach_every_steps_commands(tmp_path):
    groups = [[step("env_written", "first", path=str(tmp_path / "first"), variable="LAYRA_X")],
              [step("env_written", "second", path=str(tmp_path / "second"), variable="LAYRA_X")]]
    result = run(groups, _env={"LAYRA_X": "1"})

    assert result.meta.did_succeed()
    assert (tmp_path / "first").read_text() == "1" and (tmp_path / "second").read_text() == "1"


def test_the_cli_runs_the_groups_side_by_side(tmp_path):
    (tmp_path / "deploy.py").write_text(
        "import parallel_steps\n"
        "from operations.parallel import Step, concurrently\n"
        "concurrently(name='Two sleeps', groups=[[Step(parallel_steps.slept, {'seconds': 2}, 'a')],\n"
        "                                        [Step(parallel_steps.slept, {'seconds': 2}, 'b')]])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "@local", "deploy.py"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr

    assert done.returncode == 0, output
    assert max(output.index("a: started"), output.index("b: started")) < output.index(": done in 2.")


@pytest.mark.parametrize("error, said", [
    (EOFError(), "SSH connection lost (EOFError)"),
    (ConnectionResetError(104, "Connection reset by peer"),
     "SSH connection lost (ConnectionResetError: [Errno 104] Connection reset by peer)"),
    (PyinfraError("No hosts remaining!"), "a fact could not be read from the host (its error is above)"),
    (UnreadableOutput("sandbox-1: fact MysqlFingerprint could not read its command's output whole"),
     "sandbox-1: fact MysqlFingerprint could not read its command's output whole"),
    (ValueError("bad value"), "ValueError: bad value"),
])
def test_a_step_that_raises_is_described_by_its_cause(error, said):
    assert parallel.described(error) == said


class Transport:
    def __init__(self, active: bool):
        self.active = active

    def is_active(self) -> bool:
        return self.active


def ssh_host(active: bool):
    client = type("Client", (), {"get_transport": lambda self: Transport(active)})()
    return type("Host", (), {"connector": type("Connector", (), {"client": client})()})()


def test_a_fact_that_failed_on_a_dropped_connection_is_called_a_lost_connection():
    assert parallel.described(PyinfraError("No hosts remaining!"), ssh_host(active=False)) == \
        "SSH connection lost (a fact could not be read)"
    assert parallel.described(PyinfraError("No hosts remaining!"), ssh_host(active=True)) == \
        "a fact could not be read from the host (its error is above)"


# Planning with the engines' own operations, their facts given (as case files give them).

def planned(scenario: str, **changes):
    """``concurrently``'s planning of MySQL's two steps and Redis's one, with the facts of
    ``tests/fixtures/parallel/<scenario>.json``: the commands it yields, and the host."""
    data = json.loads((ROOT / "tests" / "fixtures" / "parallel" / f"{scenario}.json").read_text())
    (load, swap), (restore,) = [[{**step["kwargs"], "stack": Stack(**step["kwargs"]["stack"])} for step in group]
                                for group in data["groups"]]
    groups = [[parallel.Step(mysql.shadow_loaded, {**load, **changes}, "mysql/layra"),
               parallel.Step(mysql.swapped_in, swap, "mysql/layra")],
              [parallel.Step(redis.restored, restore, "redis")]]
    host = create_host(FakeState(), facts=data["facts"])
    with ctx_state.use(host.state), ctx_host.use(host):
        return list(parallel.concurrently._inner(groups=groups)), host


def test_planning_is_a_noop_naming_each_steps_reason_when_every_step_is_at_the_target():
    commands, host = planned("is_a_noop_when_every_step_is_at_the_target")
    assert commands == []
    assert host.noop_description == ("all 3 steps at the target: mysql/layra already matches the snapshot "
                                     "(2 tables, 5 rows); redis already matches the snapshot (dbsize 107011)")


def test_planning_yields_one_command_describing_the_groups_that_would_change():
    (command,), _ = planned("runs_the_groups_that_would_change_in_one_command")
    described = command.args[0]
    # Redis is at the snapshot there: only MySQL's group runs
    assert [[step["operation"] for step in group] for group in described] == [
        ["operations.mysql.shadow_loaded", "operations.mysql.swapped_in"]]
    assert described[0][0]["label"] == "mysql/layra" and described[0][0]["kwargs"]["stack"]["dir"] == "/srv/layra"


def test_a_step_its_own_operation_would_refuse_is_refused_while_planning_naming_it():
    with pytest.raises(OperationError, match=r"mysql/layra \(mysql.shadow_loaded\): database 'layra; DROP' is not "
                                             r"a plain database name"):
        planned("runs_the_groups_that_would_change_in_one_command", database="layra; DROP")


@pytest.mark.parametrize("step, said", [
    ({"operation": "operations.mysql.shadow_loaded"}, "a step is a parallel.Step(operation, kwargs, label)"),
    (parallel.Step(print, {}), "step operation <built-in function print> is not a pyinfra operation"),
    (parallel.Step(parallel.concurrently, {"groups": []}), "concurrently cannot run itself as a step"),
    (parallel.Step(parallel_steps.slept, {"seconds": 1, "_sudo": True}, "a"), "a: kwargs must map argument names"),
    (parallel.Step(parallel_steps.slept, {"minutes": 1}, "a"), "a: parallel_steps.slept missing a required argument"),
])
def test_what_is_not_a_step_of_ours_is_refused_before_anything_runs(step, said):
    with pytest.raises(OperationError) as refused:
        parallel.checked_groups([[step]])
    assert said in str(refused.value)
