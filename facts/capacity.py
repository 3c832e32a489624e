"""
Facts about a host's capacity: free disk under a path and memory in use.
"""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand

from .shell import WholeOutputFact


class DiskFree(WholeOutputFact):
    """
    Returns the filesystem holding ``path`` (or, while it does not exist yet, its nearest
    existing parent) and how much of it is free.

    .. code:: python

        {"mount": "/", "size_kb": 263174212, "free_kb": 83882092, "free_pct": 31.9}
    """

    def command(self, path: str) -> StringCommand:
        return disk_free_command(path)

    def process(self, output):
        return parse_disk_free(output)


def disk_free_command(path: str) -> StringCommand:
    """``df`` of the filesystem holding ``path`` (``DiskFree``; also one of ``HostMetrics``' answers)."""
    return StringCommand(
        StringCommand("p=", QuoteString(path), _separator=""), '; while [ ! -e "$p" ]; do p=$(dirname "$p"); done;',
        'df -Pk "$p" | tail -n 1',
    )


def parse_disk_free(output: list[str]) -> dict:
    fields = output[-1].split()
    size_kb, free_kb = int(fields[1]), int(fields[3])
    return {
        "mount": fields[5],
        "size_kb": size_kb,
        "free_kb": free_kb,
        "free_pct": round(100.0 * free_kb / size_kb, 1) if size_kb else 0.0,
    }


class MemoryUsage(WholeOutputFact):
    """
    Returns the host's memory in use (total less available), from ``/proc/meminfo``.

    .. code:: python

        {"total_kb": 24576000, "available_kb": 20000000, "used_pct": 18.6}
    """

    def command(self) -> str:
        return "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo"

    def process(self, output):
        values = {}
        for line in output:
            name, _, rest = line.partition(":")
            values[name.strip()] = int(rest.split()[0])
        total, available = values["MemTotal"], values["MemAvailable"]
        return {
            "total_kb": total,
            "available_kb": available,
            "used_pct": round(100.0 * (total - available) / total, 1) if total else 0.0,
        }
