"""
MySQL / MariaDB engine facts, and the client commands every MySQL fact and operation
runs: a client program inside the service's container (`docker compose exec -T`), with
the password read on the host from the stack's env file and handed over as
``MYSQL_PWD`` in the environment, never on a command line.

Engine protocol: ``MysqlFingerprint`` (what the data is), ``operations.mysql.dumped``,
``operations.mysql.shadow_loaded`` + ``operations.mysql.swapped_in`` (restore), and the
deploy's verify step comparing fingerprints.
"""

from __future__ import annotations

import re

from pyinfra.api import FactBase, QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shell import COMPRESSOR_PROBE, COMPRESSORS, assign, parse_probe, probe

# Room for the `__restore` / `__pre_restore` suffixes within MySQL's 64 characters.
DATABASE_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,48}\Z")
SHADOW_SUFFIX = "__restore"
PREVIOUS_SUFFIX = "__pre_restore"

# Picks `mariadb<tool>` where the image has it (MariaDB 11 dropped the mysql* names),
# else `mysql<tool>` (MySQL images): tool "" -> mariadb/mysql, "-admin" -> mariadb-admin/mysqladmin.
CLIENT_SHIM = (
    'tool=$1; shift; if command -v "mariadb$tool" >/dev/null 2>&1; '
    'then exec "mariadb$tool" "$@"; fi; exec "mysql${tool#-}" "$@"'
)


def valid_database(name: str) -> bool:
    return isinstance(name, str) and bool(DATABASE_PATTERN.match(name))


def client_function(stack: Stack, service: str, user: str, password_key: str | None) -> StringCommand:
    """Defines ``m TOOL ARGS...`` in the shell: a client program run in the service."""
    export = [export_from_env_file(stack.env_path, password_key, "MYSQL_PWD")] if password_key else []
    env = ["-e", "MYSQL_PWD"] if password_key else []
    return StringCommand(
        *export,
        "m() { tool=$1; shift;",
        compose_command(stack, "exec", "-T", *env, QuoteString(service),
                        "sh", "-c", QuoteString(CLIENT_SHIM), "sh", '"$tool"', "-u", QuoteString(user), '"$@";'),
        "};",
    )


def mysql_client(stack: Stack, service: str, user: str, password_key: str | None, tool: str, *args) -> StringCommand:
    """A MySQL client program (``tool``: "", "-admin", "-dump") run once in ``service``."""
    return StringCommand(client_function(stack, service, user, password_key), "m", QuoteString(tool), *args)


def quoted_name(column: str) -> str:
    """SQL that quotes an identifier held in ``column`` with backticks."""
    return f"CONCAT('`', REPLACE({column}, '`', '``'), '`')"


BASE_TABLES = "information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"

# Everything but the data, independent of the database's own name, so that a shadow
# copy and the live database fingerprint alike.
SCHEMA_SQL = """
SET SESSION group_concat_max_len = 4294967295;
SELECT 'database', DATABASE();
SELECT 'schema', SHA2(CONCAT_WS('|',
  (SELECT GROUP_CONCAT(CONCAT_WS(':', c.table_name, column_name, column_type, is_nullable,
          IFNULL(column_default, 'NULL'), column_key, extra, IFNULL(collation_name, ''))
          ORDER BY c.table_name, ordinal_position SEPARATOR ',')
     FROM information_schema.columns c JOIN information_schema.tables t
       ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = DATABASE() AND t.table_type = 'BASE TABLE'),
  (SELECT GROUP_CONCAT(CONCAT_WS(':', table_name, index_name, seq_in_index, column_name, non_unique)
          ORDER BY table_name, index_name, seq_in_index SEPARATOR ',')
     FROM information_schema.statistics WHERE table_schema = DATABASE()),
  (SELECT GROUP_CONCAT(CONCAT_WS(':', table_name,
          REPLACE(view_definition, CONCAT('`', table_schema, '`.'), '')) ORDER BY table_name SEPARATOR ',')
     FROM information_schema.views WHERE table_schema = DATABASE()),
  (SELECT GROUP_CONCAT(CONCAT_WS(':', routine_type, routine_name, SHA2(routine_definition, 256))
          ORDER BY routine_type, routine_name SEPARATOR ',')
     FROM information_schema.routines WHERE routine_schema = DATABASE()),
  (SELECT GROUP_CONCAT(CONCAT_WS(':', trigger_name, event_manipulation, event_object_table, action_timing,
          SHA2(action_statement, 256)) ORDER BY trigger_name SEPARATOR ',')
     FROM information_schema.triggers WHERE trigger_schema = DATABASE()),
  (SELECT GROUP_CONCAT(CONCAT_WS(':', event_name, SHA2(event_definition, 256)) ORDER BY event_name SEPARATOR ',')
     FROM information_schema.events WHERE event_schema = DATABASE())
), 256);
SELECT 'view', table_name FROM information_schema.views WHERE table_schema = DATABASE() ORDER BY table_name;
SELECT 'routine', CONCAT(routine_type, ' ', routine_name) FROM information_schema.routines
 WHERE routine_schema = DATABASE() ORDER BY routine_type, routine_name;
SELECT 'trigger', trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY trigger_name;
""".strip()

# Writes the statements that count and checksum every base table (run by a second client).
COUNTS_SQL = f"""
SELECT CONCAT('SELECT ''rows'', ', QUOTE(table_name), ', COUNT(*) FROM ', {quoted_name('table_name')}, ';')
  FROM {BASE_TABLES} ORDER BY table_name;
SELECT CONCAT('CHECKSUM TABLE ', GROUP_CONCAT({quoted_name('table_name')} ORDER BY table_name SEPARATOR ', '), ';')
  FROM {BASE_TABLES} HAVING COUNT(*) > 0;
""".strip()


def fingerprint_command(stack: Stack, database: str, service: str, user: str, password_key: str | None) -> StringCommand:
    """Prints the fingerprint lines `MysqlFingerprint` parses; ``missing`` without the database."""
    return StringCommand(
        client_function(stack, service, user, password_key),
        assign(db=database),
        'if [ "$(m "" -N -B -e "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = \'$db\'"'
        ' </dev/null)" != 1 ]; then echo missing; else',
        'm "" -N -B -r "$db" -e', QuoteString(SCHEMA_SQL), "</dev/null &&",
        'm "" -N -B -r "$db" -e', QuoteString(COUNTS_SQL), '</dev/null | m "" -N -B "$db"; fi',
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


class MysqlFingerprint(MysqlFactBase):
    """
    Returns what a database holds, independent of its name: a hash of its schema (tables,
    columns, indexes, views, routines, triggers, events) and each table's row count and
    ``CHECKSUM TABLE``. ``{"exists": False}`` when there is no such database.

    .. code:: python

        {
            "exists": True,
            "schema_sha256": "9c1e...",
            "tables": {"users": {"rows": 120, "checksum": 3408350374}},
            "views": ["active_users"],
            "routines": ["PROCEDURE purge_sessions"],
            "triggers": [],
        }
    """

    def command(self, stack: Stack, database: str, service: str = "mysql", user: str = "root",
                password_key: str | None = "MYSQL_ROOT_PASSWORD") -> StringCommand:
        return fingerprint_command(Stack.of(stack), database, service, user, password_key)

    def process(self, output):
        return parse_fingerprint(output)


def parse_fingerprint(output: list[str]) -> dict:
    if [line.strip() for line in output if line.strip()] == ["missing"]:
        return {"exists": False}
    fingerprint = {"exists": True, "schema_sha256": "", "tables": {}, "views": [], "routines": [], "triggers": []}
    database = ""
    for line in output:
        fields = line.rstrip("\n").split("\t")
        kind = fields[0]
        if kind == "database":
            database = fields[1]
        elif kind == "schema":
            fingerprint["schema_sha256"] = fields[1]
        elif kind in ("view", "routine", "trigger"):
            fingerprint[f"{kind}s"].append(fields[1])
        elif kind == "rows" and len(fields) == 3:
            fingerprint["tables"].setdefault(fields[1], {})["rows"] = int(fields[2])
        elif len(fields) == 2 and database and kind.startswith(database + "."):
            # CHECKSUM TABLE answers `db.table <checksum>`
            table = kind[len(database) + 1:]
            fingerprint["tables"].setdefault(table, {})["checksum"] = int(fields[1]) if fields[1] != "NULL" else None
    return fingerprint


def same_data(live: dict | None, snapshot: dict | None) -> bool:
    """Whether two fingerprints describe the same database content."""
    keys = ("exists", "schema_sha256", "tables", "views", "routines", "triggers")
    return bool(live) and bool(snapshot) and all(live.get(k) == snapshot.get(k) for k in keys)


def summary(fingerprint: dict) -> str:
    """``3 tables, 120 rows`` (or ``no database``), for plans and checks."""
    if not fingerprint.get("exists"):
        return "no database"
    tables = fingerprint.get("tables", {})
    return f"{len(tables)} tables, {sum(table.get('rows', 0) for table in tables.values())} rows"


class MysqlDatabaseSize(MysqlFactBase):
    """
    Returns the bytes a database takes (data + indexes), an estimate of its dump's size
    before compression; 0 when there is no such database.

    .. code:: python

        52428800
    """

    def command(self, stack: Stack, database: str, service: str = "mysql", user: str = "root",
                password_key: str | None = "MYSQL_ROOT_PASSWORD") -> StringCommand:
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key), assign(db=database),
            'm "" -N -B -e "SELECT IFNULL(SUM(data_length + index_length), 0) FROM information_schema.tables'
            ' WHERE table_schema = \'$db\'" </dev/null',
        )

    def process(self, output):
        return int(output[-1].strip() or 0)


class MysqlVersions(MysqlFactBase):
    """
    Returns the server's and the dump tool's versions, for the snapshot's manifest, and
    the compression a dump gets on this host (``facts.shell.COMPRESSORS``).

    .. code:: python

        {"server": "10.11.18-MariaDB-0+deb12u1", "dump": "mariadb-dump  Ver 10.19 Distrib 10.11.18-MariaDB",
         "compression": "zstd"}
    """

    def command(self, stack: Stack, service: str = "mysql", user: str = "root",
                password_key: str | None = "MYSQL_ROOT_PASSWORD") -> StringCommand:
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key),
            'm "" -N -B -e "SELECT VERSION()" </dev/null; m -dump --version </dev/null;', COMPRESSOR_PROBE,
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        return {"server": lines[0] if lines else "", "dump": lines[1].split(", for")[0] if len(lines) > 1 else "",
                "compression": lines[2] if len(lines) > 2 and lines[2] in COMPRESSORS else "gzip"}
