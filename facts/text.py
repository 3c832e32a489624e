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


def human_size(size: int | None) -> str:
    """``1536 -> "1.5 KiB"``: binary units, one decimal from KiB up."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
