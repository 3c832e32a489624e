"""
Shell pieces every fact shares: the base that reads a fact's output whole or not at all,
the packaged shell scripts, several answers in one round trip (sections), and probes
whose failure is an answer rather than an error.
"""

from __future__ import annotations

import functools
import inspect
import re
from importlib import resources

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactError

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


def absolute_path(value) -> bool:
    """An absolute path on one line (no newline, carriage return or NUL): what a command
    takes as one word, and a log line shows whole."""
    return isinstance(value, str) and value.startswith("/") and not set(value) & set("\n\r\0")


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


@functools.cache
def script(name: str, package: str = "facts") -> str:
    """The shell script ``<package>/scripts/<name>.sh`` (``facts`` or ``operations``), its
    comment lines left out (they stay in the file, for readers and shellcheck; the host
    gets the code). A comment line is one whose first non-blank character is ``#``: no
    line of a quoted program in a script may start so."""
    text = resources.files(package).joinpath("scripts", f"{name}.sh").read_text()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).strip()


# The last line of every fact's output, printed only when all of it was UTF-8 text (whole.sh).
WHOLE_MARKER = "--- layra:whole ---"


def whole(command) -> StringCommand:
    """``command`` run so that its output is read whole or not at all (``scripts/whole.sh``)."""
    return StringCommand(script("whole"), "\nlayra_fact() {", command, "\n}; layra_whole")


class UnreadableOutput(FactError):
    """A fact's output did not reach us whole: never acted on, never taken for an answer.

    Not pyinfra's ``FactProcessError``: for that one pyinfra fails the host but hands the
    operation the fact's default, and an operation on a host among others would go on."""


class PartialFingerprint(UnreadableOutput):
    """A fingerprint that would leave part of the data out: refused, never compared."""


class WholeOutputFact(FactBase):
    """A fact whose output is read whole or not at all.

    Its subclasses write ``command`` and ``process`` as any pyinfra fact does; here the
    command is wrapped by ``whole`` and ``process`` gets the lines only once the marker
    shows that every one of them arrived as text. Output that is not UTF-8 (a table name
    from a latin1 client, say) or that stops short raises ``UnreadableOutput`` naming the
    host and the fact, instead of a fact built from the lines before the bad byte.
    An empty output gets the fact's ``default()``, as pyinfra gives it.
    """

    abstract = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "command" in own:
            cls.command = _whole_command(own["command"])
        if "process" in own:
            cls.process = _whole_process(own["process"])


def _whole_command(command):
    if isinstance(command, str):
        return lambda self, *args, **kwargs: whole(command)

    @functools.wraps(command)
    def wrapped(self, *args, **kwargs):
        return whole(command(self, *args, **kwargs))

    # pyinfra (and pyinfra-testing) read a fact's arguments from its command's signature
    wrapped.__signature__ = inspect.signature(command)
    return wrapped


def _whole_process(process):
    @functools.wraps(process)
    def wrapped(self, output):
        lines = list(output)
        if not lines or lines[-1] != WHOLE_MARKER:
            where = host_name()
            last = f" after {len(lines)} line(s), the last {lines[-1][:80]!r}" if lines else " (no line at all)"
            raise UnreadableOutput(
                f"{where}: fact {type(self).__name__} could not read its command's output whole: it stopped{last}, "
                "at a byte that is not UTF-8 text or where the command was cut short; nothing was decided on it")
        lines.pop()
        if lines and lines[-1] == "":
            lines.pop()   # the line break whole.sh puts before the marker, after a last line's own
        return process(self, lines) if lines else self.default()

    return wrapped


def host_name() -> str:
    """The current host's name, for messages (``the host`` outside a pyinfra context)."""
    try:
        return host.name or "the host"
    except Exception:  # noqa: BLE001 - no host in context (a unit test calling process)
        return "the host"
