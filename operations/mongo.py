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
copy is known good: ``shadow_loaded`` restores the archive into shadow collections
``__restore__<collection>`` of the same database and ``swapped_in`` checks that copy's
fingerprint against the snapshot's, then renames the collections within the database.
The replaced collections stay as ``__pre_restore__<collection>`` until a snapshot holds
them (``aside_dropped``). Collection names with either prefix are reserved for these copies.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack
from facts.lock import holding_work
from facts.mongo import (
    COPIES,
    DROP_JS,
    PASSWORD_KEY,
    MongoCollectionNames,
    MongoFingerprint,
    MongoVersions,
    copy_env,
    database_env,
    fingerprint_command,
    mongo_tool,
    mongosh,
    same_data,
    script,
    summary,
)
from facts.shadow import staged_copy_problem
from facts.shell import assign, failing
from facts.snapshots import checksum_checked, descriptor_written, valid_part_name
from operations.arguments import checked_database, checked_path
from operations.decorator import operation

# Within the live database: empties the aside copy, moves each live collection to
# __pre_restore__<name>, then each staged __restore__<name> to <name>, one renameCollection
# each (within one database: a change of the catalog, whatever the data's size). Any
# failure moves back what was moved, so the live collections are as they were.
SWAP_JS = script("swap", """\
const live = env.LAYRA_DB, shadow = env.LAYRA_SHADOW_PREFIX, aside = env.LAYRA_ASIDE_PREFIX;
const target = db.getSiblingDB(live), admin = db.getSiblingDB("admin");
const infos = target.getCollectionInfos({}, {nameOnly: true});
const others = infos.filter((info) => info.type !== "collection").map((info) => info.name);
if (others.length > 0) {
  throw new Error(`${live} holds views or time series (${others.join(", ")}), which this restore cannot move; nothing was changed`);
}
const names = infos.map((info) => info.name).filter((name) => !name.startsWith("system."));
const copy = (prefix) => names.filter((name) => name.startsWith(prefix)).map((name) => name.slice(prefix.length)).sort();
const current = names.filter((name) => !name.startsWith(shadow) && !name.startsWith(aside)).sort();
const restored = copy(shadow);
if (restored.length === 0) throw new Error(`${live} holds no staged collection (${shadow}*); nothing was changed`);
function rename(from, to) {
  const answer = admin.runCommand({renameCollection: `${live}.${from}`, to: `${live}.${to}`, dropTarget: true});
  if (!answer.ok) throw new Error(answer.errmsg || `renameCollection ${live}.${from} failed`);
}
for (const name of copy(aside)) target.getCollection(aside + name).drop();
const moved = [], swapped = [];
try {
  for (const name of current) { rename(name, aside + name); moved.push(name); }
  for (const name of restored) { rename(shadow + name, name); swapped.push(name); }
} catch (error) {
  const stuck = [];
  for (const name of swapped) {
    try { rename(name, shadow + name); } catch (again) { stuck.push(`${live}.${name}`); }
  }
  for (const name of moved) {
    try { rename(aside + name, name); } catch (again) { stuck.push(`${live}.${aside}${name}`); }
  }
  const state = stuck.length === 0 ? `${live} was put back as it was`
    : `could not move back ${stuck.join(", ")}; the replaced collections are ${live}.${aside}*`;
  throw new Error(`the swap failed (${error.message}); ${state}`);
}
print(EJSON.stringify({ok: 1, moved: moved.length, swapped: swapped.length}));
""")


def check_names(database: str, **paths: str):
    checked_database(database)
    for what, value in paths.items():
        checked_path(value, what)


@operation()
def dumped(stack: Stack, database: str, directory: str, part: str, service: str = "mongodb",
           user: str = "root", password_key: str | None = PASSWORD_KEY, auth_db: str = "admin",
           displaced: bool = False):
    """
    Dump a database into a snapshot directory: ``<part>.archive.gz`` and its descriptor ``<part>.json``.

    + directory: the (partial) snapshot directory on the host
    + part: the base name of the files written there, e.g. ``mongodb.layra``
    + displaced: dump the copy a rollback's swap moved aside (``__pre_restore__<collection>``
      in the database), kept as a snapshot of ``<database>``; the descriptor names its
      prefix, which a restore maps away; nothing happens when there is none

    ``mongodump --archive --gzip --db=<database>`` streams out of the container into the
    file, which appears under its final name only once the whole dump succeeded. The
    copies a restore keeps beside the live collections are left out (the live ones too,
    for a displaced copy). The fingerprint is taken before the dump and again after it:
    if they differ, writes were not quiesced and the dump is refused.

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
    if not valid_part_name(part):
        raise OperationError(f"part name {part!r} is not a plain file name")
    login = dict(stack=stack, service=service, user=user, password_key=password_key, auth_db=auth_db)
    copy = "aside" if displaced else "live"
    fingerprint = host.get_fact(MongoFingerprint, database=database, copy=copy, **login)
    if not fingerprint.get("exists") and displaced:
        host.noop(f"mongo/{database}: no displaced copy ({COPIES['aside']}*) to keep")
        return
    if not fingerprint.get("exists"):
        yield failing(f"database {database!r} does not exist in service {service!r}")
        return
    versions = host.get_fact(MongoVersions, **login)
    left_out = [QuoteString(f"--excludeCollectionsWithPrefix={COPIES['shadow']}")]
    if displaced:
        # mongodump cannot include by prefix: each live collection is left out by name (one
        # created since is dumped too, and ignored by the restore, which takes the prefix's)
        names = host.get_fact(MongoCollectionNames, database=database, **login)
        left_out += [QuoteString(f"--excludeCollection={name}") for name in names
                     if not name.startswith((COPIES["shadow"], COPIES["aside"]))]
    else:
        left_out.append(QuoteString(f"--excludeCollectionsWithPrefix={COPIES['aside']}"))

    fingerprint_again = fingerprint_command(stack, database, service, user, password_key, auth_db, copy)
    what = f"the displaced copy of {database}" if displaced else database
    yield StringCommand(
        "umask 077;", assign(out=f"{directory}/{part}"),
        'trap \'rm -f "$out.archive.gz.tmp" "$out.fingerprint.before" "$out.fingerprint.after"\' EXIT;',
        "(", fingerprint_again, ') > "$out.fingerprint.before" &&',
        "(", mongo_tool(stack, service, user, password_key, auth_db, "mongodump",
                        "--archive", "--gzip", QuoteString(f"--db={database}"), *left_out),
        '</dev/null ) > "$out.archive.gz.tmp" &&',
        "(", fingerprint_again, ') > "$out.fingerprint.after" || exit 1;',
        'if ! cmp -s "$out.fingerprint.before" "$out.fingerprint.after"; then echo',
        QuoteString(f"{what} changed while it was dumped (writes not quiesced); dump refused"),
        '>&2; exit 1; fi; chmod 0600 "$out.archive.gz.tmp" && mv "$out.archive.gz.tmp" "$out.archive.gz"',
    )
    descriptor = {
        "component": part.split(".")[0], "engine": "mongo", "service": service, "database": database,
        "file": f"{part}.archive.gz", "fingerprint": fingerprint, "tool_versions": versions,
        **({"source_prefix": COPIES["aside"]} if displaced else {}),
    }
    yield from descriptor_written(directory, part, descriptor)


@operation()
def shadow_loaded(stack: Stack, database: str, archive_file: str, sha256: str, fingerprint: dict,
                  service: str = "mongodb", user: str = "root", password_key: str | None = PASSWORD_KEY,
                  auth_db: str = "admin", live_differs: bool = False, source_prefix: str = "",
                  source_database: str | None = None):
    """
    Restore a snapshot's archive into the shadow collections ``__restore__<collection>`` of
    the database, the live collections untouched.

    + archive_file: the ``.archive.gz`` file of the snapshot on the host
    + sha256: its checksum from the snapshot's manifest; a mismatch refuses the restore
    + fingerprint: the snapshot's fingerprint of the database
    + live_differs: the caller read the live database moments ago and it differed from the
      snapshot (the rollback's plan): its fingerprint, a full scan, is not read again
    + source_prefix: the prefix of the archive's collections, where it holds a copy (a
      rollback's displaced copy: its descriptor's ``source_prefix``)
    + source_database: the database the archive was dumped from, where not ``database``
      (a displaced copy kept by an earlier release, its descriptor's ``source_database``)

    Nothing happens when the live collections already match the snapshot, or when a
    previous run already loaded a shadow copy that matches it. Otherwise the shadow
    collections are dropped and ``mongorestore --archive --gzip --drop --stopOnError`` maps
    the archive's ``<database>.<collection>`` to ``<database>.__restore__<collection>`` as
    it loads, on the same server and in the same database, so that the swap is a rename
    within it; a failed load drops the shadow collections again.

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
    if source_prefix not in ("", COPIES["aside"]):
        raise OperationError(f"source_prefix {source_prefix!r} is not a copy's prefix ({COPIES['aside']!r})")
    login = dict(stack=stack, service=service, user=user, password_key=password_key, auth_db=auth_db)
    live = None if live_differs else host.get_fact(MongoFingerprint, database=database, **login)
    if live and same_data(live, fingerprint):
        host.noop(f"mongo/{database} already matches the snapshot ({summary(fingerprint)})")
        return
    if same_data(host.get_fact(MongoFingerprint, database=database, copy="shadow", **login), fingerprint):
        host.noop(f"mongo/{database}: the shadow copy is already loaded and matches the snapshot")
        return

    try:
        yield checksum_checked(archive_file, sha256, f"mongo/{database}")
    except ValueError as error:
        raise OperationError(str(error)) from None
    drop_shadow = mongosh(stack, service, user, password_key, auth_db, DROP_JS, **copy_env(database, "shadow"))
    archived = f"{dumped_from}.{source_prefix}*"
    yield StringCommand(
        holding_work(stack.dir, f"mongo/{database}: load the shadow copy"), drop_shadow, "|| exit 1;",
        mongo_tool(stack, service, user, password_key, auth_db, "mongorestore",
                   "--archive", "--gzip", "--drop", "--stopOnError", QuoteString(f"--nsInclude={archived}"),
                   QuoteString(f"--nsFrom={archived}"), QuoteString(f"--nsTo={database}.{COPIES['shadow']}*")),
        "<", QuoteString(archive_file), "|| {", drop_shadow, ";",
        "echo", QuoteString(f"{archive_file} did not load; mongo/{database} was not touched"), ">&2; exit 1; }",
    )


@operation()
def shadow_checked(stack: Stack, database: str, fingerprint: dict, service: str = "mongodb", user: str = "root",
                   password_key: str | None = PASSWORD_KEY, auth_db: str = "admin"):
    """
    Check the shadow copy ``__restore__<collection>`` against the snapshot's fingerprint: a
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
    shadow = host.get_fact(MongoFingerprint, stack=stack, database=database, copy="shadow", service=service,
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
    Drop the displaced copy ``__pre_restore__<collection>`` a swap left, once a snapshot holds it.

    The rollback registers it only where it swapped, and runs it only after the safety
    snapshot that holds the copy is complete and verified.

    **Example:**

    .. code:: python

        mongo.aside_dropped(name="Drop the displaced layra", stack=Stack("/srv/layra"), database="layra")
    """
    check_names(database)
    yield mongosh(stack, service, user, password_key, auth_db, DROP_JS, **copy_env(database, "aside"))


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

    One mongosh script drops the previous aside copy, renames each live collection to
    ``__pre_restore__<collection>``, then each ``__restore__<collection>`` to
    ``<collection>``, all within the database: a change of the catalog each, whatever the
    data's size. MongoDB has no multi-collection rename, so this is not atomic as a whole:
    each ``renameCollection`` is, and clients may see the database part-swapped for its
    duration: stop the writers first. A failed step moves back what was moved; should that
    fail too, nothing is lost: every replaced collection is ``__pre_restore__<collection>``
    and the message names what is where. Views and time series collections are refused,
    before any change.

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
    shadow = fingerprint if shadow_checked else host.get_fact(MongoFingerprint, database=database, copy="shadow",
                                                              **login)
    if not same_data(shadow, fingerprint):
        found = summary(shadow) if shadow.get("exists") else "no shadow copy"
        yield failing(f"mongo/{database}: the shadow copy does not match the snapshot ({found}, want "
                      f"{summary(fingerprint)}); the live database was not touched")
        return

    yield StringCommand(
        holding_work(stack.dir, f"mongo/{database}: swap the shadow copy in"),
        mongosh(stack, service, user, password_key, auth_db, SWAP_JS, **database_env(database),
                LAYRA_SHADOW_PREFIX=COPIES["shadow"], LAYRA_ASIDE_PREFIX=COPIES["aside"]),
        "|| {", "echo", QuoteString(f"mongo/{database}: the swap did not complete (see above)"), ">&2; exit 1; }",
    )
