"""
The rollback lock on the deploy's side: refuse a run while another holds a host's lock
(naming the holder and since when, and whether it is stale), take it before the first
change, release it at the end, and release it at once on a host that fails midway:
pyinfra runs no further operation there, but the run is over for that host.

A run killed outright (or cut off from a host) cannot release its lock. The next run is
refused until the operator breaks it explicitly: ``--data break_lock=<its run id>``.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import DeployError
from pyinfra.api.state import BaseStateCallback

from facts.lock import WorkInProgress, lock_path, release_command, valid_run_id
from facts.maintenance import MaintenanceState

from .runs import command_line


def process_alive(pid) -> bool:
    """Whether ``pid`` on this machine is still a pyinfra run (a recycled pid is not)."""
    try:
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError, TypeError):
        return False
    return b"pyinfra" in cmdline or b"layra-rollback" in cmdline


def holder_state(holder: dict, here: str | None = None) -> str:
    """Whether the holding run can still be alive, as far as this machine can tell:
    ``elsewhere`` (another controller), ``running`` (here) or ``gone`` (here: stale)."""
    if holder.get("controller") != (here or socket.gethostname()):
        return "elsewhere"
    return "running" if process_alive(holder.get("pid")) else "gone"


def holder_status(holder: dict, here: str | None = None) -> str:
    """``holder_state`` in the words of a refusal."""
    return {"elsewhere": f"It runs from {holder.get('controller')}: check there that it has ended "
                         "before breaking its lock.",
            "running": "Its process is still running here.",
            "gone": "Its process is gone: the lock is stale."}[holder_state(holder, here)]


def lock_refusal(stack_dir: str, holder: dict | None, breaking: str | None, here: str | None = None) -> str | None:
    """Why this run may not take the stack's lock, or None when it may."""
    path = lock_path(stack_dir)
    if holder is None:
        return None
    if "unreadable" in holder:
        return (f"the rollback lock {path} is not one we wrote ({holder['unreadable']!r}): "
                "make sure no rollback runs, then remove it by hand")
    run_id = holder["run_id"]
    status = holder_status(holder, here)
    if breaking == run_id:
        if holder_state(holder, here) == "running":
            return f"run {run_id} still runs here (pid {holder.get('pid')}): its lock is not stale, refusing to break it"
        return None
    return (f"another rollback holds the lock {path}: run {run_id} by {holder.get('who')} "
            f"(pid {holder.get('pid')}) since {holder.get('since')}. {status} Wait for it to end; "
            f"if it is dead, break its lock with --data break_lock={run_id}")


def maintenance_left_on(stack, quiesce: dict | None, lift: str) -> str:
    """For a refusal naming a run that may have died midway: whether it left maintenance on
    here, and the command that lifts it ("" where it is off, or the host has none)."""
    if not quiesce:
        return ""
    state = host.get_fact(MaintenanceState, stack=stack, service=quiesce["service"], dropin=quiesce["dropin"])
    where = ([f"MAINTENANCE_MODE={state['env_file']} in the env file"] if state["env_file"] == "true" else []) + \
        ([f"the nginx drop-in {quiesce['dropin']} in place"] if state["dropin"] == "ours" else []) + \
        ([f"{quiesce['service']} containers running with it"] if any(v == "true" for v in state["containers"].values()) else [])
    if not where:
        return " Maintenance is off here."
    return (f" MAINTENANCE IS STILL ON here ({', '.join(where)}): writes get 503 until it is lifted. Once that run "
            f"is over, lift it with: {lift}")


def orphaned_work_waited(stack_dir: str, wait: int):
    """Wait up to ``wait`` seconds for the data-changing steps of an earlier run that still
    run here (a run killed or cut off leaves them running; they hold the stack's work lock)
    to end; refuse the run, naming them, while they still run."""
    busy = host.get_fact(WorkInProgress, stack_dir=stack_dir)
    if not busy:
        return
    logger.warning(f"{host.print_prefix}steps of an earlier run still change data here, waiting up to {wait}s "
                   f"for them to end: {'; '.join(busy)}")
    busy = host.get_fact(WorkInProgress, stack_dir=stack_dir, wait=wait)
    if busy:
        raise DeployError(f"{host.name}: steps of an earlier run still change data here after {wait}s: "
                          f"{'; '.join(busy)}. Nothing was changed; run again once they have ended")
    logger.info(f"{host.print_prefix}the earlier run's steps have ended")


def lock_to_break(data) -> str | None:
    value = data.get("break_lock")
    if value in (None, ""):
        return None
    if not valid_run_id(str(value)):
        raise DeployError(f"--data break_lock={value!r} must be the run id the refusal named, "
                          "e.g. 20261121T130000Z-rollback")
    return str(value)


class Locks(BaseStateCallback):
    """This process's hold on each host's lock: one holder (a random token) per run."""

    def __init__(self):
        self.token = secrets.token_hex(16)
        self.taken_by: set[str] = set()         # op hashes of `lock.taken`
        self.released_by: set[str] = set()      # op hashes of `lock.released`
        self.stack_dirs: dict[str, str] = {}    # host name -> its stack's directory
        self.holding: dict[str, tuple] = {}     # host name -> (host, stack dir)
        self.kept: dict[str, str] = {}          # host name -> why its lock could not be released
        self.attached = None

    def holder(self, run_id: str) -> dict:
        return {"run_id": run_id, "who": f"{getpass.getuser()}@{socket.gethostname()}",
                "controller": socket.gethostname(), "pid": os.getpid(), "command": command_line()[:300],
                "token": self.token}

    def attach(self, state):
        state = state._get_module() if hasattr(state, "_get_module") else state
        if self.attached is not state:
            state.add_callback_handler(self)
            self.attached = state

    def track(self, host_name: str, taken, released, stack_dir: str):
        """The operations that take and release ``host_name``'s lock (one per run, for every
        host), and where that host's stack is."""
        self.taken_by.add(taken._hash)
        self.released_by.add(released._hash)
        self.stack_dirs[host_name] = stack_dir

    def operation_host_success(self, state, host, op_hash, retry_count=0):
        if op_hash in self.taken_by:
            self.holding[host.name] = (host, self.stack_dirs[host.name])
        elif op_hash in self.released_by:
            self.holding.pop(host.name, None)

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        arguments = state.get_op_data_for_host(host, op_hash).global_arguments
        if host.name not in self.holding or arguments.get("_ignore_errors") or arguments.get("_continue_on_error"):
            return
        _, stack_dir = self.holding.pop(host.name)
        try:
            ok, output = host.run_shell_command(release_command(stack_dir, self.token))
            why = " ".join(line.strip() for line in output.stderr_lines)[-200:] or "the command failed"
        except Exception as error:  # noqa: BLE001 - the connection may be gone with the failure
            ok, why = False, f"the SSH connection is lost: {type(error).__name__}"
        if ok:
            logger.info(f"{host.print_prefix}the run failed here: rollback lock released")
        else:
            self.kept[host.name] = f"{lock_path(stack_dir)} could not be removed ({why})"

    def warnings(self, run_id: str) -> list[str]:
        """For the run's summary: hosts whose lock this run leaves behind."""
        lines = [f"{name}: the rollback lock stays: {why}" for name, why in sorted(self.kept.items())]
        lines += [f"{name}: the rollback lock stays at {lock_path(stack_dir)} (the run ended before releasing it)"
                  for name, (_, stack_dir) in sorted(self.holding.items())]
        if lines:
            lines.append(f"once sure run {run_id} is over, break it: --data break_lock={run_id}")
        return lines


LOCKS = Locks()
