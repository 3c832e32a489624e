"""A fact's output as pyinfra hands it over when all of it arrived (``facts.shell.whole``)."""

from facts.shell import WHOLE_MARKER


def read_whole(lines: list[str]) -> list[str]:
    """``lines`` followed by the marker only a whole, readable output ends with."""
    return [*lines, WHOLE_MARKER]
