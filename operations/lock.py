"""
Take and release the stack's rollback lock (``facts.lock``): a second run against the
same stack is refused, naming who holds it and since when.

+ stack: the ``facts.compose.Stack`` whose lock it is (``<stack dir>/.git/layra-rollback.lock``)
"""

from __future__ import annotations

from pyinfra.api import OperationError

from facts.compose import Stack
from facts.lock import marker, release_command, take_command
from operations.decorator import operation


@operation()
def taken(stack: Stack, holder: dict, breaking: str | None = None):
    """
    Take the lock for ``holder``, or fail naming the run that holds it; nothing else
    changes on the host either way.

    + holder: who takes it: ``run_id``, ``who``, ``controller``, ``pid``, ``command`` and
      a random ``token`` (the host's clock adds ``since``)
    + breaking: the run id of a dead run whose lock is removed first (never another's)

    **Example:**

    .. code:: python

        lock.taken(
            name="Take the rollback lock",
            stack=Stack("/srv/layra"),
            holder={"run_id": "20261121T130000Z-rollback", "who": "alice@ops-1",
                    "controller": "ops-1", "pid": 4242, "command": "pyinfra ...",
                    "token": "5f0c4e1a9b7d2c3e"},
        )
    """
    try:
        marker("run_id", holder.get("run_id"))
        marker("token", holder.get("token"))
        yield take_command(stack.dir, holder, breaking)
    except ValueError as error:
        raise OperationError(str(error)) from None


@operation()
def released(stack: Stack, token: str):
    """
    Release the lock if this run (its ``token``) still holds it; a lock another run
    holds is left alone.

    + token: the token the run took the lock with

    **Example:**

    .. code:: python

        lock.released(name="Release the rollback lock", stack=Stack("/srv/layra"),
                      token="5f0c4e1a9b7d2c3e")
    """
    try:
        yield release_command(stack.dir, token)
    except ValueError as error:
        raise OperationError(str(error)) from None
