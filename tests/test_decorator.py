"""operations.decorator.operation: a refusal raised while the run executes (the operation's
own, or a fact's that could not read or refuses its output) fails that host alone (pyinfra
would end the run for every host); raised while preparing, it stays one."""

from __future__ import annotations

import pytest
from pyinfra.api import OperationError, StringCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from facts.shell import UnreadableOutput
from operations.decorator import operation


@operation()
def refusing(word: str):
    """
    Yield one command, then refuse.

    + word: what the command echoes
    """
    yield StringCommand("echo", word)
    raise OperationError(f"the host no longer answers ({word})")


@operation()
def reading(word: str):
    """
    Yield one command, then read a fact that refuses its output.

    + word: what the command echoes
    """
    yield StringCommand("echo", word)
    raise UnreadableOutput(f"the fingerprint would be partial ({word})")


def body(executing: bool, op=refusing) -> list:
    state = FakeState()
    state.is_executing = executing
    with ctx_state.use(state), ctx_host.use(create_host(state, facts={})):
        return list(op._inner("x"))


def test_a_refusal_while_executing_becomes_the_hosts_failing_command():
    commands = [command.get_raw_value() for command in body(executing=True)]
    assert commands == ["echo x", "echo 'the host no longer answers (x)' >&2; exit 1"]


def test_a_fact_that_refuses_its_output_while_executing_fails_the_host_before_anything_acts_on_it():
    commands = [command.get_raw_value() for command in body(executing=True, op=reading)]
    assert commands == ["echo x", "echo 'the fingerprint would be partial (x)' >&2; exit 1"]


def test_a_refusal_while_preparing_stays_an_exception():
    with pytest.raises(OperationError, match=r"the host no longer answers \(x\)"):
        body(executing=False)


def test_the_operation_keeps_its_name_for_pyinfra():
    assert refusing.__name__ == refusing._inner.__name__ == "refusing"
