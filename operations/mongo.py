"""
Back up and restore MongoDB databases of a Compose stack.

Every operation here takes the same connection arguments:

+ stack: the ``facts.compose.Stack`` the database runs in
+ database: the database name (letters, digits, underscores; 48 characters at most)
+ service: the compose service of the server (default ``mongodb``); its image must hold
  ``mongosh`` and the Database Tools (``mongodump``, ``mongorestore``, 100.3 or later)
+ user: the user to log in as (default ``root``)
+ password_key: the key of the stack's env file holding that user's password (``None``:
  no login); read on the host, it reaches the tools through their environment and a
  ``--config`` file on a pipe, never on a command line
+ auth_db: the database that holds the user (default ``admin``)

A restore is two operations so that the live database is only touched once a complete
copy is known good: ``shadow_loaded`` restores the archive into ``<database>__restore``
and ``swapped_in`` checks that copy's fingerprint against the snapshot's, then moves the
collections across. The replaced collections stay in ``<database>__pre_restore`` until
the next restore.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack
from facts.lock import holding_work
from facts.mongo import (
    DROP_JS,
    PASSWORD_KEY,
    MongoFingerprint,
    MongoVersions,
    fingerprint_command,
    mongo_tool,
    mongosh,
    same_data,
    script,
    summary,
)
from facts.shadow import PREVIOUS_SUFFIX, SHADOW_SUFFIX, staged_copy_problem
from facts.shell import assign, failing
from facts.snapshots import checksum_checked, descriptor_written, valid_part_name
from operations.arguments import checked_database, checked_path
from operations.decorator import operation

# Moves the live collections to <db>__pre_restore and the shadow's into <db>, one
# renameCollection each (across databases: a copy, then a drop, on the server). Any
# failure moves back what was moved, so the live database is as it was.
SWAP_JS = script("swap", """\
const live = env.LAYRA_DB, shadow = env.LAYRA_SHADOW, previous = env.LAYRA_PREVIOUS;
const admin = db.getSiblingDB("admin");
function collections(name) {
  const infos = db.getSiblingDB(name).getCollectionInfos({}, {nameOnly: true});
  const others = infos.filter((info) => info.type !== "collection").map((info) => info.name);
  if (others.length > 0) {
    throw new Error(`${name} holds views or time series (${others.join(", ")}), which this restore cannot move; nothing was changed`);
  }
  return infos.map((info) => info.name).filter((each) => !each.startsWith("system.")).sort();
}
function rename(from, to) {
  const answer = admin.runCommand({renameCollection: from, to: to, dropTarget: true});
  if (!answer.ok) throw new Error(answer.errmsg || `renameCollection ${from} failed`);
}
const current = collections(live), restored = collections(shadow);
if (restored.length === 0) throw new Error(`${shadow} holds no collection; nothing was changed`);
db.getSiblingDB(previous).dropDatabase();
const moved = [], swapped = [];
try {
  for (const name of current) { rename(`${live}.${name}`, `${previous}.${name}`); moved.push(name); }
  for (const name of restored) { rename(`${shadow}.${name}`, `${live}.${name}`); swapped.push(name); }
} catch (error) {
  const stuck = [];
  for (const name of swapped) {
    try { rename(`${live}.${name}`, `${shadow}.${name}`); } catch (again) { stuck.push(`${live}.${name}`); }
  }
  for (const name of moved) {
    try { rename(`${previous}.${name}`, `${live}.${name}`); } catch (again) { stuck.push(`${previous}.${name}`); }
  }
  const state = stuck.length === 0 ? `${live} was put back as it was`
    : `could not move back ${stuck.join(", ")}; the replaced collections are in ${previous}`;
  throw new Error(`the swap failed (${error.message}); ${state}`);
}
db.getSiblingDB(shadow).dropDatabase();
print(EJSON.stringify({ok: 1, moved: moved.length, swapped: swapped.length}));
""")


def check_names(database: str, **paths: str):
    checked_database(database)
    for what, value in paths.items():
        checked_path(value, what)


@operation()
def dumped(stack: Stack, database: str, directory: str, part: str, service: str = "mongodb",
           user: str = "root", password_key: str | None = PASSWORD_KEY, auth_db: str = "admin",
           source: str | None = None):
    """
    Dump a database into a snapshot directory: ``<part>.archive.gz`` and its descriptor ``<part>.json``.

    + directory: the (partial) snapshot directory on the host
    + part: the base name of the files written there, e.g. ``mongodb.layra``
    + source: the database to read, where it is not ``database`` itself: a rollback's
      displaced copy, ``<database>__pre_restore``, kept as a snapshot of ``<database>``
      (the descriptor names it: a restore maps its namespaces; nothing happens when there is none)

    ``mongodump --archive --gzip --db=<database>`` streams out of the container into the
    file, which appears under its final name only once the whole dump succeeded. The
    fingerprint is taken before the dump and again after it: if they differ, writes were
    not quiesced and the dump is refused.

    **Example:**

    .. code:: python

        mongo.dumped(
            name="Dump layra",
            stack=Stack("/srv/layra"),
            database="layra",
            directory="/var/backups/layra/20261121T130000Z-pre-migration.partial",
            part="mongodb.layra",
        )
    """
    check_names(database, directory=directory)
    read = database if source is None else source
    check_names(read)
    if not valid_part_name(part):
        raise OperationError(f"part name {part!r} is not a plain file name")
    login = dict(stack=stack, service=service, user=user, password_key=password_key, auth_db=auth_db)
    fingerprint = host.get_fact(MongoFingerprint, database=read, **login)
    if not fingerprint.get("exists") and source is not None:
        host.noop(f"mongo/{database}: no displaced copy ({source}) to keep")
        return
    if not fingerprint.get("exists"):
        yield failing(f"database {database!r} does not exist in service {service!r}")
        return
    versions = host.get_fact(MongoVersions, **login)

    fingerprint_again = fingerprint_command(stack, read, service, user, password_key, auth_db)
    yield StringCommand(
        "umask 077;", assign(out=f"{directory}/{part}"),
        'trap \'rm -f "$out.archive.gz.tmp" "$out.fingerprint.before" "$out.fingerprint.after"\' EXIT;',
        "(", fingerprint_again, ') > "$out.fingerprint.before" &&',
        "(", mongo_tool(stack, service, user, password_key, auth_db, "mongodump",
                        "--archive", "--gzip", QuoteString(f"--db={read}")),
        '</dev/null ) > "$out.archive.gz.tmp" &&',
        "(", fingerprint_again, ') > "$out.fingerprint.after" || exit 1;',
        'if ! cmp -s "$out.fingerprint.before" "$out.fingerprint.after"; then echo',
        QuoteString(f"{read} changed while it was dumped (writes not quiesced); dump refused"),
        '>&2; exit 1; fi; chmod 0600 "$out.archive.gz.tmp" && mv "$out.archive.gz.tmp" "$out.archive.gz"',
    )
    descriptor = {
        "component": part.split(".")[0], "engine": "mongo", "service": service, "database": database,
        "file": f"{part}.archive.gz", "fingerprint": fingerprint, "tool_versions": versions,
        **({"source_database": source} if source is not None else {}),
    }
    yield from descriptor_written(directory, part, descriptor)


@operation()
def shadow_loaded(stack: Stack, database: str, archive_file: str, sha256: str, fingerprint: dict,
                  service: str = "mongodb", user: str = "root", password_key: str | None = PASSWORD_KEY,
                  auth_db: str = "admin", live_differs: bool = False, source_database: str | None = None):
    """
    Restore a snapshot's archive into the shadow database ``<database>__restore``, live untouched.

    + archive_file: the ``.archive.gz`` file of the snapshot on the host
    + sha256: its checksum from the snapshot's manifest; a mismatch refuses the restore
    + fingerprint: the snapshot's fingerprint of the database
    + live_differs: the caller read the live database moments ago and it differed from the
      snapshot (the rollback's plan): its fingerprint, a full scan, is not read again
    + source_database: the database the archive was dumped from, where not ``database``
      (a rollback's displaced copy, its descriptor's ``source_database``)

    Nothing happens when the live database already matches the snapshot, or when a
    previous run already loaded a shadow copy that matches it. Otherwise the shadow is
    dropped and ``mongorestore --archive --gzip --drop --stopOnError`` renames the
    archive's ``<database>.*`` to ``<database>__restore.*`` as it loads; a failed load
    drops the shadow again.

    **Example:**

    .. code:: python

        mongo.shadow_loaded(
            name="Load layra from the snapshot",
            stack=Stack("/srv/layra"),
            database="layra",
            archive_file="/var/backups/layra/20261121T130000Z-pre-migration/mongodb.layra.archive.gz",
            sha256="9f86d08...",
            fingerprint={"exists": True, "collections": {}, "md5": None},
        )
    """
    check_names(database, archive_file=archive_file)
    dumped_from = database if source_database is None else source_database
    check_names(dumped_from)
    login = dict(stack=stack, service=service, user=user, password_key=password_key, auth_db=auth_db)
    live = None if live_differs else host.get_fact(MongoFingerprint, database=database, **login)
    if live and same_data(live, fingerprint):
        host.noop(f"mongo/{database} already matches the snapshot ({summary(fingerprint)})")
        return
    shadow = database + SHADOW_SUFFIX
    if same_data(host.get_fact(MongoFingerprint, database=shadow, **login), fingerprint):
        host.noop(f"mongo/{database}: the shadow copy is already loaded and matches the snapshot")
        return

    try:
        yield checksum_checked(archive_file, sha256, f"mongo/{database}")
    except ValueError as error:
        raise OperationError(str(error)) from None
    drop_shadow = mongosh(stack, service, user, password_key, auth_db, DROP_JS, LAYRA_DB=shadow)
    yield StringCommand(
        holding_work(stack.dir, f"mongo/{database}: load the shadow copy"), drop_shadow, "|| exit 1;",
        mongo_tool(stack, service, user, password_key, auth_db, "mongorestore",
                   "--archive", "--gzip", "--drop", "--stopOnError",
                   QuoteString(f"--nsInclude={dumped_from}.*"), QuoteString(f"--nsFrom={dumped_from}.*"),
                   QuoteString(f"--nsTo={shadow}.*")),
        "<", QuoteString(archive_file), "|| {", drop_shadow, ";",
        "echo", QuoteString(f"{archive_file} did not load; mongo/{database} was not touched"), ">&2; exit 1; }",
    )


@operation()
def shadow_checked(stack: Stack, database: str, fingerprint: dict, service: str = "mongodb", user: str = "root",
                   password_key: str | None = PASSWORD_KEY, auth_db: str = "admin"):
    """
    Check the shadow copy ``<database>__restore`` against the snapshot's fingerprint: a
    rollback stages it (``shadow_loaded``) and checks it before its window, so that the
    window's swap (``swapped_in`` with ``shadow_checked``) reads nothing whose cost grows
    with the data.

    + fingerprint: the snapshot's fingerprint of the database

    Fails, naming what the shadow holds, when it does not match; the live database is not
    touched either way.

    **Example:**

    .. code:: python

        mongo.shadow_checked(
            name="Check the staged layra",
            stack=Stack("/srv/layra"),
            database="layra",
            fingerprint={"exists": True, "collections": {}, "md5": None},
        )
    """
    check_names(database)
    shadow = host.get_fact(MongoFingerprint, stack=stack, database=database + SHADOW_SUFFIX, service=service,
                           user=user, password_key=password_key, auth_db=auth_db)
    problem = staged_copy_problem("mongo", database, shadow, fingerprint, same_data, summary)
    if problem:
        yield failing(problem)
    else:
        host.noop(f"mongo/{database}: the staged copy matches the snapshot ({summary(fingerprint)})")


@operation()
def aside_dropped(stack: Stack, database: str, service: str = "mongodb", user: str = "root",
                  password_key: str | None = PASSWORD_KEY, auth_db: str = "admin"):
    """
    Drop the displaced copy ``<database>__pre_restore`` a swap left, once a snapshot holds it.

    The rollback registers it only where it swapped, and runs it only after the safety
    snapshot that holds the copy is complete and verified.

    **Example:**

    .. code:: python

        mongo.aside_dropped(name="Drop the displaced layra", stack=Stack("/srv/layra"), database="layra")
    """
    check_names(database)
    yield mongosh(stack, service, user, password_key, auth_db, DROP_JS, LAYRA_DB=database + PREVIOUS_SUFFIX)


@operation()
def swapped_in(stack: Stack, database: str, fingerprint: dict, service: str = "mongodb", user: str = "root",
               password_key: str | None = PASSWORD_KEY, auth_db: str = "admin",
               live_differs: bool = False, shadow_checked: bool = False):
    """
    Swap the verified shadow copy in for the live database, collection by collection.

    + fingerprint: the snapshot's fingerprint of the database; the shadow copy must
      match it, or the live database is left as it is
    + live_differs: the caller read the live database moments ago and it differed from the
      snapshot (the rollback's plan): its fingerprint, a full scan, is not read again
    + shadow_checked: the caller checked the shadow copy against the snapshot in this run,
      under its lock (``shadow_checked``): it is not read again either

    One mongosh script empties ``<database>__pre_restore``, moves each live collection
    there, then each shadow collection into ``<database>``, and drops the shadow. MongoDB
    has no multi-collection rename, so this is not atomic as a whole: each
    ``renameCollection`` is (across databases it copies, then drops the source), and
    clients may see the database part-swapped for its duration: stop the writers first.
    A failed step moves back what was moved; should that fail too, nothing is lost:
    every replaced collection is in ``<database>__pre_restore`` and the message names
    what is where. Views and time series collections are refused, before any change.

    **Example:**

    .. code:: python

        mongo.swapped_in(
            name="Swap the restored layra in",
            stack=Stack("/srv/layra"),
            database="layra",
            fingerprint={"exists": True, "collections": {}, "md5": None},
        )
    """
    check_names(database)
    login = dict(stack=stack, service=service, user=user, password_key=password_key, auth_db=auth_db)
    live = None if live_differs else host.get_fact(MongoFingerprint, database=database, **login)
    if live and same_data(live, fingerprint):
        host.noop(f"mongo/{database} already matches the snapshot ({summary(fingerprint)})")
        return
    shadow = fingerprint if shadow_checked else host.get_fact(MongoFingerprint, database=database + SHADOW_SUFFIX,
                                                              **login)
    if not same_data(shadow, fingerprint):
        found = summary(shadow) if shadow.get("exists") else "no shadow copy"
        yield failing(f"mongo/{database}: the shadow copy does not match the snapshot ({found}, want "
                      f"{summary(fingerprint)}); the live database was not touched")
        return

    yield StringCommand(
        holding_work(stack.dir, f"mongo/{database}: swap the shadow copy in"),
        mongosh(stack, service, user, password_key, auth_db, SWAP_JS, LAYRA_DB=database,
                LAYRA_SHADOW=database + SHADOW_SUFFIX, LAYRA_PREVIOUS=database + PREVIOUS_SUFFIX),
        "|| {", "echo", QuoteString(f"mongo/{database}: the swap did not complete (see above)"), ">&2; exit 1; }",
    )
