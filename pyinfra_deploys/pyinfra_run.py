"""
pyinfra run from this process, as an operator runs it: a subprocess (``python -m pyinfra
-y ...``) with this project importable, its error lines read back; or an inventory file
loaded through pyinfra's API beside any run in this process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def pyinfra_env(**extra: str) -> dict:
    """The environment of a pyinfra subprocess: ours, with this project importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def pyinfra(inventory: str, *arguments: str, limit: tuple[str, ...] = (), verbose: bool = False):
    """Run ``python -m pyinfra -y`` with this project importable; output captured, not checked."""
    command = [sys.executable, "-m", "pyinfra", "-y", *(["-v"] if verbose else [])]
    for pattern in limit:
        command += ["--limit", pattern]
    command += [inventory, *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=pyinfra_env())


def loaded_inventory(path: str):
    """``(state, inventory)``: an inventory file loaded through pyinfra's API into a State of
    its own (not yet initialised or connected), beside any pyinfra run in this process."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    state = State(check_for_changes=False)
    state.cwd = os.getcwd()
    with ctx_state.use(state):   # pyinfra's inventory loader expects a state in context
        inventory = make_inventory(path, cwd=state.cwd)
    return state, inventory


PYINFRA_ERROR = re.compile(r"^--> (?:pyinfra error: |Operation error in \S+ line \d+: )(?P<message>.*)$")


def pyinfra_error(result) -> str:
    """The reason pyinfra gives for a failed run (its ``-->`` error lines), else its last lines."""
    output = (result.stdout or "") + (result.stderr or "")
    errors = [match.group("message") for match in map(PYINFRA_ERROR.match, output.splitlines()) if match]
    tail = "\n".join(output.strip().splitlines()[-15:])
    return "; ".join(errors) or tail or f"pyinfra exited with status {result.returncode}"


def host_lines(output: str, pattern: str) -> list[tuple[str, str]]:
    """``(host, message)`` for pyinfra output lines ``[host] message`` matching ``pattern``."""
    found = []
    for line in output.splitlines():
        match = re.match(r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<message>.*)$", line)
        if match and re.search(pattern, match.group("message")):
            found.append((match.group("host"), match.group("message").strip()))
    return found
