"""
Shell pieces every fact shares: several answers in one round trip (sections), and
probes whose failure is an answer rather than an error.
"""

from __future__ import annotations

import re

from pyinfra.api import QuoteString, StringCommand

MARKER = re.compile(r"--- layra:([a-z_]+) ---")


def section(name: str) -> StringCommand:
    """A marker line that starts the section called ``name`` in a fact's output."""
    return StringCommand("echo", QuoteString(f"--- layra:{name} ---"))


def split_sections(output: list[str]) -> dict[str, list[str]]:
    """Split fact output on the marker lines `section` prints."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output:
        match = MARKER.fullmatch(line.strip())
        if match:
            current = sections.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line)
    return sections


def probe(command: StringCommand) -> StringCommand:
    """Run ``command`` in a subshell; its output and exit status become the fact."""
    return StringCommand(
        section("output"), "; (", command, ") 2>&1; rc=$?;", section("status"), '; echo "$rc"'
    )


def parse_probe(output: list[str]) -> dict:
    """``{"ok": True, "output": "mysqld is alive"}`` from a `probe`'s output."""
    sections = split_sections(output)
    status = (sections.get("status") or ["1"])[0].strip()
    return {"ok": status == "0", "output": "\n".join(sections.get("output", [])).strip()[-300:]}


def failing(message: str, *before) -> StringCommand:
    """A command that fails the host with ``message`` on stderr (after ``before``, if any).

    Operations yield it for refusals found while executing rather than planning, so the
    deploy still gets to clean up after them (a partial snapshot, say)."""
    return StringCommand(*before, "echo", QuoteString(message), ">&2; exit 1")


def assign(**values: str) -> StringCommand:
    """``name='value';`` for each value: how values enter our fixed shell scripts."""
    parts: list = []
    for name, value in values.items():
        parts.append(StringCommand(f"{name}=", QuoteString(str(value)), ";", _separator=""))
    return StringCommand(*parts)


def text_written(path: str, text: str) -> StringCommand:
    """Write ``text`` to ``path`` (created 0600) from the command itself: no SFTP subsystem
    needed, and a connection that drops fails it as it fails any command."""
    return StringCommand("umask 077; printf '%s'", QuoteString(text), ">", QuoteString(path))


# Snapshot compression: zstd where the host has it (several times faster than gzip at a
# smaller size, so a dump is bound by the database, not the compressor), else gzip.
# name -> (file suffix, compress stdin to stdout, decompress a file to stdout)
COMPRESSORS = {"zstd": (".zst", "zstd -q -T0 -c", "zstd -q -dc"), "gzip": (".gz", "gzip -c", "gzip -dc")}

# Prints `zstd` when the host can compress with zstd, else `gzip`.
COMPRESSOR_PROBE = "command -v zstd >/dev/null 2>&1 && echo zstd || echo gzip"


def decompressor(path: str) -> str:
    """The command that decompresses ``path`` to stdout, chosen by its suffix."""
    return COMPRESSORS["zstd" if path.endswith(COMPRESSORS["zstd"][0]) else "gzip"][2]
