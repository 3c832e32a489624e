"""A fact's output as pyinfra hands it over when all of it arrived (``facts.shell.whole``)."""

from facts.shell import WHOLE_MARKER


def read_whole(lines: list[str]) -> list[str]:
    """``lines`` followed by the marker only a whole, readable output ends with."""
    return [*lines, WHOLE_MARKER]


def unwrapped(command: str) -> str:
    """A fact's own command as the fact wrote it, without ``whole.sh`` around it (what a
    count of the commands a run sends says it asked)."""
    _, marker, body = command.partition("layra_fact() { ")
    return body.rsplit("\n}; layra_whole", 1)[0] if marker else command
