"""
Shadow databases, as the MySQL and MongoDB engines restore through them: a database
name both accept everywhere (quoted in SQL, in a namespace, in a file name), and the
suffixes of the copy being restored and of the copy it replaced.
"""

from __future__ import annotations

import re

# Room for the suffixes within the engines' 64 characters.
DATABASE_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,48}\Z")
DATABASE_RULE = "a plain database name (letters, digits, _; at most 48)"
SHADOW_SUFFIX = "__restore"
PREVIOUS_SUFFIX = "__pre_restore"


def valid_database(name) -> bool:
    return isinstance(name, str) and bool(DATABASE_PATTERN.match(name))


def staged_copy_problem(engine: str, database: str, shadow: dict, fingerprint: dict, same, summary) -> str | None:
    """Why the staged shadow copy of ``<engine>/<database>`` cannot be swapped in (None: it
    matches the snapshot's ``fingerprint``), by the engine's own ``same`` decision and
    ``summary`` words."""
    if same(shadow, fingerprint):
        return None
    found = summary(shadow) if shadow.get("exists") else "no shadow copy"
    return (f"{engine}/{database}: the staged copy does not match the snapshot ({found}, want "
            f"{summary(fingerprint)}); the live database was not touched")
