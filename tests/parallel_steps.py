"""
Throwaway operations for tests/test_parallel.py: real commands on ``@local``, so that
``parallel.concurrently`` can be watched running steps without a stack. Never shipped.
"""

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File


@operation(is_idempotent=False)
def slept(seconds: float):
    yield StringCommand("sleep", str(seconds))


@operation()
def file_present(path: str):
    if host.get_fact(File, path=path):
        host.noop(f"{path} exists")
        return
    yield StringCommand("touch", QuoteString(path))


@operation()
def file_seen(path: str):
    """A noop only when the file is there when its facts are read."""
    if host.get_fact(File, path=path):
        host.noop(f"saw {path}")
        return
    yield StringCommand("echo", QuoteString(f"{path} is not there"), ">&2; exit 1")


@operation(is_idempotent=False)
def failed(message: str):
    yield StringCommand("echo", QuoteString(message), ">&2; exit 1")


@operation(is_idempotent=False)
def env_written(path: str, variable: str):
    yield StringCommand(f'printf %s "${variable}" >', QuoteString(path))
