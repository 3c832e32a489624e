"""
The rollback lock: one file per stack, ``<stack dir>/.git/layra-rollback.lock``, held by
the run that is changing the stack. It lives beside the stack's git metadata, so every
run against that stack finds it whatever snapshot root it uses, and git ignores it.

Its content is one JSON line naming the holder:

.. code:: python

    {"run_id": "20261121T130000Z-rollback", "who": "alice@ops-1", "controller": "ops-1",
     "pid": 4242, "command": "pyinfra inventories/prod.py rollback.py ...",
     "token": "5f0c...", "since": "2026-11-21T13:00:02Z"}

A run releases only the lock that carries its own random ``token`` (two runs may share
a run id when started in the same second). The file is created with ``set -C`` (O_EXCL): of two runs racing for it, one wins. The
command builders are shared by the operations and by the deploy, which releases the
lock itself when a host fails midway (pyinfra runs no further operation there).
"""

from __future__ import annotations

import json
import re

from pyinfra.api import QuoteString, StringCommand

from .shell import WholeOutputFact, assign, script

LOCK_NAME = "layra-rollback.lock"
# Held (flock) by every step that changes data on the host, while it runs: scripts/hold_work.sh
WORK_LOCK_NAME = "layra-rollback.work"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[a-z-]+$")


def lock_path(stack_dir: str) -> str:
    return f"{stack_dir.rstrip('/')}/.git/{LOCK_NAME}"


def work_lock_path(stack_dir: str) -> str:
    return f"{stack_dir.rstrip('/')}/.git/{WORK_LOCK_NAME}"


def holding_work(stack_dir: str, what: str) -> StringCommand:
    """Shell that holds the stack's work lock for the rest of the command and what it
    starts, under a line naming ``what``: a step that outlives its run (pyinfra killed)
    keeps the next run waiting until it ends (``WorkInProgress``)."""
    return StringCommand(script("hold_work"), "\nlayra_hold_work", QuoteString(work_lock_path(stack_dir)),
                         QuoteString(what), "|| exit 1;")


def valid_run_id(run_id) -> bool:
    return isinstance(run_id, str) and bool(RUN_ID.match(run_id)) and "\n" not in run_id


def marker(key: str, value: str) -> str:
    """The exact text a lock file holds for ``key`` (``"run_id": "..."``)."""
    if not (valid_run_id(value) if key == "run_id" else re.fullmatch(r"[0-9a-f]{16,64}", str(value))):
        raise ValueError(f"lock {key} {value!r} is not one we write")
    return json.dumps({key: value})[1:-1]


def take_command(stack_dir: str, holder: dict, breaking: str | None = None) -> StringCommand:
    """Create the lock naming ``holder`` (its ``since`` is the host's clock), or fail naming
    whoever holds it. ``breaking``: first remove a lock held by that run id, and no other."""
    prefix = json.dumps({key: value for key, value in holder.items() if key != "since"})[:-1]
    steps = ["umask 077;", assign(lock=lock_path(stack_dir))]
    if breaking:
        steps += ['if grep -qsF', QuoteString(marker("run_id", breaking)), '"$lock"; then rm -f "$lock" &&',
                  "echo", QuoteString(f"broke the stale lock of run {breaking}"), "; fi;"]
    steps += [
        "if ! ( set -C; printf '%s, \"since\": \"%s\"}\\n'", QuoteString(prefix),
        '"$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$lock" ) 2>/dev/null; then',
        'echo "another rollback holds the lock $lock: $(head -c 600 "$lock" 2>/dev/null);'
        ' nothing was changed on this host" >&2; exit 1; fi',
    ]
    return StringCommand(*steps)


def release_command(stack_dir: str, token: str) -> StringCommand:
    """Remove the lock if (and only if) the holder with ``token`` holds it."""
    path = QuoteString(lock_path(stack_dir))
    return StringCommand("if grep -qsF", QuoteString(marker("token", token)), path, "; then rm -f", path, "; fi")


class RollbackLock(WholeOutputFact):
    """
    Returns who holds the stack's rollback lock, or ``None`` when no run does. A lock file
    that is not the JSON we write comes back as ``{"unreadable": "<its first bytes>"}``.

    .. code:: python

        {"run_id": "20261121T130000Z-rollback", "who": "alice@ops-1", "controller": "ops-1",
         "pid": 4242, "command": "pyinfra ...", "token": "5f0c...", "since": "2026-11-21T13:00:02Z"}
    """

    def command(self, stack_dir: str) -> StringCommand:
        return StringCommand("head -c 4096 --", QuoteString(lock_path(stack_dir)), "2>/dev/null || true")

    def process(self, output):
        text = "\n".join(output).strip()
        if not text:
            return None
        try:
            holder = json.loads(text)
        except ValueError:
            holder = None
        if not isinstance(holder, dict) or not valid_run_id(holder.get("run_id")):
            return {"unreadable": text[:200]}
        return holder


class WorkInProgress(WholeOutputFact):
    """
    Returns the steps still changing data on the host (of a run that was killed or cut
    off: nothing stops them), after waiting up to ``wait`` seconds for them to end; an
    empty list when none runs.

    .. code:: python

        ["mysql/layra: load the shadow copy (pid 4242, since 2026-11-21T13:00:02Z)"]
    """

    @staticmethod
    def default() -> list:
        return []

    def command(self, stack_dir: str, wait: int = 0) -> StringCommand:
        return StringCommand(script("work_in_progress"), "\nlayra_work_in_progress", QuoteString(work_lock_path(stack_dir)),
                             QuoteString(str(int(wait))))

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if not lines or lines[0] != "busy":
            return []
        return lines[1:] or ["a step whose shell is gone (what it started still holds the lock)"]
