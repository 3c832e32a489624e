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

import json
import re
from datetime import datetime, timedelta

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shadow import valid_database
from .shell import (
    COMPRESSOR_PROBE,
    COMPRESSORS,
    PartialFingerprint,
    UnreadableOutput,
    WholeOutputFact,
    assign,
    host_name,
    parse_probe,
    probe,
    script,
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
# Where the server keeps a binlog: the coordinates the dump is consistent with, written as
# comments in its head (operations/scripts/binlog_coordinates.sh reads them).
COORDINATE_OPTIONS = {MARIADB: ("--master-data=2",), MYSQL: ("--source-data=2",)}


def client_function(stack: Stack, service: str, user: str, password_key: str | None,
                    name: str = "m") -> StringCommand:
    """Defines ``m TOOL ARGS...`` in the shell: a client program run in the service, speaking
    ``utf8mb4`` with the server. ``name="mb"`` defines ``mb`` for the binlog reader
    (``mb -binlog``), which takes no character set."""
    export = [export_from_env_file(stack.env_path, password_key, "MYSQL_PWD")] if password_key else []
    env = ["-e", "MYSQL_PWD"] if password_key else []
    charset = [] if name == "mb" else [f"--default-character-set={CHARSET}"]
    return StringCommand(
        *export,
        f"{name}() {{ tool=$1; shift;",
        compose_command(stack, "exec", "-T", *env, QuoteString(service),
                        "sh", "-c", QuoteString(CLIENT_SHIM), "sh", '"$tool"', "-u", QuoteString(user),
                        *charset, '"$@";'),
        "};",
    )


def in_service(stack: Stack, service: str, password_key: str | None, *command) -> StringCommand:
    """``command`` run once in the service's container, the password read on the host from
    the stack's env file into ``MYSQL_PWD`` (its environment, never its command line)."""
    export = [export_from_env_file(stack.env_path, password_key, "MYSQL_PWD")] if password_key else []
    env = ["-e", "MYSQL_PWD"] if password_key else []
    return StringCommand(*export, compose_command(stack, "exec", "-T", *env, QuoteString(service), *command))


def mysql_client(stack: Stack, service: str, user: str, password_key: str | None, tool: str, *args) -> StringCommand:
    """A MySQL client program (``tool``: "", "-admin", "-dump") run once in ``service``."""
    return StringCommand(client_function(stack, service, user, password_key), "m", QuoteString(tool), *args)


def quoted_name(column: str) -> str:
    """SQL that quotes an identifier held in ``column`` with backticks."""
    return f"CONCAT('`', REPLACE({column}, '`', '``'), '`')"


# The tables that hold data: base tables and MariaDB's sequences (one row, its state;
# RENAME TABLE moves one between databases and a dump recreates it with SETVAL). Any other
# kind but a view is refused (``unsupported_tables``).
TABLE_TYPES = "('BASE TABLE', 'SEQUENCE')"
KNOWN_TYPES = "('BASE TABLE', 'SEQUENCE', 'VIEW')"
DATA_TABLES = f"information_schema.tables WHERE table_schema = DATABASE() AND table_type IN {TABLE_TYPES}"

# Everything but the data, independent of the database's own name, so that a shadow
# copy and the live database fingerprint alike: one hash of the whole schema, the number
# of data tables (a fingerprint with fewer is refused), the tables of a kind it refuses,
# then one line per column, index,
# view, routine, trigger and event with a short hash of its definition, so that a plan
# can name what changed.
SCHEMA_SQL = f"""
SET SESSION group_concat_max_len = 4294967295;
SELECT 'database', DATABASE();
SELECT 'schema', SHA2(CONCAT_WS('|',
  (SELECT GROUP_CONCAT(CONCAT_WS(':', c.table_name, column_name, column_type, is_nullable,
          IFNULL(column_default, 'NULL'), column_key, extra, IFNULL(collation_name, ''))
          ORDER BY c.table_name, ordinal_position SEPARATOR ',')
     FROM information_schema.columns c JOIN information_schema.tables t
       ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = DATABASE() AND t.table_type IN {TABLE_TYPES}),
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
SELECT 'tables', COUNT(*) FROM {DATA_TABLES};
SELECT 'unsupported', table_name, table_type FROM information_schema.tables
 WHERE table_schema = DATABASE() AND table_type NOT IN {KNOWN_TYPES} ORDER BY table_name;
SELECT 'column', c.table_name, column_name, LEFT(SHA2(CONCAT_WS(':', column_type, is_nullable,
       IFNULL(column_default, 'NULL'), column_key, extra, IFNULL(collation_name, '')), 256), 16)
  FROM information_schema.columns c JOIN information_schema.tables t
    ON t.table_schema = c.table_schema AND t.table_name = c.table_name
 WHERE c.table_schema = DATABASE() AND t.table_type IN {TABLE_TYPES} ORDER BY c.table_name, ordinal_position;
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

# Writes the statements that count and checksum every data table (run by a second client).
COUNTS_SQL = f"""
SELECT CONCAT('SELECT ''rows'', ', QUOTE(table_name), ', COUNT(*) FROM ', {quoted_name('table_name')}, ';')
  FROM {DATA_TABLES} ORDER BY table_name;
SELECT CONCAT('CHECKSUM TABLE ', GROUP_CONCAT({quoted_name('table_name')} ORDER BY table_name SEPARATOR ', '), ';')
  FROM {DATA_TABLES} HAVING COUNT(*) > 0;
""".strip()


def fingerprint_command(stack: Stack, database: str, service: str, user: str, password_key: str | None,
                        *content) -> StringCommand:
    """Prints the fingerprint lines `MysqlFingerprint` parses; ``missing`` without the
    database. ``content``: what reads the tables after the schema (their counts and
    checksums where not given)."""
    content = content or ('m "" -N -B -r "$db" -e', QuoteString(COUNTS_SQL), '</dev/null | m "" -N -B "$db"')
    return StringCommand(
        client_function(stack, service, user, password_key),
        assign(db=database),
        'if [ "$(m "" -N -B -e "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = \'$db\'"'
        ' </dev/null)" != 1 ]; then echo missing; else',
        'm "" -N -B "$db" -e', QuoteString(SCHEMA_SQL), "</dev/null &&", *content[:-1], content[-1] + "; fi",
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


# mysql -B writes these characters of a value as escapes (without -r)
BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}
BATCH_ESCAPE = re.compile(r"\\[\\tn0]")

# per-object lines: kind -> how many name fields precede the hash
OBJECT_KINDS = {"column": 2, "index": 2, "view": 1, "routine": 1, "trigger": 1, "event": 1}
NAMED_LISTS = {"view": "views", "routine": "routines", "trigger": "triggers"}


def unescaped(value: str) -> str:
    return BATCH_ESCAPE.sub(lambda match: BATCH_ESCAPES[match.group(0)], value)


def database_missing(output: list[str]) -> bool:
    return [line.strip() for line in output if line.strip()] == ["missing"]


def parse_fingerprint(output: list[str]) -> dict:
    if database_missing(output):
        return {"exists": False}
    fingerprint, database, listed, other = parse_lines(output)
    problems = fingerprint_problems(fingerprint, listed, other)
    if problems:
        raise PartialFingerprint(f"{host_name()}: the fingerprint of mysql/{database or '?'} is partial, refused: "
                                 + "; ".join(problems))
    return fingerprint


def parse_lines(output: list[str]) -> tuple[dict, str, int | None, list[list[str]]]:
    """The fingerprint the lines hold, the database they name, how many base tables
    ``information_schema`` listed, and the lines of other kinds."""
    fingerprint = {"exists": True, "schema_sha256": "", "tables": {}, "views": [], "routines": [], "triggers": [],
                   "schema_objects": {}}
    database, listed, other = "", None, []
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
        else:
            other.append(fields)
    return fingerprint, database, listed, other


# Why a kind of table that is neither a base table, a sequence nor a view is refused
UNSUPPORTED = {"SYSTEM VERSIONED": "its history is in no dump and CHECKSUM TABLE reads it, so no restore could "
                                   "match the snapshot"}


def unsupported_tables(other: list[list[str]]) -> list[str]:
    """The tables of a kind the fingerprint leaves out, each with why (a refusal)."""
    return [f"table {name} is {kind}: " + UNSUPPORTED.get(kind, "a kind of table layra-rollback does not know")
            for _, name, kind in (fields for fields in other if fields[0] == "unsupported" and len(fields) == 3)]


def fingerprint_problems(fingerprint: dict, listed: int | None, other: list[list[str]]) -> list[str]:
    """Why a parsed fingerprint does not cover the whole database."""
    problems = unsupported_tables(other)
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


# What a fingerprint says of the schema, besides its tables
SCHEMA_KEYS = ("exists", "schema_sha256", "views", "routines", "triggers")


def same_data(live: dict | None, snapshot: dict | None) -> bool:
    """Whether two fingerprints describe the same database content."""
    return bool(live) and bool(snapshot) and all(live.get(k) == snapshot.get(k) for k in (*SCHEMA_KEYS, "tables"))


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


# Per table: its id in InnoDB (a RENAME keeps it; a rebuild, a TRUNCATE or a new table
# gets another; a sequence has none: MariaDB stamps none of its writes) and the time of its last write (kept in memory since the server started:
# none for a table unwritten since; MariaDB stamps a write with its transaction's start,
# MySQL with its commit), in UTC, with the server's clock and uptime, and when the oldest
# other open transaction started. Only plain names get an id: InnoDB encodes the others
# (`t-` is `t@002d`, which a table named so would also match), and the names compare as
# bytes (information_schema compares them case-insensitively). MySQL 8+ caches UPDATE_TIME
# for information_schema_stats_expiry seconds: 0 reads it fresh.
STAMPS_SQL = {flavor: f"""
SET SESSION time_zone = '+00:00';
{fresh}SELECT 'now', NOW(), UNIX_TIMESTAMP();
SHOW GLOBAL STATUS LIKE 'Uptime';
SELECT 'open', IFNULL(MIN(trx_started), 'none') FROM information_schema.innodb_trx
 WHERE trx_mysql_thread_id <> CONNECTION_ID();
SELECT 'stamp', t.table_name,
       IFNULL(IF(t.table_type = 'BASE TABLE' AND t.table_name REGEXP '^[A-Za-z0-9_]+$', s.table_id, NULL), 'none'),
       IFNULL(t.update_time, 'none')
  FROM information_schema.tables t LEFT JOIN information_schema.{innodb} s
    ON BINARY s.name = BINARY CONCAT(t.table_schema, '/', t.table_name)
 WHERE t.table_schema = DATABASE() AND t.table_type IN {TABLE_TYPES} ORDER BY t.table_name;
""".strip() for flavor, fresh, innodb in ((MARIADB, "", "innodb_sys_tables"),
                                          (MYSQL, "SET SESSION information_schema_stats_expiry = 0;\n",
                                           "innodb_tables"))}


class MysqlTableStamps(MysqlFactBase):
    """
    Returns a database's schema (as ``MysqlFingerprint`` hashes it) and, per base table, its
    InnoDB table id and the time of its last write (MariaDB's: its transaction's start;
    None: none since the server started), with the server's clock and when it started (Unix time), all in UTC, and when
    the oldest other open transaction started (None: there is none): what tells, without
    reading the data, that the tables are the very ones whose checksums were checked,
    unwritten since (``unchanged_since_checked``). ``tables`` is None where
    the server does not say for every table (one not in InnoDB, a name InnoDB encodes, no
    ``PROCESS`` privilege): the data must then be read. ``{"exists": False}`` when there
    is no such database.

    .. code:: python

        {"exists": True, "schema_sha256": "9c1e...", "views": [], "routines": [], "triggers": [],
         "now": "2026-12-07 17:54:03", "started": 1796621203, "oldest_open": None,
         "tables": {"users": [21, "2026-12-07 17:53:59"], "kb_shares": [22, None]}}
    """

    def command(self, stack: Stack, database: str, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY, flavor: str = MARIADB) -> StringCommand:
        return fingerprint_command(Stack.of(stack), database, service, user, password_key,
                                   '{ m "" -N -B "$db" -e', QuoteString(STAMPS_SQL[flavor]),
                                   '</dev/null 2>/dev/null || echo unreadable; }')

    def process(self, output):
        if database_missing(output):
            return {"exists": False}
        schema, database, listed, other = parse_lines(output)
        if not schema["schema_sha256"] or listed is None:
            raise PartialFingerprint(f"{host_name()}: the schema of mysql/{database or '?'} could not be read")
        if unsupported_tables(other):
            raise PartialFingerprint(f"{host_name()}: mysql/{database}: " + "; ".join(unsupported_tables(other)))
        clock = next((fields[1:] for fields in other if fields[0] == "now" and len(fields) == 3), None)
        uptime = next((fields[1] for fields in other if fields[0] == "Uptime" and len(fields) == 2), "")
        now, started = (clock[0], int(clock[1]) - int(uptime)) if clock and clock[1].isdigit() and \
            uptime.isdigit() else (None, None)
        stamps = [fields for fields in other if fields[0] == "stamp" and len(fields) == 4]
        tables = {name: [int(table_id) if table_id.isdigit() else None, None if written == "none" else written]
                  for _, name, table_id, written in stamps}
        opened = [fields[1] for fields in other if fields[0] == "open" and len(fields) == 2]
        # one line per table (a name twice would be two tables taken for one)
        whole = now and ["unreadable"] not in other and len(opened) == 1 and len(stamps) == len(tables) == listed \
            and all(table_id is not None for table_id, _ in tables.values())
        return {**{key: schema[key] for key in SCHEMA_KEYS},
                "now": now, "started": started, "oldest_open": None if not opened or opened[0] == "none" else opened[0],
                "tables": tables if whole else None}


def settled(stamps: dict | None) -> bool:
    """Whether stamps can tell a later write: every table written (a table with no write
    since the server started has no time to compare, and loses a later one when InnoDB
    evicts it), the last write at least two seconds before the stamps were read (the
    times have whole seconds; MariaDB stamps a write with its transaction's start, and
    lists a transaction that started in the last 0.1 s late), and no other transaction
    open since before it (one that commits later keeps its start as the time)."""
    if not stamps or stamps.get("tables") is None or not stamps.get("now"):
        return False
    written = [when for _, when in stamps["tables"].values()]
    if None in written:
        return False
    latest = max(map(datetime.fromisoformat, written), default=None)
    now = datetime.fromisoformat(stamps["now"])
    oldest = stamps.get("oldest_open")
    return latest is None or (latest <= now - timedelta(seconds=2) and (
        oldest is None or datetime.fromisoformat(oldest) > latest + timedelta(seconds=1)))


def unchanged_since_checked(checked: dict | None, live: dict | None) -> bool:
    """Whether the live tables are the very tables ``checked`` stamped just before their
    checksums were read, no write made to any of them since: stamps that can tell
    (``settled``), the same server run (a restart forgets the write times), the same
    tables with the same InnoDB ids (a RENAME moves a table whole, keeping its id) and the
    same write times. False wherever the server did not say (the data must then be read)."""
    if not settled(checked) or not live or live.get("tables") is None or live.get("started") is None:
        return False
    # the start, computed from the clock and the uptime read apart, may differ by a second
    if checked.get("started") is None or abs(live["started"] - checked["started"]) > 1:
        return False
    return checked["tables"] == live["tables"]


def same_schema(live: dict | None, snapshot: dict | None) -> bool:
    """Whether a database's schema (``MysqlTableStamps``) is the snapshot's, its base tables
    the snapshot's tables."""
    return (bool(live) and bool(snapshot) and all(live.get(k) == snapshot.get(k) for k in SCHEMA_KEYS)
            and set(live.get("tables") or {}) == set(snapshot.get("tables") or {}))


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


# The binlog position the server writes at now, and its GTID position, per flavor (MySQL
# 8.2 and later name the status statement after the binary log, not the source).
BINLOG_SQL = {
    MARIADB: ("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@gtid_binlog_pos", "SHOW MASTER STATUS"),
    MYSQL: ("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@gtid_executed", "SHOW BINARY LOG STATUS"),
}


class MysqlBinlog(MysqlFactBase):
    """
    Returns whether the server keeps a binlog that a point-in-time rollback can replay
    (``log_bin`` on, ``format`` ROW, ``row_image`` FULL), the binlog files it still has,
    oldest first, and the position it writes at now (file, position, GTID position).
    ``flavor`` is the server's (``MysqlVersions``).

    .. code:: python

        {"log_bin": True, "format": "ROW", "row_image": "FULL",
         "files": ["binlog.000001", "binlog.000002"],
         "file": "binlog.000002", "position": 1234, "gtid": "0-1-42"}
        {"log_bin": False, "format": "MIXED", "row_image": "FULL", "files": [],
         "file": None, "position": None, "gtid": ""}
    """

    def command(self, stack: Stack, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY, flavor: str = MARIADB) -> StringCommand:
        variables, status = BINLOG_SQL[flavor]
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key),
            f'v=$(m "" -N -B -e "{variables}" </dev/null) && printf \'variables\\n%s\\n\' "$v" &&',
            # SHOW BINARY LOGS fails where the binlog is off: asked only where it is on
            'case "$v" in 1*) echo files &&',
            f'm "" -N -B -e "SHOW BINARY LOGS" </dev/null && echo status && m "" -N -B -e "{status}" </dev/null;; esac',
        )

    def process(self, output):
        sections, current = {}, None
        for line in output:
            if line in ("variables", "files", "status"):
                current = sections.setdefault(line, [])
            elif current is not None and line.strip():
                current.append(line.split("\t"))
        if not sections.get("variables") or len(sections["variables"][0]) < 4:
            raise UnreadableOutput(f"{host_name()}: the MySQL server's binlog settings could not be read")
        log_bin, binlog_format, row_image, gtid = sections["variables"][0][:4]
        status = (sections.get("status") or [[None, None]])[0]
        if log_bin == "1" and status[0] is None:
            raise UnreadableOutput(f"{host_name()}: the binlog is on but the server gave no binlog position")
        return {"log_bin": log_bin == "1", "format": binlog_format.upper(), "row_image": row_image.upper(),
                "files": [row[0] for row in sections.get("files", [])],
                "file": status[0], "position": int(status[1]) if status[1] is not None else None,
                "gtid": "" if gtid == "NULL" else gtid.replace("\\n", "")}


def replay_refusal(binlog: dict) -> str | None:
    """Why the server's binlog cannot be replayed for a point-in-time rollback (None: it can)."""
    if not binlog["log_bin"]:
        return "the server keeps no binlog (log_bin is off)"
    wrong = [f"{name} is {binlog[key]}, not {want}" for key, name, want in
             (("format", "binlog_format", "ROW"), ("row_image", "binlog_row_image", "FULL")) if binlog[key] != want]
    return "; ".join(wrong) if wrong else None


BINLOG_FILE = re.compile(r"^[A-Za-z0-9._-]{1,200}\Z")
BINLOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\Z")


class BinlogPoint(WholeOutputFact):
    """
    Returns a binlog point saved in a file on the host (a snapshot's
    ``<part>.binlog-coordinates``, a release's point), or ``None`` where there is none.
    A file that is not such a point fails the fact.

    .. code:: python

        {"file": "binlog.000002", "position": 1234, "gtid": "0-1-42", "at": "2026-12-07T14:00:00Z"}
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", "--", QuoteString(path), "2>/dev/null || true")

    def process(self, output):
        text = "\n".join(output).strip()
        if not text:
            return None
        try:
            point = json.loads(text)
            if BINLOG_FILE.match(point["file"]) and isinstance(point["position"], int):
                return point
        except (ValueError, KeyError, TypeError):
            pass
        raise UnreadableOutput(f"{host_name()}: not a binlog point: {text[:120]!r}")


class MysqlPrimaryKeys(MysqlFactBase):
    """
    Returns each table's primary key columns by position (1 = the first column), as the
    binlog's row events number them.

    .. code:: python

        {"knowledge_bases": [1], "kb_members": [1, 2]}
    """

    def command(self, stack: Stack, database: str, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key), assign(db=database),
            'm "" -N -B -e "SELECT c.table_name, GROUP_CONCAT(c.ordinal_position ORDER BY s.seq_in_index)'
            " FROM information_schema.statistics s JOIN information_schema.columns c"
            " ON c.table_schema = s.table_schema AND c.table_name = s.table_name AND c.column_name = s.column_name"
            " WHERE s.table_schema = '$db' AND s.index_name = 'PRIMARY' GROUP BY c.table_name\" </dev/null",
        )

    def process(self, output):
        keys = {}
        for line in output:
            if line.strip():
                table, _, positions = line.partition("\t")
                keys[table] = [int(p) for p in positions.split(",")]
        return keys


def binlog_range(files: list[str], start: int | None = None, stop: int | None = None,
                 start_time: str | None = None, stop_time: str | None = None) -> list:
    """The binlog reader's arguments for a range: positions apply to the first and the last
    of ``files``, times (``YYYY-MM-DD HH:MM:SS``, UTC) to all of them."""
    if not files or not all(BINLOG_FILE.match(f) for f in files):
        raise ValueError(f"not binlog file names: {files!r}")
    for time in (start_time, stop_time):
        if time is not None and not BINLOG_TIME.match(time):
            raise ValueError(f"not a binlog time (YYYY-MM-DD HH:MM:SS): {time!r}")
    args = [f"--start-position={int(start)}"] if start is not None else []
    args += [f"--stop-position={int(stop)}"] if stop is not None else []
    args += [QuoteString(f"--start-datetime={start_time}")] if start_time else []
    args += [QuoteString(f"--stop-datetime={stop_time}")] if stop_time else []
    return args + [QuoteString(f) for f in files]


class MysqlBinlogChanges(MysqlFactBase):
    """
    Returns what a range of the binlog (``binlog_range``'s arguments) changes in one
    database: rows inserted, updated and deleted per table, the primary keys of the first
    ``limit`` rows of each (``keys``: the table's positions, ``MysqlPrimaryKeys``), the
    statements other than DML that name the database (``ddl``), and the transactions.
    Read through the server (``mariadb-binlog -R``), every database's events, by
    ``scripts/binlog_changes.sh``.

    .. code:: python

        {"tables": {"knowledge_bases": [2, 1, 0]},
         "keys": {"knowledge_bases": [["INSERT", "4"], ["INSERT", "5"], ["UPDATE", "1"]]},
         "ddl": [], "transactions": 3}
    """

    def command(self, stack: Stack, database: str, files: list, start: int | None = None, stop: int | None = None,
                start_time: str | None = None, stop_time: str | None = None, keys: dict | None = None,
                limit: int = 100, service: str = "mysql", user: str = "root",
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        if not valid_database(database):
            raise ValueError(f"database {database!r} is not a plain name")
        primary = " ".join(f"{table}:{','.join(str(int(p)) for p in positions)}"
                           for table, positions in sorted((keys or {}).items()) if valid_database(table))
        return StringCommand(
            client_function(Stack.of(stack), service, user, password_key, name="mb"),
            "mb -binlog -R -v --base64-output=DECODE-ROWS", *binlog_range(files, start, stop, start_time, stop_time),
            "</dev/null | env", QuoteString(f"DB={database}"), QuoteString(f"PKS={primary}"), f"LIMIT={int(limit)}",
            "sh -c", QuoteString(script("binlog_changes")),
        )

    def process(self, output):
        found = {"tables": {}, "keys": {}, "ddl": [], "transactions": None}
        for line in output:
            kind, _, rest = line.partition("\t")
            fields = rest.split("\t")
            if kind == "rows" and len(fields) == 4:
                found["tables"][fields[0]] = [int(n) for n in fields[1:]]
            elif kind == "key" and len(fields) == 3:
                found["keys"].setdefault(fields[0], []).append(fields[1:])
            elif kind == "ddl":
                found["ddl"].append(rest)
            elif kind == "transactions":
                found["transactions"] = int(rest)
        if found["transactions"] is None or not output or output[-1] != "end":
            raise UnreadableOutput(f"{host_name()}: the binlog could not be read whole")
        return found


class ReplayTarget(WholeOutputFact):
    """
    Returns what a point-in-time rollback saved after its replay (``operations.mysql.
    replay_target_saved``): the snapshot and point it replayed (``label``) and the
    fingerprint the replayed copy had, which a rerun finds live; ``None`` where none was saved.

    .. code:: python

        {"label": "20261207T140000Z-pre-migration until binlog.000002:5678",
         "fingerprint": {"exists": True, "tables": {...}, ...}}
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", "--", QuoteString(path), "2>/dev/null || true")

    def process(self, output):
        lines = [line for line in output if line.strip()]
        if not lines:
            return None
        return {"label": lines[0], "fingerprint": parse_fingerprint(lines[1:])}
