"""
MySQL (Oracle MySQL 8.4, 9.x) and MariaDB engine facts, and the client commands every
MySQL fact and operation runs: a client program inside the service's container (`docker
compose exec -T`), with the password read on the host from the stack's env file and
handed over as ``MYSQL_PWD`` in the environment, never on a command line. Where the two
servers differ, ``MysqlVersions`` says which one it is (``DUMP_OPTIONS``, ``SIZE_FRESH``).

Engine protocol: ``MysqlFingerprint`` (what the data is), ``operations.mysql.dumped``,
``operations.mysql.shadow_loaded`` + ``operations.mysql.swapped_in`` (restore), and the
deploy's verify step comparing fingerprints.
"""

from __future__ import annotations

import re

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shell import (
    COMPRESSOR_PROBE,
    COMPRESSORS,
    UnreadableOutput,
    WholeOutputFact,
    assign,
    host_name,
    parse_probe,
    probe,
)
from .text import counted

# The env file key of the password, where a component names none: Layra's own.
PASSWORD_KEY = "MYSQL_ROOT_PASSWORD"


# Picks `mariadb<tool>` where the image has it (MariaDB 11 dropped the mysql* names),
# else `mysql<tool>` (MySQL images): tool "" -> mariadb/mysql, "-admin" -> mariadb-admin/mysqladmin.
CLIENT_SHIM = (
    'tool=$1; shift; if command -v "mariadb$tool" >/dev/null 2>&1; '
    'then exec "mariadb$tool" "$@"; fi; exec "mysql${tool#-}" "$@"'
)


# What every client speaks with the server, whatever the container's locale: UTF-8 with
# 4-byte characters (a POSIX locale would make it latin1, and names and data with it).
CHARSET = "utf8mb4"

# The two servers this engine speaks to, told apart by VERSION(): MariaDB's always names
# itself ("10.11.18-MariaDB-0+deb12u1"), Oracle MySQL's is the number alone ("9.0.1").
MARIADB, MYSQL = "mariadb", "mysql"


def server_flavor(server_version: str) -> str:
    """``mariadb`` or ``mysql``, from the server's ``SELECT VERSION()``."""
    return MARIADB if "mariadb" in server_version.lower() else MYSQL


# What a dump needs on each server beyond the options both take. MySQL's mysqldump writes
# SET @@GLOBAL.GTID_PURGED (and SQL_LOG_BIN=0) into a dump by default where GTIDs are on
# (--set-gtid-purged=AUTO): loading it back into the server that ran those transactions
# fails (ERROR 3546), and the load would stay out of the binary log. MariaDB's dump tool
# has no such option (and refuses it).
DUMP_OPTIONS = {MARIADB: (), MYSQL: ("--set-gtid-purged=OFF",)}


def client_function(stack: Stack, service: str, user: str, password_key: str | None) -> StringCommand:
    """Defines ``m TOOL ARGS...`` in the shell: a client program run in the service, speaking
    ``utf8mb4`` with the server."""
    export = [export_from_env_file(stack.env_path, password_key, "MYSQL_PWD")] if password_key else []
    env = ["-e", "MYSQL_PWD"] if password_key else []
    return StringCommand(
        *export,
        "m() { tool=$1; shift;",
        compose_command(stack, "exec", "-T", *env, QuoteString(service),
                        "sh", "-c", QuoteString(CLIENT_SHIM), "sh", '"$tool"', "-u", QuoteString(user),
                        f"--default-character-set={CHARSET}", '"$@";'),
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
# copy and the live database fingerprint alike: one hash of the whole schema, the number
# of base tables (a fingerprint with fewer is refused), then one line per column, index,
# view, routine, trigger and event with a short hash of its definition, so that a plan
# can name what changed.
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
SELECT 'tables', COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE';
SELECT 'column', c.table_name, column_name, LEFT(SHA2(CONCAT_WS(':', column_type, is_nullable,
       IFNULL(column_default, 'NULL'), column_key, extra, IFNULL(collation_name, '')), 256), 16)
  FROM information_schema.columns c JOIN information_schema.tables t
    ON t.table_schema = c.table_schema AND t.table_name = c.table_name
 WHERE c.table_schema = DATABASE() AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, ordinal_position;
SELECT 'index', table_name, index_name, LEFT(SHA2(GROUP_CONCAT(CONCAT_WS(':', seq_in_index, column_name, non_unique)
       ORDER BY seq_in_index SEPARATOR ','), 256), 16)
  FROM information_schema.statistics WHERE table_schema = DATABASE()
 GROUP BY table_name, index_name ORDER BY table_name, index_name;
SELECT 'view', table_name, LEFT(SHA2(REPLACE(view_definition, CONCAT('`', table_schema, '`.'), ''), 256), 16)
  FROM information_schema.views WHERE table_schema = DATABASE() ORDER BY table_name;
SELECT 'routine', CONCAT(routine_type, ' ', routine_name), LEFT(SHA2(routine_definition, 256), 16)
  FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY routine_type, routine_name;
SELECT 'trigger', trigger_name, LEFT(SHA2(CONCAT_WS(':', event_manipulation, event_object_table, action_timing,
       action_statement), 256), 16)
  FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY trigger_name;
SELECT 'event', event_name, LEFT(SHA2(event_definition, 256), 16)
  FROM information_schema.events WHERE event_schema = DATABASE() ORDER BY event_name;
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
        'm "" -N -B "$db" -e', QuoteString(SCHEMA_SQL), "</dev/null &&",
        'm "" -N -B -r "$db" -e', QuoteString(COUNTS_SQL), '</dev/null | m "" -N -B "$db"; fi',
    )


class MysqlFactBase(WholeOutputFact):
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
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        stack = Stack.of(stack)
        return probe(mysql_client(stack, service, user, password_key, "-admin", "ping"))

    def process(self, output):
        return parse_probe(output)


class MysqlFingerprint(MysqlFactBase):
    """
    Returns what a database holds, independent of its name: a hash of its schema (tables,
    columns, indexes, views, routines, triggers, events) with a short hash per object, and
    each table's row count and ``CHECKSUM TABLE``. ``{"exists": False}`` when there is no
    such database. A fingerprint is whole or refused: a table without its count or
    checksum, or fewer tables than ``information_schema`` lists, fails the fact.

    .. code:: python

        {
            "exists": True,
            "schema_sha256": "9c1e...",
            "tables": {"users": {"rows": 120, "checksum": 3408350374}},
            "views": ["active_users"],
            "routines": ["PROCEDURE purge_sessions"],
            "triggers": [],
            "schema_objects": {"column users.id": "5d41402abc4b2a76", "index users.PRIMARY": "...",
                               "view active_users": "...", "routine PROCEDURE purge_sessions": "..."},
        }
    """

    def command(self, stack: Stack, database: str, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        return fingerprint_command(Stack.of(stack), database, service, user, password_key)

    def process(self, output):
        return parse_fingerprint(output)


class PartialFingerprint(UnreadableOutput):
    """A fingerprint that would leave part of the database out: refused, never compared."""


# mysql -B writes these characters of a value as escapes (without -r)
BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}
BATCH_ESCAPE = re.compile(r"\\[\\tn0]")

# per-object lines: kind -> how many name fields precede the hash
OBJECT_KINDS = {"column": 2, "index": 2, "view": 1, "routine": 1, "trigger": 1, "event": 1}
NAMED_LISTS = {"view": "views", "routine": "routines", "trigger": "triggers"}


def unescaped(value: str) -> str:
    return BATCH_ESCAPE.sub(lambda match: BATCH_ESCAPES[match.group(0)], value)


def parse_fingerprint(output: list[str]) -> dict:
    if [line.strip() for line in output if line.strip()] == ["missing"]:
        return {"exists": False}
    fingerprint = {"exists": True, "schema_sha256": "", "tables": {}, "views": [], "routines": [], "triggers": [],
                   "schema_objects": {}}
    database, listed = "", None
    for line in output:
        fields = [unescaped(field) for field in line.rstrip("\n").split("\t")]
        kind = fields[0]
        if kind == "database" and len(fields) == 2:
            database = fields[1]
        elif kind == "schema" and len(fields) == 2:
            fingerprint["schema_sha256"] = fields[1]
        elif kind == "tables" and len(fields) == 2 and fields[1].isdigit():
            listed = int(fields[1])
        elif kind in OBJECT_KINDS and len(fields) == OBJECT_KINDS[kind] + 2:
            name = ".".join(fields[1:-1])
            fingerprint["schema_objects"][f"{kind} {name}"] = fields[-1]
            if kind in NAMED_LISTS:
                fingerprint[NAMED_LISTS[kind]].append(name)
        elif kind == "rows" and len(fields) == 3 and fields[2].isdigit():
            fingerprint["tables"].setdefault(fields[1], {})["rows"] = int(fields[2])
        elif len(fields) == 2 and database and kind.startswith(database + "."):
            # CHECKSUM TABLE answers `db.table <checksum>` (NULL: the table could not be read)
            table = kind[len(database) + 1:]
            fingerprint["tables"].setdefault(table, {})["checksum"] = int(fields[1]) if fields[1].isdigit() else None
    problems = fingerprint_problems(fingerprint, listed)
    if problems:
        raise PartialFingerprint(f"{host_name()}: the fingerprint of mysql/{database or '?'} is partial, refused: "
                                 + "; ".join(problems))
    return fingerprint


def fingerprint_problems(fingerprint: dict, listed: int | None) -> list[str]:
    """Why a parsed fingerprint does not cover the whole database."""
    problems = []
    if not fingerprint["schema_sha256"]:
        problems.append("no schema hash")
    if listed is None:
        problems.append("no table count")
    elif listed != len(fingerprint["tables"]):
        problems.append(f"information_schema lists {listed} tables, {len(fingerprint['tables'])} were read")
    for table, found in sorted(fingerprint["tables"].items()):
        missing = [key for key in ("rows", "checksum") if found.get(key) is None]
        if missing:
            problems.append(f"table {table} has no {' and no '.join(missing)}")
    return problems


def same_data(live: dict | None, snapshot: dict | None) -> bool:
    """Whether two fingerprints describe the same database content."""
    keys = ("exists", "schema_sha256", "tables", "views", "routines", "triggers")
    return bool(live) and bool(snapshot) and all(live.get(k) == snapshot.get(k) for k in keys)


def schema_changes(live: dict, snapshot: dict) -> dict[str, list[str]] | None:
    """What a restore changes in the schema, object by object: ``{"added": [...], "dropped":
    [...], "altered": [...]}`` (``column users.nick``, ``view kb_names``, ...); None where a
    fingerprint has no per-object hashes (taken before they were recorded)."""
    if "schema_objects" not in snapshot or "schema_objects" not in live:
        return None
    have, want = live["schema_objects"], snapshot["schema_objects"]
    return {"added": sorted(set(want) - set(have)), "dropped": sorted(set(have) - set(want)),
            "altered": sorted(name for name in set(have) & set(want) if have[name] != want[name])}


def summary(fingerprint: dict) -> str:
    """``3 tables, 120 rows`` (or ``no database``), for plans and checks."""
    if not fingerprint.get("exists"):
        return "no database"
    tables = fingerprint.get("tables", {})
    return f"{counted(len(tables), 'table')}, {counted(sum(table.get('rows', 0) for table in tables.values()), 'row')}"


# MySQL 8+ answers information_schema.TABLES' sizes from a cache kept for
# information_schema_stats_expiry seconds (a day by default): 0 reads them from the storage
# engine. MariaDB reads them every time, and has no such variable.
SIZE_FRESH = {MARIADB: "", MYSQL: "SET SESSION information_schema_stats_expiry = 0; "}


class MysqlDatabaseSize(MysqlFactBase):
    """
    Returns the bytes a database takes (data + indexes), an estimate of its dump's size
    before compression; 0 when there is no such database. ``flavor`` is the server's
    (``MysqlVersions``): MySQL's sizes are read fresh, not from its statistics cache.

    .. code:: python

        52428800
    """

    def command(self, stack: Stack, database: str, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY, flavor: str = MARIADB) -> StringCommand:
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key), assign(db=database),
            f'm "" -N -B -e "{SIZE_FRESH[flavor]}SELECT IFNULL(SUM(data_length + index_length), 0)'
            ' FROM information_schema.tables WHERE table_schema = \'$db\'" </dev/null',
        )

    def process(self, output):
        return int(output[-1].strip() or 0)


class UnknownServer(UnreadableOutput):
    """A server whose version could not be read: which options it takes is not known."""


class MysqlVersions(MysqlFactBase):
    """
    Returns the server's and the dump tool's versions, for the snapshot's manifest, which
    server it is (``flavor``: ``mariadb`` or ``mysql``, where their programs, options and
    statements differ), and the compression a dump gets on this host
    (``facts.shell.COMPRESSORS``). A server that does not answer its version fails the fact.

    .. code:: python

        {"server": "10.11.18-MariaDB-0+deb12u1", "flavor": "mariadb",
         "dump": "mariadb-dump  Ver 10.19 Distrib 10.11.18-MariaDB", "compression": "zstd"}
        {"server": "9.0.1", "flavor": "mysql",
         "dump": "mysqldump  Ver 9.0.1 for Linux on x86_64 (MySQL Community Server - GPL)", "compression": "zstd"}
    """

    def command(self, stack: Stack, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key),
            'm "" -N -B -e "SELECT VERSION()" </dev/null; m -dump --version </dev/null;', COMPRESSOR_PROBE,
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        server = lines[0] if lines else ""
        if not server[:1].isdigit():
            # without it, the line read first would be the dump tool's: a wrong server, and wrong options
            raise UnknownServer(f"{host_name()}: the MySQL server's version could not be read (got {server[:80]!r})")
        return {"server": server, "flavor": server_flavor(server),
                "dump": lines[1].split(", for")[0] if len(lines) > 1 else "",
                "compression": lines[2] if len(lines) > 2 and lines[2] in COMPRESSORS else "gzip"}
