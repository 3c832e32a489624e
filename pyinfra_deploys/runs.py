"""
What every run leaves behind, whoever writes it (the record, its reports, the rehearsal,
the plan file, the lock's holder): the phases a run times, where runs keep their files,
files written private from their creation, the command line as the operator typed it.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

# The phases of a rollback, in the order they run; the report times them against the RTO
# targets. Phase 4 (integrity) runs before maintenance is lifted, so no write lands between
# a restore and its check.
# A guarded release (migrate.py) runs the first three; a rollback the rest.
PHASES = ("pre_migration_snapshot", "release", "watch", "stage",
          "maintenance_on", "safety_in_window", "stack", "restore", "caches", "verify_integrity", "maintenance_off",
          "verify_infrastructure", "verify_connectivity", "verify_functionality", "safety_snapshot")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


def runs_dir() -> Path:
    return Path(os.environ.get("LAYRA_RUNS_DIR") or "runs")


def private_dir(path: Path) -> Path:
    """``path`` with every missing parent created 0700: run ids are not for others to list."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    return path


def write_private(path: Path, text: str):
    """Replace ``path`` atomically with ``text``, the file 0600 from its creation on."""
    temporary = path.with_name(f".{path.name}.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(text)
    temporary.chmod(0o600)  # a temporary left by a crash keeps its own mode otherwise
    temporary.replace(path)


# --data values that may carry a token (a chat or paging webhook's URL): never recorded
SECRET_DATA = ("hook_url",)


def command_line() -> str:
    """The pyinfra command as the operator typed it, webhook URLs left out."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("pyinfra", "__main__.py")):
        argv[0] = "pyinfra"
    return " ".join(f"{a.split('=', 1)[0]}=[redacted]" if a.split("=", 1)[0] in SECRET_DATA and "=" in a else a
                    for a in argv)


# pyinfra's options that take a value: the inventory is the first argument not one of theirs.
VALUE_OPTIONS = {"--limit", "--exclude", "--data", "--group-data", "--config", "--chdir", "--user", "--port",
                 "--key", "--key-password", "--password", "--sudo-user", "--su-user", "--shell-executable",
                 "--parallel", "--fail-percent", "--retry", "--retry-delay", "--dzdo-user"}


def inventory_argument() -> str | None:
    arguments = iter(sys.argv[1:])
    for argument in arguments:
        if argument in VALUE_OPTIONS:
            next(arguments, None)
        elif not argument.startswith("-"):
            return argument
    return None


# The line every run prints first in its summary: how a caller finds the record it wrote.
RUN_LINE = re.compile(r"--> Run (\S+) (succeeded|failed): record (\S+)")
