"""
``operation``: pyinfra's ``@operation``, but an ``OperationError`` an operation raises while
the run executes fails its host alone.

pyinfra 3 runs an operation's body when the operation executes, and an exception there
ends the whole run, every host with it. Ours read facts as they execute (the state they
act on), and a host whose connection dies midway answers those reads with nothing: the
body then refuses, and a run over ten hosts would stop with nine of them in the middle of
their maintenance window. Raised while executing, the refusal becomes the host's failure
(a command that prints it and exits 1); the other hosts go on. The same for a fact whose
output could not be read whole or that refuses what it read (``UnreadableOutput``, e.g. a
fingerprint that would be partial): the operation reading it acts on nothing after it.
Raised while pyinfra prepares (or in tests), it stays an exception: a refusal before
anything runs.
"""

from __future__ import annotations

from functools import wraps

from pyinfra.api import OperationError
from pyinfra.api import operation as pyinfra_operation
from pyinfra.context import state

from facts.shell import UnreadableOutput, failing


def operation(*args, **kwargs):
    decorate = pyinfra_operation(*args, **kwargs)

    def wrap(body):
        @wraps(body)
        def guarded(*op_args, **op_kwargs):
            try:
                yield from body(*op_args, **op_kwargs)
            except (OperationError, UnreadableOutput) as error:
                if not getattr(state, "is_executing", False):
                    raise
                yield failing(str(error))
        return decorate(guarded)

    return wrap
