"""
Run independent steps of our own operations at the same time on one host.

pyinfra runs an operation on every host at once, but a host's operations one after
another. A rollback restores several independent components per host (MySQL, MongoDB,
Redis, Qdrant, a volume set); ``concurrently`` lets them restore side by side.

A step is one call of one of our operations: the operation itself and its arguments,

.. code:: python

    Step(mysql.shadow_loaded, {"stack": Stack("/srv/layra"), "database": "layra", ...}, label="mysql/layra")

so that a reader (or a tool) goes from the engine that made the step to the operation by
following the code. Each step runs the operation's own generator (``_inner``): what it
reads, yields and refuses is exactly what the operation would read, yield and refuse on
its own.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from inspect import signature
from itertools import chain

import gevent
from paramiko import SSHException
from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, OperationError, StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.command import PyinfraCommand
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.util import print_host_combined_output
from pyinfra.context import ctx_config, ctx_host, ctx_state

from facts.shell import UnreadableOutput
from operations.decorator import operation


@dataclasses.dataclass(frozen=True)
class Step:
    """One call of one of our operations, as a step of ``concurrently``.

    + operation: the pyinfra operation itself (``operations.mysql.shadow_loaded``)
    + kwargs: its arguments, as the operation takes them (no ``_global`` arguments: those
      belong to ``concurrently``, for all steps)
    + label: names the step in logs and errors (default: the operation's name)
    """

    operation: typing.Callable
    kwargs: dict = dataclasses.field(default_factory=dict)
    label: str = ""

    @property
    def inner(self) -> typing.Callable:
        return self.operation._inner

    @property
    def path(self) -> str:
        return f"{self.operation.__module__}.{self.operation.__name__}"

    @property
    def title(self) -> str:
        return self.label or ".".join(self.path.split(".")[-2:])

    @property
    def name(self) -> str:
        return f"{self.title} ({'.'.join(self.path.split('.')[-2:])})"

    def commands(self):
        for command in self.inner(**self.kwargs):
            # as pyinfra's operation wrapper does
            yield StringCommand(command.strip()) if isinstance(command, str) else command

    def as_data(self) -> dict:
        """The step described as plain data, for the command's log line and the run record."""
        return {"operation": self.path, "label": self.title, "kwargs": plain(self.kwargs)}


class StepHost:
    """The host as one step sees it: its log lines name the step, and the reasons it
    gives ``host.noop`` are kept (and logged only while executing)."""

    def __init__(self, real, label: str, echo: bool):
        self._host, self.label, self.echo, self.noops = real, label, echo, []

    def __getattr__(self, name):
        return getattr(self._host, name)

    @property
    def print_prefix(self) -> str:
        return f"{self._host.print_prefix}{self.label}: "

    def noop(self, description: str) -> None:
        self.noops.append(description)
        if self.echo:
            log = logger.info if self._host.state.print_noop_info else logger.debug
            log(f"{self.print_prefix}noop: {description}")


def plain(value):
    """JSON-shaped data: dataclasses (``Stack``) become mappings, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def checked_groups(groups) -> list[list[Step]]:
    if isinstance(groups, (str, dict)) or not isinstance(groups, (list, tuple)) or not groups:
        raise OperationError(f"groups must be a non-empty list of lists of steps, got {groups!r}")
    checked = []
    for group in groups:
        if isinstance(group, (str, dict)) or not isinstance(group, (list, tuple)) or not group:
            raise OperationError(f"each group must be a non-empty list of steps, got {group!r}")
        checked.append([checked_step(step) for step in group])
    return checked


def checked_step(step) -> Step:
    if not isinstance(step, Step):
        raise OperationError(f"a step is a parallel.Step(operation, kwargs, label), got {step!r}")
    if not callable(getattr(step.operation, "_inner", None)):
        raise OperationError(f"step operation {step.operation!r} is not a pyinfra operation")
    if step.operation is concurrently:
        raise OperationError("concurrently cannot run itself as a step")
    if not isinstance(step.label, str) or "\n" in step.label:
        raise OperationError(f"step label must be a string on one line, got {step.label!r}")
    kwargs = step.kwargs
    if not isinstance(kwargs, dict) or any(not isinstance(key, str) or key.startswith("_") for key in kwargs):
        # global arguments (_sudo, _env, ...) belong to the concurrently operation, for all steps
        raise OperationError(f"{step.title}: kwargs must map argument names (no _global arguments), got {kwargs!r}")
    try:
        signature(step.inner).bind(**kwargs)
    except TypeError as error:
        raise OperationError(f"{step.title}: {step.path} {error}") from None
    return step


def advanced(generator, step_host: StepHost):
    """The generator's next command (None when it is done), with the step's host in context."""
    previous = ctx_host.get()
    ctx_host.set(step_host)
    try:
        return next(generator, None)
    finally:
        ctx_host.set(previous)


def closed(generator, step_host: StepHost) -> None:
    previous = ctx_host.get()
    ctx_host.set(step_host)
    try:
        generator.close()
    finally:
        ctx_host.set(previous)


def each_at_once(work, items: list) -> list:
    """``work(item)`` for every item, each in its own greenlet carrying pyinfra's context
    (state, host, config: ``host.get_fact`` needs them); the results in order, or the
    first item's exception raised once all are done."""
    current_state, current_host, config = ctx_state.get(), ctx_host.get(), ctx_config.get()
    if config is None:
        config = current_state.config.copy()

    def carried(item):
        with ctx_state.use(current_state), ctx_host.use(current_host), ctx_config.use(config):
            try:
                return True, work(item)
            except Exception as error:  # handed to the caller, not printed by gevent
                return False, error

    greenlets = [gevent.spawn(carried, item) for item in items]
    try:
        gevent.joinall(greenlets)
    finally:
        gevent.killall([greenlet for greenlet in greenlets if not greenlet.dead])
    results = []
    for ok, value in (greenlet.value for greenlet in greenlets):
        if not ok:
            raise value
        results.append(value)
    return results


@dataclasses.dataclass
class Pending:
    """A group found to change: its first changing step, already started, and the command
    that step yielded (facts read once, as pyinfra reads an operation's at execution)."""

    group: list[Step]
    index: int
    generator: typing.Iterator
    command: PyinfraCommand
    step_host: StepHost


def connection_lost(host) -> bool:
    """Whether the host's SSH connection is gone (pyinfra's connector then fails a command
    with no output of its own)."""
    client = getattr(host.connector, "client", None)
    if client is None or not hasattr(client, "get_transport"):
        return False
    transport = client.get_transport()
    return transport is None or not transport.is_active()


def described(error: Exception, host=None) -> str:
    """What a step's exception says to an operator; ``host``, where known, tells a dropped
    connection from other failures."""
    if isinstance(error, (OperationError, UnreadableOutput)):
        return str(error)
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    # a fact read or command on a connection that dropped: say so, not just "EOFError"
    if isinstance(error, (EOFError, ConnectionError, SSHException)):
        return f"SSH connection lost ({text})"
    if type(error) is PyinfraError:
        # pyinfra's own, bare: it failed the host on a fact it could not read ("No hosts
        # remaining"); our facts' errors (UnreadableOutput) are subclasses with their words
        return ("SSH connection lost (a fact could not be read)" if host is not None and connection_lost(host)
                else "a fact could not be read from the host (its error is above)")
    return text


def group_name(group: list[Step]) -> str:
    return ", ".join(dict.fromkeys(step.title for step in group))


def planned(group: list[Step]) -> tuple[int | None, list[str]]:
    """Planning: every step checked against the facts as they are now, each up to its first
    command, as pyinfra checks an operation. The first changing step and the noop reasons."""
    first, reasons = None, []
    for index, step in enumerate(group):
        step_host = StepHost(ctx_host.get(), step.title, echo=False)
        generator = step.commands()
        try:
            command = advanced(generator, step_host)
        except OperationError as error:
            raise OperationError(f"{step.name}: {error}") from None
        finally:
            closed(generator, step_host)
        if command is not None:
            first = index if first is None else first
        else:
            reasons += step_host.noops or [f"{step.title} at the target"]
    return first, reasons


def rechecked(group: list[Step]):
    """Executing: the steps checked again in order up to the first that changes something.
    A Pending, the noop reasons of a group at its target, or the failure of a step."""
    reasons = []
    for index, step in enumerate(group):
        step_host = StepHost(ctx_host.get(), step.title, echo=True)
        generator = step.commands()
        try:
            command = advanced(generator, step_host)
        except Exception as error:
            return (step.name, described(error, step_host._host))
        if command is not None:
            return Pending(group, index, generator, command, step_host)
        reasons += step_host.noops or [f"{step.title} at the target"]
    return reasons


def executed(command: PyinfraCommand, step_host: StepHost, connector_arguments: dict) -> str | None:
    """Run one command of a step as pyinfra's executor would: None, or why it failed."""
    real, current_state = step_host._host, ctx_state.get()
    arguments = {**connector_arguments, **command.connector_arguments}
    try:
        if isinstance(command, StringCommand):
            status, output = command.execute(current_state, real, arguments)
            if status is False:
                if not current_state.print_output:
                    print_host_combined_output(step_host, output)
                lines = [line for line in output.stderr_lines or output.stdout_lines if line.strip()]
                if lines:
                    return lines[-1].strip()
                return "SSH connection lost (no answer from the host)" if connection_lost(real) else "the command failed"
            return None
        status = command.execute(current_state, real, arguments)
    except TimeoutError:
        return f"command timed out after {arguments.get('_timeout')}s"
    except (ConnectionError, SSHException) as error:
        return described(error)
    except OSError as error:
        return f"command socket error: {described(error)}"
    except Exception as error:  # a FunctionCommand's callback can raise anything
        return described(error)
    return "the command failed" if status is False else None


def run_pending(pending: Pending, connector_arguments: dict) -> tuple[str, str] | None:
    """Run a group from its first changing step on: a step's generator only starts once the
    step before it finished, so it reads the facts as that step left them. None, or the
    failed step's name and error."""
    name, started, failure = group_name(pending.group), time.monotonic(), None
    logger.info(f"{host.print_prefix}{name}: started")
    for index in range(pending.index, len(pending.group)):
        step = pending.group[index]
        if index == pending.index:
            step_host, generator = pending.step_host, pending.generator
            commands = chain([pending.command], generator)
        else:
            step_host = StepHost(pending.step_host._host, step.title, echo=True)
            generator = commands = step.commands()
        try:
            while (command := advanced(commands, step_host)) is not None:
                error = executed(command, step_host, connector_arguments)
                if error is not None:
                    failure = (step.name, error)
                    break
        except Exception as raised:  # a step refusing while executing (the facts changed)
            failure = (step.name, described(raised, step_host._host))
        finally:
            closed(generator, step_host)
        if failure:
            break
    outcome = "failed after" if failure else "done in"
    logger.info(f"{host.print_prefix}{name}: {outcome} {time.monotonic() - started:.1f}s")
    return failure


def groups_run(pending: list[Pending] | None, failures: list, total: int, connector_arguments: dict):
    """The callback of the command ``concurrently`` yields. Its argument ``groups`` only
    describes the pending groups (for logs and case files): it runs those found while
    executing, with their first commands already taken, then reports every failure."""

    def run_groups(state, host, groups) -> bool:
        if pending is None:
            raise RuntimeError("groups planned are run by the command made while executing")
        found = failures + [failure for failure in each_at_once(
            lambda item: run_pending(item, connector_arguments), pending) if failure]
        if found:
            host.log_styled(f"{len(found)} of {total} groups failed: "
                            + "; ".join(f"{name}: {error}" for name, error in found),
                            fg="red", log_func=logger.error)
            return False
        return True

    return run_groups


def summary(reasons: list[str], steps: int) -> str:
    return f"all {steps} steps at the target: " + "; ".join(dict.fromkeys(reasons))


@operation()
def concurrently(groups: list[list[dict]]):
    """
    Run groups of steps at the same time on a host, the steps of each group in order.

    + groups: lists of ``Step`` objects (see the module docstring); the groups run at the same
      time, the steps of a group one after another

    Each group behaves as its steps would as operations of their own, one after
    another: while planning, every step is checked against the facts as they are (and
    its refusals raised); nothing happens when every step is at its target. While
    executing, the steps are checked again, groups that reached their target are
    skipped, and one command runs the others, each in its own greenlet. A step's
    generator only starts once the step before it finished, so it reads the facts that
    step left (``swapped_in`` sees the shadow copy ``shadow_loaded`` just loaded), and
    each command it yields runs right away, with the operation's global arguments
    (``_sudo``, ``_env``, ...): give those to ``concurrently``, not to the steps.

    A failing step stops its own group; the other groups finish, then the operation
    fails with one message naming each failed step and its error. Every group logs
    when it starts and when it is done, with its duration. As for any Python callback,
    ``_timeout`` also bounds the whole operation, not just each command. Over SSH the
    groups share one connection, a channel each: OpenSSH allows 10 at once by default
    (``MaxSessions``).

    **Example:**

    .. code:: python

        parallel.concurrently(
            name="Restore the components",
            groups=[
                [
                    Step(mysql.shadow_loaded, {"stack": Stack("/srv/layra"), "database": "layra",
                                               "dump_file": "/var/backups/layra/2026/mysql.layra.sql.gz",
                                               "sha256": "9f86d08...", "fingerprint": {...}}, "mysql/layra"),
                    Step(mysql.swapped_in, {"stack": Stack("/srv/layra"), "database": "layra",
                                            "fingerprint": {...}}, "mysql/layra"),
                ],
                [
                    Step(redis.restored, {"stack": Stack("/srv/layra"),
                                          "rdb_file": "/var/backups/layra/2026/redis.rdb.gz",
                                          "sha256": "5f1c...", "fingerprint": {...}}, "redis"),
                ],
            ],
        )
    """
    checked = checked_groups(groups)
    steps = sum(len(group) for group in checked)

    if not state.is_executing:
        plans = each_at_once(planned, checked)
        changing = [group[first:] for group, (first, _) in zip(checked, plans) if first is not None]
        if not changing:
            host.noop(summary([reason for _, reasons in plans for reason in reasons], steps))
            return
        described_groups = [[step.as_data() for step in group] for group in changing]
        yield FunctionCommand(groups_run(None, [], len(checked), {}), (described_groups,), {})
        return

    checks = each_at_once(rechecked, checked)
    for group, check in zip(checked, checks):
        if isinstance(check, list):
            logger.info(f"{host.print_prefix}{group_name(group)}: at the target, skipped")
    pending = [check for check in checks if isinstance(check, Pending)]
    failures = [check for check in checks if isinstance(check, tuple)]
    if not pending and not failures:
        host.noop(summary([reason for check in checks for reason in check], steps))
        return
    connector_arguments = {key: value for key, value in (host.current_op_global_arguments or {}).items()
                           if key in CONNECTOR_ARGUMENT_KEYS}

    run_groups = groups_run(pending, failures, len(checked), connector_arguments)
    yield FunctionCommand(run_groups, ([[step.as_data() for step in p.group[p.index:]] for p in pending],), {})
