"""
Arguments every operation module checks the same way, refused with one wording: a path on
the host, a database name (MySQL and MongoDB, through a shadow copy).
"""

from __future__ import annotations

from pyinfra.api import OperationError

from facts.shadow import DATABASE_RULE, valid_database
from facts.shell import absolute_path


def checked_path(value, what: str) -> str:
    """``value``, an absolute path on one line; ``OperationError`` naming ``what`` otherwise."""
    if not absolute_path(value):
        raise OperationError(f"{what} must be an absolute path on one line, got {value!r}")
    return value


def checked_database(database) -> str:
    if not valid_database(database):
        raise OperationError(f"database {database!r} is not {DATABASE_RULE}")
    return database
