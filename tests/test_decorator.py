"""operations.decorator.operation: a refusal raised while the run executes fails that host
alone (pyinfra would end the run for every host); raised while preparing, it stays one."""

from __future__ import annotations

import pytest
from pyinfra.api import OperationError, StringCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from operations.decorator import operation


@operation()
def refusing(word: str):
    """
    Yield one command, then refuse.

    + word: what the command echoes
    """
    yield StringCommand("echo", word)
    raise OperationError(f"the host no longer answers ({word})")


def body(executing: bool) -> list:
    state = FakeState()
    state.is_executing = executing
    with ctx_state.use(state), ctx_host.use(create_host(state, facts={})):
        return list(refusing._inner("x"))


def test_a_refusal_while_executing_becomes_the_hosts_failing_command():
    commands = [command.get_raw_value() for command in body(executing=True)]
    assert commands == ["echo x", "echo 'the host no longer answers (x)' >&2; exit 1"]


def test_a_refusal_while_preparing_stays_an_exception():
    with pytest.raises(OperationError, match=r"the host no longer answers \(x\)"):
        body(executing=False)


def test_the_operation_keeps_its_name_for_pyinfra():
    assert refusing.__name__ == refusing._inner.__name__ == "refusing"
