"""
Manage a stack's Redis: flush caches by key pattern, dump the data set to an RDB file
of a snapshot, and restore it from one.

Every operation here takes the server the same way:

+ stack: a ``facts.compose.Stack``: where the Compose project lives and how to address it
+ service: the compose service running ``redis-server`` (its image must also hold
  ``redis-cli``; the restore runs the same image once more, with its volumes)
+ password_key: the key of the stack's env file holding the password (``None``: no AUTH);
  read on the host into ``REDISCLI_AUTH``, never put on a command line

Key names travel between Redis and the host in ``redis-cli --no-raw``'s quoted form, one
per line, through pipes: a key with spaces, quotes or newlines is handled like any other,
and no key (session ids are secrets) appears on a command line either.
"""

from __future__ import annotations

import posixpath

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack, compose_command
from facts.lock import holding_work
from facts.redis import (
    COPY_SOCKET,
    FINGERPRINT_FIELDS,
    PASSWORD_KEY,
    RedisCopy,
    RedisFingerprint,
    RedisFingerprintLines,
    RedisKeyCounts,
    RedisPersistence,
    cache_patterns,
    checked_db,
    copies_command,
    copy_served,
    databases_of,
    fingerprint_command,
    fingerprint_lines_file,
    layout_of,
    redis_auth,
    redis_exec,
    same_data,
    valid_pattern,
    valid_volatile,
)
from facts.secrets import KEY_PATTERN
from facts.shell import assign, failing
from facts.snapshots import checksum_checked, descriptor_written, valid_part_name
from facts.volumes import library
from operations.arguments import checked_path
from operations.decorator import operation

STOP_TIMEOUT = 120  # seconds `docker compose stop` lets Redis save before it is killed

# Groups the quoted key names SCAN prints into `UNLINK k1 k2 ...` lines of n keys each.
# Printed as it goes: appending to a string grows slower with its length in mawk (a batch
# of 100,000 took a minute), printing each key does not.
BATCH_AWK = 'NR % n == 1 || n == 1 {printf "UNLINK"} {printf " %s", $0} NR % n == 0 {print ""} END {if (NR % n) print ""}'
# Adds up UNLINK's replies; anything else is an error reply: print it and fail.
SUM_AWK = '/^\\(integer\\) [0-9]+$/ {n += $2; next} NF {print > "/dev/stderr"; bad = 1} END {print n + 0; exit bad}'


def volatile_args(volatile) -> dict:
    """The fingerprint's ``volatile`` argument, only when there is one (fact cache keys stay
    short): key patterns (``*`` and ``?`` wildcards only), bare in database 0, ``[db, pattern]``
    in another."""
    try:
        patterns = cache_patterns(volatile) if isinstance(volatile, (list, tuple)) else None
    except ValueError:
        patterns = None
    if patterns is None or not all(valid_volatile(pattern) for _, pattern in patterns):
        raise OperationError(f"volatile must be a list of key patterns (* and ? wildcards only), got {volatile!r}")
    return {"volatile": [pattern if not db else [db, pattern] for db, pattern in patterns]} if patterns else {}


def databases_args(databases) -> dict:
    """The fingerprint's ``databases`` argument, only when it names some."""
    return {} if databases is None else {"databases": list(databases)}


def check_part(directory, part):
    """Where a dump goes: an absolute snapshot directory, a plain part name."""
    checked_path(directory, "directory")
    if not valid_part_name(part):
        raise OperationError(f"part must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}, got {part!r}")


def check_common(stack, service, password_key) -> Stack:
    if not isinstance(service, str) or not service:
        raise OperationError(f"service must name a compose service, got {service!r}")
    if password_key is not None and not (isinstance(password_key, str) and KEY_PATTERN.match(password_key)):
        raise OperationError(f"password_key must name a key of the env file or be None, got {password_key!r}")
    return Stack.of(stack)


@operation()
def caches_flushed(stack: Stack, patterns: list[str], service: str = "redis",
                   password_key: str | None = PASSWORD_KEY, batch: int = 500, db: int = 0):
    """
    Remove every key matching the patterns: ``SCAN`` them and ``UNLINK`` them in batches.

    + stack: the stack (see the module docstring)
    + patterns: ``SCAN MATCH`` patterns (``*``, ``?``, ``[...]``), e.g. ``user:session:*``
    + service: the Redis service
    + password_key: the env-file key of its password
    + batch: keys per ``UNLINK`` command
    + db: the logical database the patterns are in (Layra keeps sessions in one, task
      state in another)

    ``DEL user:session:*`` deletes nothing (``DEL`` takes key names, not patterns) and
    ``KEYS`` blocks the server: the keys are listed with ``SCAN`` and removed with
    ``UNLINK`` (large values are freed in the background, small ones at once), ``batch``
    keys per command: one round trip per batch, never one per key. Keys written while the scan
    runs may survive: flush with writes stopped (maintenance on). Nothing happens when no
    key matches; each pattern's command prints how many keys it removed.

    **Example:**

    .. code:: python

        redis.caches_flushed(
            name="Flush Layra's task caches",
            stack=Stack("/srv/layra"),
            patterns=["kb:cache:*", "embedding:*"],
            db=2,
        )
    """
    stack = check_common(stack, service, password_key)
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)) or not patterns:
        raise OperationError(f"patterns must be a non-empty list of key patterns, got {patterns!r}")
    bad = [p for p in patterns if not valid_pattern(p)]
    if bad:
        raise OperationError(f"key patterns must be non-empty strings on one line, got {bad[0]!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100_000:
        raise OperationError(f"batch must be a whole number of keys from 1 to 100000, got {batch!r}")

    try:
        checked_db(db)
    except ValueError as error:
        raise OperationError(str(error)) from None
    counts = host.get_fact(RedisKeyCounts, stack=stack, patterns=list(patterns),
                           service=service, password_key=password_key, db=db)
    matching = [p for p in dict.fromkeys(patterns) if counts.get(p, 0) > 0]
    if not matching:
        host.noop(f"no key matches {', '.join(dict.fromkeys(patterns))}")
        return

    logger.info(f"{host.print_prefix}redis {service}: "
                + "; ".join(f"{counts[p]:,} key{'s' * (counts[p] != 1)} match {p}" for p in matching)
                + " (unlinking)")
    for pattern in matching:
        yield StringCommand(
            "set -o pipefail;", holding_work(stack.dir, f"redis {service}: flush {pattern}"),
            *redis_auth(stack, password_key),
            "n=$(", redis_exec(stack, service, password_key, "--scan", "--pattern", QuoteString(pattern), db=db),
            f"| awk -v n={batch}", QuoteString(BATCH_AWK), "|",
            redis_exec(stack, service, password_key, db=db), "| awk", QuoteString(SUM_AWK), ")",
            "|| { echo", QuoteString(f"flushing {pattern} failed"), ">&2; exit 1; };",
            "printf 'unlinked %s keys matching %s\\n' \"$n\"", QuoteString(pattern),
            _shell_executable="bash",
        )


@operation(is_idempotent=False)
def dumped(stack: Stack, directory: str, part: str, service: str = "redis",
           password_key: str | None = PASSWORD_KEY, volatile: list[str] = (), databases: list[int] | None = None):
    """
    Dump the server's data set into a snapshot: ``<directory>/<part>.rdb.gz`` and its
    part descriptor ``<directory>/<part>.json``.

    + stack: the stack (see the module docstring)
    + directory: the snapshot directory on the host (it must exist; 0700)
    + part: the part's name, e.g. ``redis`` (letters, digits, ``._-``)
    + service: the Redis service
    + password_key: the env-file key of its password
    + volatile: key patterns that are not state (sessions, caches): in the RDB, but left
      out of the fingerprint (``RedisFingerprint``)
    + databases: the logical databases the fingerprint reads (None: every one with keys)

    The RDB streams from the live server (``redis-cli --rdb -``, replication's own
    snapshot, no file left in the server's volume) through gzip into a temporary name,
    renamed only when every stage of the pipeline succeeded. Files are 0600. The
    descriptor holds the fingerprint taken just before the dump (take it with writes
    stopped for it to describe the dump exactly) and the server's version:

    .. code:: python

        {"component": "redis", "engine": "redis", "service": "redis", "file": "redis.rdb.gz",
         "fingerprint": {"dbsize": 42, "keys_sha256": "...", "sample": 42, "sample_sha256": "..."},
         "tool_versions": {"redis": "7.0.15"}}

    A master with diskless replication (the default) waits ``repl-diskless-sync-delay``
    (5 s) before it streams; ``redis-cli`` 7.0 leaves the 40-byte end marker of such a
    stream after the RDB's checksum, which Redis ignores when it loads the file.

    **Example:**

    .. code:: python

        redis.dumped(
            name="Dump Redis (RDB)",
            stack=Stack("/srv/layra"),
            directory="/var/backups/layra/20261121T130000Z-pre-migration.partial",
            part="redis",
        )
    """
    stack = check_common(stack, service, password_key)
    check_part(directory, part)

    fingerprint = host.get_fact(RedisFingerprint, stack=stack, service=service, password_key=password_key,
                                **volatile_args(volatile), **databases_args(databases))
    persistence = host.get_fact(RedisPersistence, stack=stack, service=service, password_key=password_key)
    rdb_file = posixpath.join(directory, f"{part}.rdb.gz")
    tmp = posixpath.join(directory, f".{part}.rdb.gz.tmp")
    descriptor = {
        "component": part,
        "engine": "redis",
        "service": service,
        "file": f"{part}.rdb.gz",
        "fingerprint": dict(fingerprint),
        "tool_versions": {"redis": persistence["version"]},
    }

    yield StringCommand(
        "set -o pipefail; umask 077;", *redis_auth(stack, password_key),
        StringCommand("tmp=", QuoteString(tmp), _separator=""), ";",
        "{", redis_exec(stack, service, password_key, "--rdb", "-"),
        '| gzip -c >"$tmp" && mv -f "$tmp"', QuoteString(rdb_file), "; }",
        '|| { rm -f "$tmp"; echo', QuoteString(f"redis dump of {service} failed: {rdb_file} was not written"),
        ">&2; exit 1; }",
        _shell_executable="bash",
    )
    yield from descriptor_written(directory, part, descriptor, rdb_file)


def checked_fingerprint(fingerprint) -> dict:
    if databases_of(fingerprint) is None or not all(
            field in found for found in (fingerprint.get("databases") or {"0": fingerprint}).values()
            for field in FINGERPRINT_FIELDS):
        raise OperationError(f"fingerprint must be a RedisFingerprint (per database: {', '.join(FINGERPRINT_FIELDS)}), "
                             f"got {fingerprint!r}")
    return fingerprint


def checked_file(rdb_file, sha256) -> StringCommand:
    checked_path(rdb_file, "rdb_file")
    try:
        return checksum_checked(rdb_file, sha256, "redis")
    except ValueError as error:
        raise OperationError(str(error)) from None


def data_layout(stack: Stack, service: str, password_key: str | None) -> dict:
    """Where the live server keeps its data (``facts.redis.layout_of``); it must be running."""
    persistence = host.get_fact(RedisPersistence, stack=stack, service=service, password_key=password_key)
    if not persistence["dir"].startswith("/"):
        raise OperationError(f"redis reports no absolute data directory (dir {persistence['dir']!r})")
    return {**layout_of(persistence), "version": persistence["version"]}


def copy_of(stack: Stack, service: str, layout: dict, copy: str, fingerprint: bool = False,
            **arguments) -> dict | None:
    """The staged or displaced copy beside the data (``RedisCopy``), with its fingerprint
    where asked (``arguments``: its ``volatile`` and ``databases``)."""
    return host.get_fact(RedisCopy, stack=stack, layout=layout_of(layout), copy=copy, service=service,
                         fingerprint=fingerprint, **arguments)


@operation()
def staged(stack: Stack, rdb_file: str, sha256: str, service: str = "redis",
           password_key: str | None = PASSWORD_KEY):
    """
    Load a snapshot's RDB beside the live data while the service serves: the staged copy
    ``<dir>/.layra-staged`` that ``restored`` swaps in at a restart, inside the maintenance
    window. Nothing happens when a copy of this file is staged already.

    + stack, service, password_key: the server (see the module docstring)
    + rdb_file: the snapshot's ``<part>.rdb.gz`` on the host
    + sha256: the file's checksum from the snapshot manifest

    The checksum is checked first. A throwaway container of the service, with its volumes,
    loads the file in the service's own ``redis-server`` beside the live data (a file that
    does not load changes nothing), saves it back as ``<dbfilename>`` and, where the server
    runs with ``appendonly yes``, writes its AOF too (Redis 7 would otherwise start empty),
    and marks the copy with the file's checksum last. Its cost grows with the data, so it
    runs before the window; ``staged_checked`` then checks it against the fingerprint.

    **Example:**

    .. code:: python

        redis.staged(
            name="Stage Redis's RDB",
            stack=Stack("/srv/layra"),
            rdb_file="/var/backups/layra/20261121T130000Z-pre-migration/redis.rdb.gz",
            sha256="5f1c...",
        )
    """
    stack = check_common(stack, service, password_key)
    check_file = checked_file(rdb_file, sha256)
    layout = data_layout(stack, service, password_key)
    found = copy_of(stack, service, layout, "staged")
    if found and found["snapshot"] == sha256:
        host.noop(f"redis {service}: the snapshot's RDB is staged already")
        return
    yield check_file
    yield StringCommand(
        "set -o pipefail;", holding_work(stack.dir, f"redis {service}: stage the RDB"),
        "gzip -dc", QuoteString(rdb_file), "|", copies_command(stack, service, layout, "stage", sha256),
        _shell_executable="bash",
    )


@operation()
def staged_checked(stack: Stack, sha256: str, fingerprint: dict, service: str = "redis",
                   password_key: str | None = PASSWORD_KEY, volatile: list[str] = (),
                   databases: list[int] | None = None):
    """
    Check the staged copy (``staged``) against the snapshot's fingerprint, before the
    window: the swap then trusts it.

    + stack, service, password_key: the server (see the module docstring)
    + sha256: the checksum of the snapshot file the copy must be staged from
    + fingerprint: the part's fingerprint from the snapshot (``RedisFingerprint``'s shape)
    + volatile, databases: as the snapshot's fingerprint was taken

    The copy is read in a throwaway container that serves it on a unix socket (never the
    live server). Fails, naming what the copy holds, when it is missing or differs; the
    live data is not touched either way.

    **Example:**

    .. code:: python

        redis.staged_checked(
            name="Check the staged RDB",
            stack=Stack("/srv/layra"),
            sha256="5f1c...",
            fingerprint={"dbsize": 42, "databases": {"0": {"dbsize": 42, "keys_sha256": "..."}}},
        )
    """
    stack = check_common(stack, service, password_key)
    checked_fingerprint(fingerprint)
    layout = data_layout(stack, service, password_key)
    found = copy_of(stack, service, layout, "staged", True, **volatile_args(volatile), **databases_args(databases))
    if not found or found["snapshot"] != sha256:
        yield failing(f"redis {service}: no copy of the snapshot is staged")
    elif not same_data(found["fingerprint"], fingerprint):
        yield failing(f"redis {service}: the staged copy holds {key_text(found['fingerprint'])}, the snapshot "
                      f"{key_text(fingerprint)}: it is not swapped in")
    else:
        host.noop(f"redis {service}: the staged copy matches the snapshot ({key_text(fingerprint)})")


def key_text(fingerprint: dict | None) -> str:
    """``42 keys in 2 databases``."""
    databases = databases_of(fingerprint) or {}
    total = sum(found["dbsize"] or 0 for found in databases.values())
    return f"{total:,} key{'s' * (total != 1)} in {len(databases)} database{'s' * (len(databases) != 1)}"


@operation()
def restored(stack: Stack, rdb_file: str, sha256: str, fingerprint: dict, service: str = "redis",
             password_key: str | None = PASSWORD_KEY, timeout: int = 120, volatile: list[str] = (),
             databases: list[int] | None = None, staged: bool = False):
    """
    Put the server's data back to a snapshot's RDB at a restart, the data it replaces
    moved aside (``<dir>/.layra-displaced``, the rollback's undo until a safety snapshot
    keeps it: ``displaced_dumped``).

    + stack, service, password_key: the server (see the module docstring)
    + rdb_file: the snapshot's ``<part>.rdb.gz`` on the host
    + sha256: the file's checksum from the snapshot manifest
    + fingerprint: the part's fingerprint from the snapshot (``RedisFingerprint``'s shape)
    + timeout: seconds to wait for the service to answer ``PING`` once started again
    + volatile, databases: as the snapshot's fingerprint was taken
    + staged: the copy was staged and checked before the window (``staged``,
      ``staged_checked``): only the swap, the live data not read. Otherwise the live
      fingerprint is read first (nothing happens when it equals the snapshot's) and the
      file is checked and staged here.

    The service stops (Redis saves on the way down when it persists: the displaced copy
    holds every write), a throwaway container of it moves the live files aside and the
    staged ones in, and it starts again and must answer ``PING``. Where the staged copy is
    missing, or the server does not come back on it, the previous data is (put) back in
    place and the operation fails. The data directory must be on a volume or bind mount,
    and the service must be running when the operation starts.

    Keys with a TTL are part of the fingerprint while they live: restoring a snapshot
    after some of its keys expired loads fewer keys, so the live fingerprint will not
    equal the snapshot's (the verify step reports it; a second run restores again).

    **Example:**

    .. code:: python

        redis.restored(
            name="Swap in Redis's staged RDB",
            stack=Stack("/srv/layra"),
            rdb_file="/var/backups/layra/20261121T130000Z-pre-migration/redis.rdb.gz",
            sha256="5f1c...",
            fingerprint={"dbsize": 42, "keys_sha256": "...", "sample": 42, "sample_sha256": "..."},
            staged=True,
        )
    """
    stack = check_common(stack, service, password_key)
    check_file = checked_file(rdb_file, sha256)
    checked_fingerprint(fingerprint)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise OperationError(f"timeout must be a whole number of seconds, got {timeout!r}")

    stage = []
    if not staged:
        live = host.get_fact(RedisFingerprint, stack=stack, service=service, password_key=password_key,
                             **volatile_args(volatile), **databases_args(databases))
        if same_data(live, fingerprint):
            host.noop(f"redis already matches the snapshot (dbsize {live.get('dbsize')})")
            return
        logger.info(f"{host.print_prefix}redis {service}: dbsize {live.get('dbsize')} -> {fingerprint.get('dbsize')} "
                    f"(staging {rdb_file} in the window: the plan found it at the snapshot)")
    layout = data_layout(stack, service, password_key)
    if not staged:
        yield check_file
        stage = ["gzip -dc", QuoteString(rdb_file), "|", copies_command(stack, service, layout, "stage", sha256),
                 "|| fail", QuoteString("the snapshot was not staged; nothing was changed"), ";"]

    stop = compose_command(stack, "stop", "--timeout", str(STOP_TIMEOUT), QuoteString(service))
    start = compose_command(stack, "start", QuoteString(service))
    ping = redis_exec(stack, service, password_key, "ping")
    yield StringCommand(
        "set -o pipefail;", holding_work(stack.dir, f"redis {service}: swap in the RDB"),
        *redis_auth(stack, password_key),
        'fail() { echo "redis restore: $*" >&2; exit 1; };', library(stack),
        # ready as everywhere (wait_ready.sh: an exited or unhealthy container fails at
        # once), and then answering PING with its data loaded
        f"ready() {{ wait_ready {timeout}", QuoteString(service), '|| return 1; i=0; until [ "$(', ping,
        '2>/dev/null)" = PONG ]; do i=$((i + 1));', f'[ "$i" -lt {timeout} ] || return 1; sleep 1; done; }};',
        *stage,
        stop, "|| fail", QuoteString(f"could not stop {service}; nothing was changed"), ";",
        copies_command(stack, service, layout, "swap", sha256),
        "|| {", start, "; ready; fail",
        QuoteString(f"the staged copy was not put in place; {service} runs on its previous data"), "; };",
        "{", start, "&& ready; } || {", stop, ";", copies_command(stack, service, layout, "revert"), ";", start,
        "; ready; fail",
        QuoteString(f"{service} did not answer PING on the restored data within {timeout}s; "
                    "its previous data is back in place"), "; }",
        _shell_executable="bash",
    )


@operation(is_idempotent=False)
def displaced_dumped(stack: Stack, directory: str, part: str, service: str = "redis",
                     password_key: str | None = PASSWORD_KEY, volatile: list[str] = (),
                     databases: list[int] | None = None):
    """
    Write the data a swap displaced (``<dir>/.layra-displaced``) into a snapshot, as
    ``dumped`` writes the live data: ``<directory>/<part>.rdb.gz``, and its fingerprint's
    lines for ``displaced_described``, which writes the descriptor from them.

    + stack, service, password_key: the server (see the module docstring)
    + directory: the snapshot directory on the host (it must exist; 0700)
    + part: the part's name, e.g. ``redis``
    + volatile, databases: as for the fingerprint of the live data

    A throwaway container of the service serves the displaced copy on a unix socket (its
    AOF, where it has one, from a copy of it: the displaced files are never written), once:
    its RDB streams through gzip into the snapshot and its fingerprint is read from the
    same server (both under temporary names, renamed once whole). Nothing happens where
    nothing is displaced. The live server is not touched: this runs after the window.

    **Example:**

    .. code:: python

        redis.displaced_dumped(
            name="Keep the displaced Redis",
            stack=Stack("/srv/layra"),
            directory="/var/backups/layra/20261121T140000Z-safety-before-rollback.partial",
            part="redis",
        )
    """
    stack = check_common(stack, service, password_key)
    check_part(directory, part)
    volatile_args(volatile)  # checked as everywhere
    layout = data_layout(stack, service, password_key)
    if not copy_of(stack, service, layout, "displaced"):
        host.noop(f"redis {service}: no displaced copy to keep")
        return
    rdb_file = posixpath.join(directory, f"{part}.rdb.gz")
    lines_file = fingerprint_lines_file(directory, part)
    served = StringCommand('docker exec -i "$cid" redis-cli -s', COPY_SOCKET)
    yield StringCommand(
        "set -o pipefail; umask 077;", assign(tmp=posixpath.join(directory, f".{part}.rdb.gz.tmp"),
                                              lines_tmp=f"{lines_file}.tmp"),
        copy_served(stack, service, layout, "displaced",
                    absent=StringCommand("echo", QuoteString(f"the displaced copy of {service} is gone"), ">&2; exit 1")),
        '{ docker exec "$cid" redis-cli -s', COPY_SOCKET, '--rdb - | gzip -c >"$tmp" &&',
        "(", fingerprint_command(served, volatile, databases), ') >"$lines_tmp" &&',
        'mv -f "$tmp"', QuoteString(rdb_file), '&& mv -f "$lines_tmp"', QuoteString(lines_file),
        "; } || { rm -f \"$tmp\" \"$lines_tmp\"; echo",
        QuoteString(f"the displaced copy of {service} was not written to {rdb_file}"), ">&2; exit 1; }",
        _shell_executable="bash",
    )


@operation()
def displaced_described(stack: Stack, directory: str, part: str, service: str = "redis",
                        password_key: str | None = PASSWORD_KEY):
    """
    Write the descriptor of a displaced copy ``displaced_dumped`` wrote into a snapshot
    (``<directory>/<part>.json``, ``displaced: true``), from the fingerprint's lines it left
    beside the RDB, which are removed then.

    + stack, service, password_key: the server (see the module docstring)
    + directory: the snapshot directory on the host
    + part: the part's name, e.g. ``redis``

    Nothing happens where there are no such lines (described already, or nothing was
    displaced).

    **Example:**

    .. code:: python

        redis.displaced_described(
            name="Describe the displaced Redis",
            stack=Stack("/srv/layra"),
            directory="/var/backups/layra/20261121T140000Z-safety-before-rollback.partial",
            part="redis",
        )
    """
    stack = check_common(stack, service, password_key)
    check_part(directory, part)
    lines_file = fingerprint_lines_file(directory, part)
    fingerprint = host.get_fact(RedisFingerprintLines, path=lines_file)
    if fingerprint is None:
        host.noop(f"redis {service}: no displaced copy's fingerprint to describe in {directory}")
        return
    layout = data_layout(stack, service, password_key)
    rdb_file = posixpath.join(directory, f"{part}.rdb.gz")
    descriptor = {"component": part, "engine": "redis", "service": service, "file": f"{part}.rdb.gz",
                  "fingerprint": fingerprint, "tool_versions": {"redis": layout["version"]}, "displaced": True}
    yield from descriptor_written(directory, part, descriptor, rdb_file)
    yield StringCommand("rm -f", QuoteString(lines_file))


@operation()
def aside_dropped(stack: Stack, service: str = "redis", password_key: str | None = PASSWORD_KEY):
    """
    Remove the data a swap displaced (``<dir>/.layra-displaced``), once a snapshot holds it.

    + stack, service, password_key: the server (see the module docstring)

    **Example:**

    .. code:: python

        redis.aside_dropped(name="Drop the displaced Redis", stack=Stack("/srv/layra"))
    """
    stack = check_common(stack, service, password_key)
    layout = data_layout(stack, service, password_key)
    if not copy_of(stack, service, layout, "displaced"):
        host.noop(f"redis {service}: no displaced copy")
        return
    yield StringCommand(holding_work(stack.dir, f"redis {service}: drop the displaced copy"),
                        copies_command(stack, service, layout, "drop"))
