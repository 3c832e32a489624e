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
