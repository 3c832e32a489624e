"""
MySQL / MariaDB engine facts, and the client command every MySQL fact and operation
runs: a client program inside the service's container (`docker compose exec -T`), with
the password read on the host from the stack's env file and handed over as
``MYSQL_PWD`` in the environment, never on a command line.
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shell import parse_probe, probe

# Picks `mariadb<tool>` where the image has it (MariaDB 11 dropped the mysql* names),
# else `mysql<tool>` (MySQL images): tool "" -> mariadb/mysql, "-admin" -> mariadb-admin/mysqladmin.
CLIENT_SHIM = (
    'tool=$1; shift; if command -v "mariadb$tool" >/dev/null 2>&1; '
    'then exec "mariadb$tool" "$@"; fi; exec "mysql${tool#-}" "$@"'
)


def mysql_client(
    stack: Stack,
    service: str,
    user: str,
    password_key: str | None,
    tool: str,
    *args,
) -> StringCommand:
    """A MySQL client program (``tool``: "", "-admin", "-dump") run in ``service``."""
    export = [export_from_env_file(stack.env_path, password_key, "MYSQL_PWD")] if password_key else []
    env = ["-e", "MYSQL_PWD"] if password_key else []
    return StringCommand(
        *export,
        compose_command(stack, "exec", "-T", *env, QuoteString(service),
                        "sh", "-c", QuoteString(CLIENT_SHIM), "sh", QuoteString(tool),
                        "-u", QuoteString(user), *args),
    )


class MysqlFactBase(FactBase):
    """Facts that ask the MySQL server of a stack's service."""

    abstract = True

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"


class MysqlPing(MysqlFactBase):
    """
    Returns whether the server answers ``mysqladmin ping`` with the stack's credentials.

    .. code:: python

        {"ok": True, "output": "mysqld is alive"}
    """

    def command(self, stack: Stack, service: str = "mysql", user: str = "root",
                password_key: str | None = "MYSQL_ROOT_PASSWORD") -> StringCommand:
        stack = Stack.of(stack)
        return probe(mysql_client(stack, service, user, password_key, "-admin", "ping"))

    def process(self, output):
        return parse_probe(output)
