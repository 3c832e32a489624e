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
    FINGERPRINT_FIELDS,
    PASSWORD_KEY,
    RedisFingerprint,
    RedisKeyCounts,
    RedisPersistence,
    cache_patterns,
    checked_db,
    databases_of,
    redis_auth,
    redis_exec,
    same_data,
    valid_pattern,
    valid_volatile,
)
from facts.secrets import KEY_PATTERN
from facts.shell import script
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
           password_key: str | None = PASSWORD_KEY, volatile: list[str] = ()):
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
    checked_path(directory, "directory")
    if not valid_part_name(part):
        raise OperationError(f"part must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}, got {part!r}")

    fingerprint = host.get_fact(RedisFingerprint, stack=stack, service=service, password_key=password_key,
                                **volatile_args(volatile))
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


@operation()
def restored(stack: Stack, rdb_file: str, sha256: str, fingerprint: dict, service: str = "redis",
             password_key: str | None = PASSWORD_KEY, timeout: int = 120, volatile: list[str] = ()):
    """
    Put the server's data back to a snapshot's RDB: nothing happens when its fingerprint
    already equals the snapshot's.

    + stack: the stack (see the module docstring)
    + rdb_file: the snapshot's ``<part>.rdb.gz`` on the host
    + sha256: the file's checksum from the snapshot manifest
    + fingerprint: the part's fingerprint from the snapshot (``RedisFingerprint``'s shape)
    + service: the Redis service
    + password_key: the env-file key of its password
    + timeout: seconds to wait for the service to answer ``PING`` once started again
    + volatile: key patterns left out of the fingerprint, as when the snapshot was dumped

    The file's checksum is checked first: a file that does not match is refused before
    Redis is touched. Then the service stops (Redis saves on the way down when it
    persists) and a throwaway container of the same service, with its volumes, loads the
    snapshot in the service's own ``redis-server`` beside the live data, writes it back as
    ``<dir>/<dbfilename>`` (and as the AOF when the server runs with ``appendonly yes``:
    Redis 7 would otherwise start empty), and swaps it in, keeping the data it replaces as
    ``<dbfilename>.pre-restore`` (and ``<appenddirname>.pre-restore``) in the volume. The
    service starts again and must answer ``PING``. A snapshot that does not load, or a
    server that does not come back on it, leaves (or puts) the previous data in place,
    and the operation fails. The data directory must be on a volume or bind mount, and
    the service must be running when the operation starts (its fingerprint is read).

    Keys with a TTL are part of the fingerprint while they live: restoring a snapshot
    after some of its keys expired loads fewer keys, so the live fingerprint will not
    equal the snapshot's (the verify step reports it; a second run restores again).

    **Example:**

    .. code:: python

        redis.restored(
            name="Restore Redis from its RDB",
            stack=Stack("/srv/layra"),
            rdb_file="/var/backups/layra/20261121T130000Z-pre-migration/redis.rdb.gz",
            sha256="5f1c...",
            fingerprint={"dbsize": 42, "keys_sha256": "...", "sample": 42, "sample_sha256": "..."},
        )
    """
    stack = check_common(stack, service, password_key)
    checked_path(rdb_file, "rdb_file")
    try:
        check_file = checksum_checked(rdb_file, sha256, "redis")
    except ValueError as error:
        raise OperationError(str(error)) from None
    if databases_of(fingerprint) is None or not all(
            field in found for found in (fingerprint.get("databases") or {"0": fingerprint}).values()
            for field in FINGERPRINT_FIELDS):
        raise OperationError(f"fingerprint must be a RedisFingerprint (per database: {', '.join(FINGERPRINT_FIELDS)}), "
                             f"got {fingerprint!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise OperationError(f"timeout must be a whole number of seconds, got {timeout!r}")

    live = host.get_fact(RedisFingerprint, stack=stack, service=service, password_key=password_key,
                         **volatile_args(volatile))
    if same_data(live, fingerprint):
        host.noop(f"redis already matches the snapshot (dbsize {live.get('dbsize')})")
        return

    persistence = host.get_fact(RedisPersistence, stack=stack, service=service, password_key=password_key)
    if not persistence["dir"].startswith("/"):
        raise OperationError(f"redis reports no absolute data directory (dir {persistence['dir']!r})")
    logger.info(f"{host.print_prefix}redis {service}: dbsize {live.get('dbsize')} -> {fingerprint.get('dbsize')} "
                f"(restoring {rdb_file}" + (", AOF on)" if persistence["appendonly"] else ")"))

    yield check_file

    # scripts/redis_swap.sh, in a throwaway container of the service: load the RDB in a
    # staging directory and swap it in (swap), or put the previous data back (revert).
    def swap(mode: str) -> StringCommand:
        return StringCommand(
            compose_command(stack, "run", "--rm", "--no-deps", "-T", "--user", "0", "--entrypoint", "sh",
                            QuoteString(service)),
            "-c", QuoteString(script("redis_swap", "operations")), "sh", mode,
            QuoteString(persistence["dir"]), QuoteString(persistence["dbfilename"]),
            "yes" if persistence["appendonly"] else "no",
            QuoteString(persistence["appenddirname"]), QuoteString(persistence["appendfilename"]),
        )

    stop = compose_command(stack, "stop", "--timeout", str(STOP_TIMEOUT), QuoteString(service))
    start = compose_command(stack, "start", QuoteString(service))
    ping = redis_exec(stack, service, password_key, "ping")
    yield StringCommand(
        "set -o pipefail;", holding_work(stack.dir, f"redis {service}: restore the RDB"),
        *redis_auth(stack, password_key),
        'fail() { echo "redis restore: $*" >&2; exit 1; };', library(stack),
        # ready as everywhere (wait_ready.sh: an exited or unhealthy container fails at
        # once), and then answering PING with its data loaded
        f"ready() {{ wait_ready {timeout}", QuoteString(service), '|| return 1; i=0; until [ "$(', ping,
        '2>/dev/null)" = PONG ]; do i=$((i + 1));', f'[ "$i" -lt {timeout} ] || return 1; sleep 1; done; }};',
        stop, "|| fail", QuoteString(f"could not stop {service}; nothing was changed"), ";",
        "gzip -dc", QuoteString(rdb_file), "|", swap("swap"),
        "|| {", start, "; ready; fail",
        QuoteString(f"the snapshot was not put in place; {service} runs on its previous data"), "; };",
        "{", start, "&& ready; } || {", stop, ";", swap("revert"), ";", start, "; ready; fail",
        QuoteString(f"{service} did not answer PING on the restored data within {timeout}s; "
                    "its previous data is back in place"), "; }",
        _shell_executable="bash",
    )
