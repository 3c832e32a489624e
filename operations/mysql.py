"""
Back up and restore MySQL / MariaDB databases of a Compose stack.

Every operation here takes the same connection arguments:

+ stack: the ``facts.compose.Stack`` the database runs in
+ database: the database name (letters, digits, underscores; 48 characters at most)
+ service: the compose service of the server (default ``mysql``)
+ user: the client user (default ``root``)
+ password_key: the key of the stack's env file holding that user's password; the value
  is read on the host and reaches the client as ``MYSQL_PWD``, never on a command line

The server may be MariaDB or Oracle MySQL (8.4, 9.x): where their dump tools differ, the
operations read which one it is (``facts.mysql.MysqlVersions``) and pass its options.

A restore is two operations so that the live database is only touched once a complete
copy is known good: ``shadow_loaded`` loads the dump into ``<database>__restore`` and
``swapped_in`` checks that copy's fingerprint against the snapshot's, then exchanges all
tables in one ``RENAME TABLE``. The replaced tables stay in ``<database>__pre_restore``
until the next restore.
"""

from __future__ import annotations

import gevent
from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack
from facts.gather import side_by_side
from facts.lock import holding_work
from facts.mysql import (
    BINLOG_SQL,
    COORDINATE_OPTIONS,
    DUMP_OPTIONS,
    MYSQL,
    PASSWORD_KEY,
    TABLE_TYPES,
    BinlogPoint,
    MysqlBinlog,
    MysqlFingerprint,
    MysqlTableStamps,
    MysqlVersions,
    binlog_range,
    client_function,
    fingerprint_command,
    in_service,
    same_data,
    settled,
    summary,
)
from facts.shadow import PREVIOUS_SUFFIX, SHADOW_SUFFIX, staged_copy_problem
from facts.shell import COMPRESSORS, assign, decompressor, failing, script
from facts.snapshots import checksum_checked, descriptor_written, valid_part_name
from operations.arguments import checked_database, checked_path
from operations.decorator import operation

# (host, service, database) -> the stamps (``MysqlTableStamps``) of its staged copy, read just before
# its checksums were found to match the snapshot (``shadow_checked``). Verify phase 4 of the
# same run tells by them that the live tables are that copy, swapped in and unwritten since,
# without reading the data again (``engines.mysql``).
CHECKED_COPIES: dict[tuple[str, str, str], dict] = {}


def check_names(database: str, **paths: str):
    checked_database(database)
    for what, value in paths.items():
        checked_path(value, what)


def bash(*parts) -> StringCommand:
    """A command run by bash with pipefail: a failing dump must fail its pipeline."""
    return StringCommand("set -o pipefail;", *parts, _shell_executable="bash")


@operation()
def dumped(stack: Stack, database: str, directory: str, part: str, service: str = "mysql",
           user: str = "root", password_key: str | None = PASSWORD_KEY, source: str | None = None):
    """
    Dump a database into a snapshot directory: ``<part>.sql.zst`` (``.sql.gz`` on a host
    without zstd) and its descriptor ``<part>.json``.

    + directory: the (partial) snapshot directory on the host
    + part: the base name of the files written there, e.g. ``mysql.layra``
    + source: the database to read, where it is not ``database`` itself: a rollback's
      displaced copy, ``<database>__pre_restore``, kept as a snapshot of ``<database>``
      (nothing happens when there is none)

    ``mysqldump --single-transaction --routines --triggers --events --skip-add-locks`` (MySQL's also
    ``--set-gtid-purged=OFF``: ``facts.mysql.DUMP_OPTIONS``) streams out of the
    container and is compressed on the host (zstd where it has it: the dump is then bound
    by the server, not by the compressor); the file appears under its final name only
    once the whole dump succeeded. The fingerprint is taken before the dump and again
    after it: if they differ, writes were not quiesced and the dump is refused. Where the
    server keeps a binlog, the dump also records the binlog coordinates it is consistent
    with (``--master-data=2``, MySQL's ``--source-data=2``: a global read lock for
    a moment at its start) in ``<part>.binlog-coordinates`` (JSON: ``{"file", "position", "gtid"}``),
    which the descriptor names as ``binlog_coordinates``: where a point-in-time replay starts.

    **Example:**

    .. code:: python

        mysql.dumped(
            name="Dump layra",
            stack=Stack("/srv/layra"),
            database="layra",
            directory="/var/backups/layra/20261121T130000Z-pre-migration.partial",
            part="mysql.layra",
        )
    """
    check_names(database, directory=directory)
    read = checked_database(source) if source is not None else database
    if not valid_part_name(part):
        raise OperationError(f"part name {part!r} is not a plain file name")
    fingerprint = host.get_fact(MysqlFingerprint, stack=stack, database=read, service=service,
                                user=user, password_key=password_key)
    if not fingerprint.get("exists") and source is not None:
        host.noop(f"mysql/{database}: no displaced copy ({source}) to keep")
        return
    if not fingerprint.get("exists"):
        # a failing command, not an exception: this is found while executing, and the
        # backup deploy must get the chance to remove its partial snapshot
        yield failing(f"database {database!r} does not exist in service {service!r}")
        return
    versions = host.get_fact(MysqlVersions, stack=stack, service=service, user=user, password_key=password_key)
    suffix, compress, decompress = COMPRESSORS[versions["compression"]]
    dump_file = f"{part}.sql{suffix}"
    # the binlog coordinates this dump is consistent with, where the server keeps a binlog
    # (a displaced copy is no point in the binlog's history)
    coordinates = source is None and host.get_fact(MysqlBinlog, stack=stack, service=service, user=user,
                                                   password_key=password_key, flavor=versions["flavor"])["log_bin"]
    binlog_file = f"{part}.binlog-coordinates"  # not .json: that suffix is a descriptor
    coordinates_read = [
        "{", decompress, '< "$dump.tmp" 2>/dev/null || :; } | head -c 65536 | sh -c',
        QuoteString(script("binlog_coordinates", "operations")), '> "$out.binlog.tmp" &&',
        'chmod 0600 "$out.binlog.tmp" && mv "$out.binlog.tmp"', QuoteString(f"{directory}/{binlog_file}"), "&&",
    ] if coordinates else []

    fingerprint_again = fingerprint_command(stack, read, service, user, password_key)
    yield bash(
        "umask 077;", assign(out=f"{directory}/{part}", dump=f"{directory}/{dump_file}"),
        "(", fingerprint_again, ') > "$out.fingerprint.before" &&',
        "(", client_function(stack, service, user, password_key),
        assign(db=read),
        # no LOCK TABLES in the dump: MariaDB refuses to load, under it, a table whose default
        # draws from a sequence (ERROR 1100), and InnoDB gains nothing from it
        'm -dump --single-transaction --routines --triggers --events --hex-blob --no-tablespaces'
        ' --skip-add-locks --skip-dump-date', *DUMP_OPTIONS[versions["flavor"]],
        *(COORDINATE_OPTIONS[versions["flavor"]] if coordinates else ()), '"$db" </dev/null', ") |", compress,
        '> "$dump.tmp" &&',
        "(", fingerprint_again, ') > "$out.fingerprint.after" &&', *coordinates_read,
        'if ! cmp -s "$out.fingerprint.before" "$out.fingerprint.after"; then',
        'rm -f "$dump.tmp" "$out.fingerprint.before" "$out.fingerprint.after";',
        "echo", QuoteString(f"{read} changed while it was dumped (writes not quiesced); dump refused"),
        ">&2; exit 1; fi &&",
        'rm -f "$out.fingerprint.before" "$out.fingerprint.after" &&',
        'chmod 0600 "$dump.tmp" && mv "$dump.tmp" "$dump"',
    )
    descriptor = {
        "component": part.split(".")[0], "engine": "mysql", "service": service, "database": database,
        "file": dump_file, "fingerprint": fingerprint,
        "tool_versions": versions, **({"binlog_coordinates": binlog_file} if coordinates else {}),
    }
    yield from descriptor_written(directory, part, descriptor)


@operation()
def shadow_loaded(stack: Stack, database: str, dump_file: str, sha256: str, fingerprint: dict,
                  service: str = "mysql", user: str = "root", password_key: str | None = PASSWORD_KEY,
                  live_differs: bool = False):
    """
    Load a snapshot's dump into the shadow database ``<database>__restore``, live untouched.

    + dump_file: the ``.sql.zst`` (or ``.sql.gz``) file of the snapshot on the host
    + sha256: its checksum from the snapshot's manifest; a mismatch refuses the restore
    + fingerprint: the snapshot's fingerprint of the database
    + live_differs: the caller read the live database moments ago and it differed from the
      snapshot (the rollback's plan): its fingerprint, a full scan, is not read again

    Nothing happens when the live database already matches the snapshot, or when a
    previous run already loaded a shadow copy that matches it.

    **Example:**

    .. code:: python

        mysql.shadow_loaded(
            name="Load layra from the snapshot",
            stack=Stack("/srv/layra"),
            database="layra",
            dump_file="/var/backups/layra/20261121T130000Z-pre-migration/mysql.layra.sql.zst",
            sha256="9f86d08...",
            fingerprint={"exists": True, "schema_sha256": "...", "tables": {}},
        )
    """
    check_names(database, dump_file=dump_file)
    args = dict(stack=stack, service=service, user=user, password_key=password_key)
    live = None if live_differs else host.get_fact(MysqlFingerprint, database=database, **args)
    if live and same_data(live, fingerprint):
        host.noop(f"mysql/{database} already matches the snapshot ({summary(fingerprint)})")
        return
    shadow = host.get_fact(MysqlFingerprint, database=database + SHADOW_SUFFIX, **args)
    if same_data(shadow, fingerprint):
        host.noop(f"mysql/{database}: the shadow copy is already loaded and matches the snapshot")
        return

    try:
        yield checksum_checked(dump_file, sha256, f"mysql/{database}")
    except ValueError as error:
        raise OperationError(str(error)) from None
    yield bash(
        holding_work(stack.dir, f"mysql/{database}: load the shadow copy"),
        client_function(stack, service, user, password_key),
        assign(db=database, shadow=database + SHADOW_SUFFIX, dump=dump_file),
        # the shadow copy gets the live database's character set and collation, if it has one
        'charset=$(m "" -N -B -e "SELECT CONCAT(\' CHARACTER SET \', default_character_set_name,'
        ' \' COLLATE \', default_collation_name) FROM information_schema.schemata'
        ' WHERE schema_name = \'$db\'" </dev/null) &&',
        'm "" -e "DROP DATABASE IF EXISTS \\`$shadow\\`; CREATE DATABASE \\`$shadow\\`$charset" </dev/null &&',
        "if !", decompressor(dump_file), '"$dump" | m "" "$shadow"; then',
        'm "" -e "DROP DATABASE IF EXISTS \\`$shadow\\`" </dev/null;',
        "echo", QuoteString(f"{dump_file} did not load; mysql/{database} was not touched"), ">&2; exit 1; fi",
    )


@operation()
def shadow_checked(stack: Stack, database: str, fingerprint: dict, service: str = "mysql",
                   user: str = "root", password_key: str | None = PASSWORD_KEY):
    """
    Check the shadow copy ``<database>__restore`` against the snapshot's fingerprint: a
    rollback stages it (``shadow_loaded``) and checks it before its window, so that the
    window's swap (``swapped_in`` with ``shadow_checked``) reads nothing whose cost grows
    with the data.

    + fingerprint: the snapshot's fingerprint of the database

    Fails, naming what the shadow holds, when it does not match; the live database is not
    touched either way. A copy that matches is remembered with the stamps of its tables,
    read just before its checksums (``MysqlTableStamps``: InnoDB table ids, last writes):
    verify phase 4 compares the live tables' stamps with them after the swap
    (``CHECKED_COPIES``).

    **Example:**

    .. code:: python

        mysql.shadow_checked(
            name="Check the staged layra",
            stack=Stack("/srv/layra"),
            database="layra",
            fingerprint={"exists": True, "schema_sha256": "...", "tables": {}},
        )
    """
    check_names(database)
    client = {"stack": stack, "service": service, "user": user, "password_key": password_key}
    flavor = host.get_fact(MysqlVersions, **client)["flavor"]
    # stamped first: a write after the stamps, even during the checksums, changes them
    stamps = host.get_fact(MysqlTableStamps, database=database + SHADOW_SUFFIX, flavor=flavor, **client)
    if stamps.get("tables") and all(written for _, written in stamps["tables"].values()) and not settled(stamps):
        # the load's last writes too recent (or a transaction still open) to tell a later
        # write by: once more, a moment later (before the window: it costs the window nothing)
        gevent.sleep(2)
        stamps = host.get_fact(MysqlTableStamps, database=database + SHADOW_SUFFIX, flavor=flavor, **client)
    shadow = host.get_fact(MysqlFingerprint, database=database + SHADOW_SUFFIX, **client)
    problem = staged_copy_problem("mysql", database, shadow, fingerprint, same_data, summary)
    if problem:
        yield failing(problem)
    else:
        CHECKED_COPIES[(host.name, service, database)] = {**stamps, "flavor": flavor}
        host.noop(f"mysql/{database}: the staged copy matches the snapshot ({summary(fingerprint)})")


@operation()
def aside_dropped(stack: Stack, database: str, service: str = "mysql", user: str = "root",
                  password_key: str | None = PASSWORD_KEY):
    """
    Drop the displaced copy ``<database>__pre_restore`` a swap left, once a snapshot holds it.

    The rollback registers it only where it swapped, and runs it only after the safety
    snapshot that holds the copy is complete and verified.

    **Example:**

    .. code:: python

        mysql.aside_dropped(name="Drop the displaced layra", stack=Stack("/srv/layra"), database="layra")
    """
    check_names(database)
    yield bash(
        client_function(stack, service, user, password_key), assign(previous=database + PREVIOUS_SUFFIX),
        'm "" -e "DROP DATABASE IF EXISTS \\`$previous\\`" </dev/null',
    )


@operation()
def binlog_point_saved(stack: Stack, path: str, service: str = "mysql", user: str = "root",
                       password_key: str | None = PASSWORD_KEY):
    """
    Save where the server's binlog is now into a file on the host: the point a
    point-in-time rollback replays up to (``rollback.py --data until=migration``).

    + path: the file written (JSON: ``{"file", "position", "gtid", "at"}``, 0600)

    The guarded release (``migrate.py``) saves it immediately before the release's stack
    comes up (and its migration runs). Nothing happens where the server keeps no binlog:
    such a release can only be rolled back to its snapshot.

    **Example:**

    .. code:: python

        mysql.binlog_point_saved(
            name="Save the binlog point before the release",
            stack=Stack("/srv/layra"),
            path="/srv/layra/.git/layra-release-point.mysql.json",
        )
    """
    checked_path(path, "path")
    login = dict(stack=stack, service=service, user=user, password_key=password_key)
    flavor = host.get_fact(MysqlVersions, **login)["flavor"]
    if not host.get_fact(MysqlBinlog, flavor=flavor, **login)["log_bin"]:
        host.noop(f"mysql ({service}): no binlog: no point to save (a rollback of this release goes back to "
                  "its snapshot, the writes since are not replayed)")
        return
    variables, status = BINLOG_SQL[flavor]
    yield bash(
        "umask 077;", client_function(stack, service, user, password_key), assign(out=path),
        f'point=$(m "" -N -B -e "{status}" </dev/null) && gtid=$(m "" -N -B -e "{variables}" </dev/null) &&',
        # MySQL's gtid_executed is uuid:ranges, one line per source (\\n in batch output)
        'set -- $point && gtid=$(printf "%s" "$gtid" | cut -f4 | sed \'s/\\\\n//g\') &&',
        'case "$2" in ""|*[!0-9]*) echo "unexpected binlog position: $point" >&2; exit 1;; esac &&',
        'case "$1$gtid" in *[!A-Za-z0-9._,:-]*) echo "unexpected binlog position: $point $gtid" >&2; exit 1;; esac &&',
        'printf \'{"file": "%s", "position": %s, "gtid": "%s", "at": "%s"}\\n\' "$1" "$2" "$gtid"',
        '"$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out.tmp" && mv "$out.tmp" "$out"',
    )


@operation()
def shadow_replayed(stack: Stack, database: str, replay: dict, service: str = "mysql", user: str = "root",
                    password_key: str | None = PASSWORD_KEY):
    """
    Replay onto the shadow copy ``<database>__restore`` the binlog's row events for the
    database in a range: the writes made after the snapshot, up to a point before the
    release's migration (a point-in-time rollback).

    + replay: the range, as ``engines.mysql`` plans it: ``files`` (the binlog files, from
      the snapshot's to the point's), ``start`` (the snapshot's position in the first),
      ``stop`` (a position in the last) or ``stop_time`` (``YYYY-MM-DD HH:MM:SS`` UTC), and
      the server's ``flavor`` where the plan read it (``MysqlVersions`` otherwise)

    ``mariadb-binlog -R --database=<db> --rewrite-db=<db>-><db>__restore`` (``mysqlbinlog
    --skip-gtids`` on MySQL: it would skip transactions the server already executed) reads
    the range through the server and the client applies it to the shadow with
    ``sql_log_bin=0`` (the replay is not logged again). Run once the shadow is loaded and
    checked against the snapshot (``shadow_checked``): the swap then moves it in. A replay
    that fails leaves the live database untouched (the next run loads the shadow again).

    **Example:**

    .. code:: python

        mysql.shadow_replayed(
            name="Replay layra up to the migration",
            stack=Stack("/srv/layra"),
            database="layra",
            replay={"files": ["binlog.000002"], "start": 1234, "stop": 5678},
        )
    """
    check_names(database)
    try:
        reading = binlog_range(replay["files"], replay.get("start"), replay.get("stop"),
                               stop_time=replay.get("stop_time"))
    except (KeyError, ValueError) as error:
        raise OperationError(f"mysql/{database}: not a binlog range to replay: {error}") from None
    login = dict(stack=stack, service=service, user=user, password_key=password_key)
    flavor = replay.get("flavor") or host.get_fact(MysqlVersions, **login)["flavor"]
    shadow = database + SHADOW_SUFFIX
    # the reader piped into the client inside the container (scripts/binlog_replay.sh)
    yield bash(
        holding_work(stack.dir, f"mysql/{database}: replay the binlog onto the shadow copy"), "(",
        in_service(stack, service, password_key, "sh", "-c", QuoteString(script("binlog_replay", "operations")),
                   "sh", QuoteString(user), QuoteString(f"--database={database}"),
                   QuoteString(f"--rewrite-db={database}->{shadow}"), *(("--skip-gtids",) if flavor == MYSQL else ()),
                   *reading, "</dev/null"),
        ") || {", "echo", QuoteString(f"mysql/{database}: the binlog replay onto {shadow} failed; "
                                      "the live database was not touched"), ">&2; exit 1; }",
    )


@operation()
def replay_target_saved(stack: Stack, database: str, path: str, label: str, service: str = "mysql",
                        user: str = "root", password_key: str | None = PASSWORD_KEY):
    """
    Save the fingerprint of the replayed shadow copy ``<database>__restore`` with what was
    replayed (``label``: snapshot and point): the target of a point-in-time rollback, which
    verify phase 4 checks the live database against, and a rerun finds live (it changes
    nothing then). Read back by ``facts.mysql.ReplayTarget``.

    + path: the file written (0600; beside the rollback lock)
    + label: one line naming the snapshot and the point

    **Example:**

    .. code:: python

        mysql.replay_target_saved(
            name="Save the replayed layra's fingerprint",
            stack=Stack("/srv/layra"),
            database="layra",
            path="/srv/layra/.git/layra-point-in-time.mysql.layra",
            label="20261207T140000Z-pre-migration until binlog.000002:5678",
        )
    """
    check_names(database, path=path)
    if "\n" in label:
        raise OperationError("label must be one line")
    yield bash(
        "umask 077;", assign(out=path), "{ printf '%s\\n'", QuoteString(label), "&&",
        fingerprint_command(stack, database + SHADOW_SUFFIX, service, user, password_key),
        '; } > "$out.tmp" && mv "$out.tmp" "$out"',
    )


@operation()
def binlog_exported(stack: Stack, database: str, replay: dict, path: str, until_path: str | None = None,
                    service: str = "mysql", user: str = "root", password_key: str | None = PASSWORD_KEY):
    """
    Export the binlog's events for the database from a point on (the writes a
    point-in-time rollback did not replay) into an SQL file an operator can review and
    replay by hand: ``mariadb-binlog --database=<db> -v`` (each row event as a ``BINLOG``
    statement, with its rows as ``###`` comments).

    + replay: the range (``files``, ``start`` or ``start_time``: the point)
    + path: the file written, 0600 (in the safety snapshot)
    + until_path: a binlog point saved on the host (``binlog_point_saved``) where the
      export ends: the rollback saves one as its window begins, so that its own swap and
      the writes after its window are not in the export

    **Example:**

    .. code:: python

        mysql.binlog_exported(
            name="Export the writes after the point",
            stack=Stack("/srv/layra"),
            database="layra",
            replay={"files": ["binlog.000002"], "start": 5678},
            path="/var/backups/layra/20261207T150000Z-safety-before-rollback.partial/mysql.layra.after-point.sql",
        )
    """
    check_names(database, path=path)
    end = host.get_fact(BinlogPoint, path=until_path) if until_path else None
    files = list(replay.get("files") or [])
    if end and files and end["file"] not in files:
        # the binlog rotated since the plan: the files up to the end's, as the server has them now
        login = dict(stack=stack, service=service, user=user, password_key=password_key)
        flavor = host.get_fact(MysqlVersions, **login)["flavor"]
        now = host.get_fact(MysqlBinlog, flavor=flavor, **login)["files"]
        if files[0] not in now or end["file"] not in now:
            raise OperationError(f"mysql/{database}: binlog files {files[0]} to {end['file']} are not all on the "
                                 f"server: the writes after the point cannot be exported")
        files = now[now.index(files[0]):]
    if end:
        files = files[:files.index(end["file"]) + 1]
    try:
        reading = binlog_range(files, replay.get("start"), end and end["position"], start_time=replay.get("start_time"))
    except (KeyError, ValueError) as error:
        raise OperationError(f"mysql/{database}: not a binlog range to export: {error}") from None
    yield bash(
        "umask 077;", client_function(stack, service, user, password_key, name="mb"), assign(out=path),
        "mb -binlog -R -v", QuoteString(f"--database={database}"), *reading, '</dev/null > "$out.tmp" &&',
        'mv "$out.tmp" "$out"',
    )


# Statements that empty the live database of views, routines, events and triggers (which
# would block moving tables across databases) and exchange all tables (sequences too) in one RENAME.
SWAP_SQL = """
SELECT CONCAT('DROP TRIGGER ', {q_schema_trigger}, ';') FROM information_schema.triggers
 WHERE trigger_schema IN ('$db', '$shadow');
SELECT CONCAT('DROP VIEW ', {q_view}, ';') FROM information_schema.views WHERE table_schema = '$db';
SELECT CONCAT('DROP ', routine_type, ' ', {q_routine}, ';') FROM information_schema.routines
 WHERE routine_schema = '$db';
SELECT CONCAT('DROP EVENT ', {q_event}, ';') FROM information_schema.events WHERE event_schema = '$db';
SELECT CONCAT('RENAME TABLE ', GROUP_CONCAT(pair ORDER BY step SEPARATOR ', '), ';') FROM (
  SELECT 1 AS step, CONCAT('`$db`.', {q_table}, ' TO `$previous`.', {q_table}) AS pair
    FROM information_schema.tables WHERE table_schema = '$db' AND table_type IN {table_types}
  UNION ALL
  SELECT 2, CONCAT('`$shadow`.', {q_table}, ' TO `$db`.', {q_table})
    FROM information_schema.tables WHERE table_schema = '$shadow' AND table_type IN {table_types}
) AS pairs HAVING COUNT(*) > 0;
""".strip()


def _q(column: str) -> str:
    return f"CONCAT('`', REPLACE({column}, '`', '``'), '`')"


SWAP_SQL = SWAP_SQL.format(
    q_schema_trigger=f"{_q('trigger_schema')}, '.', {_q('trigger_name')}",
    q_view=f"{_q('table_schema')}, '.', {_q('table_name')}",
    q_routine=f"{_q('routine_schema')}, '.', {_q('routine_name')}",
    q_event=f"{_q('event_schema')}, '.', {_q('event_name')}",
    q_table=_q("table_name"),
    table_types=TABLE_TYPES,
)

def swap_sql(database: str) -> str:
    """SWAP_SQL for one database (a validated plain name, safe inside SQL quotes)."""
    return (SWAP_SQL.replace("$db", database).replace("$shadow", database + SHADOW_SUFFIX)
            .replace("$previous", database + PREVIOUS_SUFFIX))


# Writes a database's triggers, routines, events and then views to a file, to recreate them
# (with the dump tool's options for the server, ``{options}``).
OBJECTS_DUMP = """
dump_objects() {
  views=$(m "" -N -B -r -e "SELECT table_name FROM information_schema.views WHERE table_schema = '$1'" </dev/null) || return 1
  m -dump --no-create-info --no-data --routines --triggers --events --skip-comments{options} "$1" </dev/null > "$2" || return 1
  if [ -n "$views" ]; then
    (set -f; IFS=$'\\n'; m -dump --no-data --skip-triggers --skip-comments{options} "$1" $views </dev/null) >> "$2"
  fi
}
""".strip()


def objects_dump(flavor: str) -> str:
    """OBJECTS_DUMP for a ``mariadb`` or ``mysql`` server."""
    return OBJECTS_DUMP.replace("{options}", "".join(f" {option}" for option in DUMP_OPTIONS[flavor]))


@operation()
def swapped_in(stack: Stack, database: str, fingerprint: dict, service: str = "mysql",
               user: str = "root", password_key: str | None = PASSWORD_KEY,
               live_differs: bool = False, shadow_checked: bool = False):
    """
    Swap the verified shadow copy in for the live database, in one ``RENAME TABLE``.

    + fingerprint: the snapshot's fingerprint of the database; the shadow copy must
      match it, or the live database is left as it is
    + live_differs: the caller read the live database moments ago and it differed from the
      snapshot (the rollback's plan): its fingerprint, a full scan, is not read again
    + shadow_checked: the caller checked the shadow copy against the snapshot in this run,
      under its lock (``shadow_checked``): it is not read again either

    Views, triggers, routines and events are recreated from the shadow copy; tables
    that only the live database had go with the replaced ones to
    ``<database>__pre_restore``, the displaced copy, which gets the live database's views,
    triggers, routines and events back (a snapshot can be taken of it). If the exchange fails, the live database keeps its
    tables and gets its views and routines back.

    **Example:**

    .. code:: python

        mysql.swapped_in(
            name="Swap the restored layra in",
            stack=Stack("/srv/layra"),
            database="layra",
            fingerprint={"exists": True, "schema_sha256": "...", "tables": {}},
        )
    """
    check_names(database)
    args = dict(stack=stack, service=service, user=user, password_key=password_key)
    live = None if live_differs else host.get_fact(MysqlFingerprint, database=database, **args)
    if live and same_data(live, fingerprint):
        host.noop(f"mysql/{database} already matches the snapshot ({summary(fingerprint)})")
        return
    # which server it is (the objects are dumped with its options), read beside the shadow's fingerprint
    shadow, versions = side_by_side([
        (lambda: fingerprint) if shadow_checked else
        (lambda: host.get_fact(MysqlFingerprint, database=database + SHADOW_SUFFIX, **args)),
        lambda: host.get_fact(MysqlVersions, **args)])
    if not same_data(shadow, fingerprint):
        found = summary(shadow) if shadow.get("exists") else "no shadow copy"
        yield failing(f"mysql/{database}: the shadow copy does not match the snapshot ({found}, want "
                      f"{summary(fingerprint)}); the live database was not touched")
        return

    yield bash(
        holding_work(stack.dir, f"mysql/{database}: swap the shadow copy in"),
        client_function(stack, service, user, password_key),
        assign(db=database, shadow=database + SHADOW_SUFFIX, previous=database + PREVIOUS_SUFFIX),
        'tmp=$(mktemp -d) && trap \'rm -rf "$tmp"\' EXIT &&',
        objects_dump(versions["flavor"]), ";",
        'dump_objects "$shadow" "$tmp/objects.sql" && dump_objects "$db" "$tmp/live-objects.sql" &&',
        'm "" -e "CREATE DATABASE IF NOT EXISTS \\`$db\\`; DROP DATABASE IF EXISTS \\`$previous\\`;'
        ' CREATE DATABASE \\`$previous\\`" </dev/null &&',
        'm "" -N -B -r -e', QuoteString(swap_sql(database)),
        '</dev/null > "$tmp/swap.sql" || exit 1;',
        'if ! m "" "$db" < "$tmp/swap.sql"; then',
        'm "" "$db" < "$tmp/live-objects.sql";',
        "echo", QuoteString(f"mysql/{database}: the table exchange failed; the live database kept its tables"),
        ">&2; exit 1; fi;",
        'm "" "$db" < "$tmp/objects.sql" || { echo',
        QuoteString(f"mysql/{database}: tables restored, but views/routines/triggers failed to load; run again"),
        '>&2; exit 1; };',
        # the displaced copy whole, as it was live: its views, routines, triggers and events too
        'm "" "$previous" < "$tmp/live-objects.sql" || echo',
        QuoteString(f"mysql/{database}: the displaced copy's views/routines/triggers did not load"), ">&2;",
        'm "" -e "DROP DATABASE \\`$shadow\\`" </dev/null',
    )
