"""How plans, checks and reports put numbers into words."""

from __future__ import annotations


def counted(number, noun: str, plural: str | None = None) -> str:
    """``1 key``, ``200,005 keys``, ``? rows`` (no number known)."""
    if number is None:
        return f"? {plural or noun + 's'}"
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def moved(current, target, noun: str, plural: str | None = None) -> str:
    """``1,363,637 -> 1,500,000 rows``, ``1 -> 2 documents``, ``? -> 4 rows``."""
    left = "?" if current is None else f"{current:,}"
    return f"{left} -> {counted(target, noun, plural)}"
