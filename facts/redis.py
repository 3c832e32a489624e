"""
Redis engine facts, and the `redis-cli` command every Redis fact and operation runs:
inside the service's container, authenticated through ``REDISCLI_AUTH`` read on the host
from the stack's env file (never ``-a PASSWORD`` on a command line).

``redis-cli --no-raw`` prints every key and value in Redis's quoted form (``"a b\\n"``),
one per line whatever bytes it holds; that same form is what ``redis-cli`` parses back
when it reads commands from its standard input. So key names travel through pipes, line
by line, never through a command line (session keys are secrets too), and facts never
see a raw binary value.

Facts that pipe one program into another run under ``bash`` with ``pipefail``, so a
failing ``redis-cli`` fails the fact instead of feeding an error message to ``sort``.
"""

from __future__ import annotations

import hashlib
import re

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shell import (
    WholeOutputFact,
    assign,
    parse_probe,
    probe,
    script,
)

# The env file key of the password, where a component names none: Layra's own.
PASSWORD_KEY = "REDIS_PASSWORD"

# At most how many keys RedisFingerprint hashes the values of: every n-th key of the
# sorted key list, spread over the whole key space (~0.1 s per 1000 keys).
SAMPLE_SIZE = 1000

# Reads one key (KEYS[1]) on the server and returns "<type> <sha1 of its value>": values
# never leave Redis, so binary data is no trouble. Sets and hashes are sorted (their order
# is not kept by an RDB round trip); big collections (> 1000 members) count as their size.
# Written on one line, without double quotes or backslashes, for redis-cli's line parser.
SAMPLE_SCRIPT = (
    "local k = KEYS[1] local t = redis.call('TYPE', k)['ok'] local v = {} "
    "if t == 'string' then v = {redis.call('GET', k)} "
    "elseif t == 'list' then v = redis.call('LRANGE', k, 0, 999) "
    "elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, 999, 'WITHSCORES') "
    "elseif t == 'set' then local n = redis.call('SCARD', k) "
    "if n <= 1000 then v = redis.call('SMEMBERS', k) table.sort(v) else v = {'#' .. n} end "
    "elseif t == 'hash' then local n = redis.call('HLEN', k) "
    "if n <= 1000 then local h = redis.call('HGETALL', k) "
    "for i = 1, #h, 2 do v[#v + 1] = h[i] .. '=' .. h[i + 1] end table.sort(v) "
    "else v = {'#' .. n} end "
    "elseif t == 'stream' then v = {'#' .. redis.call('XLEN', k)} end "
    "return t .. ' ' .. redis.sha1hex(table.concat(v, string.char(0)))"
)

# The same for every key, its whole value: every element of a list, a set, a hash, a sorted
# set (with its scores) and every entry of a stream (id and fields), each prefixed with its
# length (no two values hash alike by where their elements split); a module's type (JSON,
# Bloom, time series) by its DUMP. A key is read in one call, atomically: a collection of
# millions of members holds the server that long (past busy-reply-threshold, 5 s, other
# clients are answered BUSY meanwhile).
VALUE_SCRIPT = (
    "local k = KEYS[1] local t = redis.call('TYPE', k)['ok'] local v = {} "
    "local function e(s) return #s .. ':' .. s end "
    "local function all(list) for i = 1, #list do v[#v + 1] = e(list[i]) end end "
    "if t == 'string' then all({redis.call('GET', k)}) "
    "elseif t == 'list' then all(redis.call('LRANGE', k, 0, -1)) "
    "elseif t == 'zset' then all(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')) "
    "elseif t == 'set' then all(redis.call('SMEMBERS', k)) table.sort(v) "
    "elseif t == 'hash' then local h = redis.call('HGETALL', k) "
    "for i = 1, #h, 2 do v[#v + 1] = e(h[i]) .. e(h[i + 1]) end table.sort(v) "
    "elseif t == 'stream' then local x = redis.call('XRANGE', k, '-', '+') "
    "for i = 1, #x do v[#v + 1] = e(x[i][1]) .. #x[i][2] .. ';' all(x[i][2]) end "
    "elseif t ~= 'none' then all({redis.call('DUMP', k)}) end "
    "return t .. ' ' .. redis.sha1hex(table.concat(v))"
)

# Settings RedisPersistence reads with CONFIG GET (one at a time: Redis 6 takes one).
PERSISTENCE_SETTINGS = ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename")

ARRAY_ITEM = re.compile(r'^\d+\) (".*")$')
INFO_LINE = re.compile(r"^([a-z0-9_]+):(.*)$")
QUOTED_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def redis_auth(stack: Stack, password_key: str | None) -> list:
    """Shell that exports ``REDISCLI_AUTH`` from the env file (nothing without a key)."""
    return [export_from_env_file(stack.env_path, password_key, "REDISCLI_AUTH")] if password_key else []


def redis_exec(stack: Stack, service: str, password_key: str | None, *args, db: int = 0) -> StringCommand:
    """`redis-cli` in the service's container, with ``REDISCLI_AUTH`` already exported, on
    logical database ``db``.

    Without ``args`` it reads commands from its standard input, one per line.
    """
    env = ["-e", "REDISCLI_AUTH"] if password_key else []
    database = ["-n", str(checked_db(db))] if db else []
    return compose_command(stack, "exec", "-T", *env, QuoteString(service), "redis-cli", "--no-raw", *database, *args)


# Redis has 16 logical databases unless configured with more.
MAX_DATABASES = 1024


def checked_db(db) -> int:
    if isinstance(db, bool) or not isinstance(db, int) or not 0 <= db < MAX_DATABASES:
        raise ValueError(f"a Redis database is a number from 0 to {MAX_DATABASES - 1}, got {db!r}")
    return db


def cache_patterns(patterns) -> list[tuple[int, str]]:
    """``[(db, pattern)]`` from host data's ``flush_patterns``: a bare pattern is in database
    0, ``{db: 1, pattern: "user:session:*"}`` in the database it names. ValueError otherwise."""
    found = []
    for entry in patterns:
        if isinstance(entry, dict) and set(entry) == {"db", "pattern"}:
            found.append((checked_db(entry["db"]), entry["pattern"]))
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            found.append((checked_db(entry[0]), entry[1]))
        else:
            found.append((0, entry))
    if not all(valid_pattern(pattern) for _, pattern in found):
        raise ValueError("key patterns must be non-empty strings on one line")
    return found


def pattern_name(db: int, pattern: str) -> str:
    """How a plan names a pattern: ``user:session:*`` in database 0, ``db1 user:session:*``."""
    return f"db{db} {pattern}" if db else pattern


def redis_cli(stack: Stack, service: str, password_key: str | None, *args) -> StringCommand:
    """One `redis-cli` call, credentials included."""
    return StringCommand(*redis_auth(stack, password_key), redis_exec(stack, service, password_key, *args))


def unquote(value: str) -> str:
    """The text of a value as ``redis-cli --no-raw`` quotes it (``"a\\"b"`` -> ``a"b``)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    body, out, i = value[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == "\\" and body[i + 1:i + 2] == "x" and len(body) >= i + 4:
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif char == "\\" and i + 1 < len(body):
            out += QUOTED_ESCAPES.get(body[i + 1], body[i + 1]).encode()
            i += 2
        else:
            out += char.encode()
            i += 1
    return out.decode("utf-8", "surrogateescape")


def raise_on_errors(lines: list[str], what: str):
    errors = [line.strip() for line in lines if line.strip().startswith("(error)")]
    if errors:
        raise ValueError(f"{what}: {errors[0]}")


def valid_pattern(pattern) -> bool:
    """A key pattern we can hand to ``SCAN MATCH``: a non-empty string on one line."""
    return isinstance(pattern, str) and bool(pattern) and "\n" not in pattern and "\r" not in pattern


class RedisFactBase(WholeOutputFact):
    """Facts that ask the Redis server of a stack's service."""

    abstract = True

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"


class RedisPipeFactBase(RedisFactBase):
    """Redis facts built from pipelines: run under bash, with ``pipefail``."""

    abstract = True
    shell_executable = "bash"


class RedisPing(RedisFactBase):
    """
    Returns whether the server answers ``PING`` with the stack's credentials.

    .. code:: python

        {"ok": True, "output": "PONG"}
    """

    def command(self, stack: Stack, service: str = "redis",
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        stack = Stack.of(stack)
        return probe(redis_cli(stack, service, password_key, "ping"))

    def process(self, output):
        ok = parse_probe(output)
        return {**ok, "ok": ok["ok"] and "PONG" in ok["output"]}


class RedisKeyCounts(RedisPipeFactBase):
    """
    Returns how many keys of logical database ``db`` match each pattern, counted with
    ``SCAN`` (never ``KEYS``, which blocks the server), each key once.

    .. code:: python

        {"user:session:*": 1234, "kb:cache:*": 0}

    ``patterns`` is a list (or tuple) of ``SCAN MATCH`` patterns; operations pass it as
    a list, so the fact's arguments read ``patterns=['user:session:*', 'kb:cache:*']``
    whichever the caller gave.
    """

    def command(self, stack: Stack, patterns: list[str], service: str = "redis",
                password_key: str | None = PASSWORD_KEY, db: int = 0) -> StringCommand:
        stack = Stack.of(stack)
        if isinstance(patterns, str) or not all(valid_pattern(p) for p in patterns):
            raise ValueError(f"patterns must be a list of one-line key patterns, got {patterns!r}")
        counts = []
        for pattern in patterns:
            counts += [
                "n=$(", redis_exec(stack, service, password_key, "--scan", "--pattern", QuoteString(pattern), db=db),
                "| LC_ALL=C sort -u | wc -l) || exit 1;",
                "printf '%s\\t%s\\n' \"$n\"", QuoteString(pattern), ";",
            ]
        return StringCommand("set -o pipefail;", *redis_auth(stack, password_key), *counts)

    def process(self, output):
        counts = {}
        for line in output:
            count, _, pattern = line.strip("\r").partition("\t")
            if count.strip().isdigit():
                counts[pattern] = int(count)
        return counts


def valid_volatile(pattern) -> bool:
    """A key pattern the fingerprint can leave out: ``*`` and ``?`` wildcards only."""
    return isinstance(pattern, str) and bool(pattern) and not set(pattern) & set('[]\\"\n')


def glob_regex(pattern: str) -> str:
    """``user:session:*`` -> ``^"user:session:.*"$``: POSIX ERE for grep -E, matching keys as
    ``redis-cli --no-raw --scan`` prints them (quoted)."""
    if not valid_volatile(pattern):
        raise ValueError(f"not a key pattern with * and ? wildcards only: {pattern!r}")
    special = set(".^$+(){}|")
    return '^"' + "".join(".*" if c == "*" else "." if c == "?" else "\\" + c if c in special else c
                          for c in pattern) + '"$'


def fingerprint_command(cli: StringCommand, volatile: list = (), databases: list[int] | None = None) -> StringCommand:
    """``scripts/redis_fingerprint.sh`` against the server ``cli`` (a `redis-cli` command,
    credentials exported before it) reaches: the live service, or a copy served beside it."""
    # keys that are not state (sessions, caches) stay out of the fingerprint, per database
    by_db: dict[int, list[str]] = {}
    for db, pattern in cache_patterns(volatile):
        by_db.setdefault(db, []).append(glob_regex(pattern))
    cases = [StringCommand(f"{db}) LC_ALL=C grep -v -E",
                           *[arg for regex in regexes for arg in ("-e", QuoteString(regex))], "|| [ $? = 1 ] ;;")
             for db, regexes in sorted(by_db.items())]
    dbs = "" if databases is None else " ".join(str(checked_db(db)) for db in databases)
    return StringCommand(
        "rcli() {", cli, "--no-raw", '"$@"', "; };",
        'volatile() { case $1 in', *cases, "*) cat ;; esac; };",
        assign(dbs=dbs, sample_size=str(SAMPLE_SIZE), sample_script=SAMPLE_SCRIPT, value_script=VALUE_SCRIPT),
        script("redis_fingerprint"), "\nlayra_redis_fingerprint",
    )


class RedisFingerprint(RedisPipeFactBase):
    """
    Returns what each logical database holds, content-based and exact enough to tell two
    data sets apart, without any key or value leaving the host:

    .. code:: python

        {
            "dbsize": 42,                      # keys in all of them
            "databases": {
                "1": {
                    "dbsize": 40,              # keys, as SCAN sees them (each once)
                    "keys_sha256": "9f2c...",  # sha256 of the sorted key names
                    "sample": 40,              # keys whose values are hashed (every n-th, at most 1000)
                    "sample_sha256": "d1e4...",
                    "values_sha256": "5be0...",  # of every key's whole value
                },
                "2": {...},
            },
        }

    ``databases``: the logical databases to read (None: every one that has keys, from
    ``INFO keyspace``). The key names are listed with ``SCAN`` and sorted and hashed on the
    host; the values are hashed by the server itself (read-only Lua scripts: type plus sha1
    of the value per key), so binary values need no care (``scripts/redis_fingerprint.sh``):
    every key's whole value (``VALUE_SCRIPT``), and apart a sample's (``SAMPLE_SCRIPT``,
    capped collections: what a snapshot taken before every value was hashed is compared by).

    The same data gives the same fingerprint, also after an RDB restore. Keys with a TTL
    count while they live: a snapshot restored after some of its keys expired has fewer.
    Keys matching a ``volatile`` pattern (``*`` and ``?`` wildcards: sessions, caches; a
    bare pattern in database 0, ``[db, pattern]`` in another) are left out: where Redis
    holds state, they are not part of it.
    """

    def command(self, stack: Stack, service: str = "redis", password_key: str | None = PASSWORD_KEY,
                volatile: list = (), databases: list[int] | None = None) -> StringCommand:
        stack = Stack.of(stack)
        env = ["-e", "REDISCLI_AUTH"] if password_key else []
        return StringCommand(
            "set -o pipefail;", *redis_auth(stack, password_key),
            fingerprint_command(compose_command(stack, "exec", "-T", *env, QuoteString(service), "redis-cli"),
                                volatile, databases),
        )

    def process(self, output):
        return fingerprint_of(list(output))


def fingerprint_of(output: list[str]) -> dict:
    """A RedisFingerprint from ``layra_redis_fingerprint``'s lines (ValueError where they are not)."""
    databases, current = {}, None
    lines = [line.strip() for line in output]
    if not lines or lines[0].split(" ")[0] != "dbs":
        raise ValueError(f"redis fingerprint: unexpected output {lines[:3]!r}")
    for line in lines[1:]:
        if line.startswith("db ") and line[3:].isdigit():
            current = databases.setdefault(line[3:], {"keys": None, "sample": [], "values": None})
        elif current is not None and line.startswith("keys "):
            current["keys"] = line.split()[1:]
        elif current is not None and line.startswith("values "):
            current["values"] = line.split()[1:]
        elif current is not None and line:
            current["sample"].append(line)
    named = lines[0].split()[1:]
    if sorted(named) != sorted(databases):
        raise ValueError(f"redis fingerprint: databases {' '.join(named)} named, "
                         f"{' '.join(databases) or 'none'} read")
    fingerprint = {"dbsize": 0, "databases": {}}
    for db, found in databases.items():
        raise_on_errors(found["sample"], f"redis fingerprint of database {db}")
        keys = found["keys"] or []
        if len(keys) != 2 or not keys[0].isdigit():
            raise ValueError(f"redis fingerprint of database {db}: unexpected output {keys!r}")
        if found["values"] is None or len(found["values"]) != 2 or found["values"][0] != keys[0]:
            raise ValueError(f"redis fingerprint of database {db}: {keys[0]} keys listed, their values read: "
                             f"{found['values']!r}")
        fingerprint["databases"][db] = {
            "dbsize": int(keys[0]), "keys_sha256": keys[1], "sample": len(found["sample"]),
            "sample_sha256": hashlib.sha256("".join(f"{line}\n" for line in found["sample"]).encode()).hexdigest(),
            "values_sha256": found["values"][1],
        }
        fingerprint["dbsize"] += int(keys[0])
    return fingerprint


# What a RedisFingerprint holds: the snapshot's descriptor must give each (values_sha256
# only where it was taken since every value is hashed).
FINGERPRINT_FIELDS = ("dbsize", "keys_sha256", "sample", "sample_sha256")
WHOLE_FIELD = "values_sha256"


def databases_of(fingerprint: dict | None) -> dict | None:
    """A fingerprint's databases that hold keys; one taken before fingerprints covered every
    database (flat, database 0's fields) reads as database 0."""
    if not fingerprint:
        return None
    databases = fingerprint.get("databases")
    if databases is None:
        databases = {"0": fingerprint} if "dbsize" in fingerprint else {}
    return {db: {field: found.get(field) for field in (*FINGERPRINT_FIELDS, WHOLE_FIELD) if field in found}
            for db, found in databases.items() if found.get("dbsize")}


def same_data(live: dict | None, snapshot: dict | None) -> bool:
    """Whether the live server holds the snapshot's data: every database with keys, alike
    (every value; a snapshot taken before every value was hashed: its sample)."""
    have, want = databases_of(live), databases_of(snapshot)
    if have is None or want is None or have.keys() != want.keys():
        return False
    for db, wanted in want.items():
        found = dict(have[db])
        if WHOLE_FIELD not in wanted:
            found.pop(WHOLE_FIELD, None)
        if found != wanted:
            return False
    return True


class RedisPersistence(RedisFactBase):
    """
    Returns where and how the server keeps its data, and what it is:

    .. code:: python

        {
            "dir": "/data",                   # inside the container
            "dbfilename": "dump.rdb",
            "appendonly": False,
            "appenddirname": "appendonlydir", # "" before Redis 7 (one AOF file, appendfilename)
            "appendfilename": "appendonly.aof",
            "version": "7.0.15",
            "used_memory": 1048576,           # bytes
        }
    """

    def command(self, stack: Stack, service: str = "redis",
                password_key: str | None = PASSWORD_KEY) -> StringCommand:
        stack = Stack.of(stack)
        commands = [f"CONFIG GET {name}" for name in PERSISTENCE_SETTINGS] + ["INFO server", "INFO memory"]
        return StringCommand(
            *redis_auth(stack, password_key),
            "printf '%s\\n'", *(QuoteString(c) for c in commands), "|",
            redis_exec(stack, service, password_key),
        )

    def process(self, output):
        raise_on_errors(output, "redis persistence")
        items = [unquote(m.group(1)) for m in (ARRAY_ITEM.match(line.strip()) for line in output) if m]
        config = dict(zip(items[0::2], items[1::2]))
        info = dict(m.groups() for m in (INFO_LINE.match(line.strip()) for line in output) if m)
        return {
            "dir": config.get("dir", ""),
            "dbfilename": config.get("dbfilename", "dump.rdb"),
            "appendonly": config.get("appendonly") == "yes",
            "appenddirname": config.get("appenddirname", ""),
            "appendfilename": config.get("appendfilename", "appendonly.aof"),
            "version": info.get("redis_version", ""),
            "used_memory": int(info.get("used_memory", "0") or 0),
        }


# Where RedisPersistence says the data lives: what the copies script takes.
LAYOUT_KEYS = ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename")
# The copies kept beside the data, in the data directory (scripts/redis_copies.sh).
COPIES = {"staged": ".layra-staged", "displaced": ".layra-displaced"}
COPY_SOCKET = "/tmp/layra-copy.sock"  # where a copy is served, inside its throwaway container
# How long a served copy may answer nothing at all, not even LOADING, before it counts as
# failed (scripts/redis_served.sh): its load itself may take as long as the data needs.
COPY_QUIET_SECONDS = 60


def layout_of(persistence: dict) -> dict:
    """The part of a ``RedisPersistence`` that says where the data lives."""
    return {key: persistence[key] for key in LAYOUT_KEYS}


def copies_command(stack: Stack, service: str, layout: dict, mode: str, *args: str,
                   detached: bool = False) -> StringCommand:
    """``scripts/redis_copies.sh <mode>`` as root in a throwaway container of the service (its
    volumes, no dependency started): staging, swapping, serving the copies beside its data.
    ``detached`` prints the container's id instead of waiting for it. The modes that only
    look or remove (``present``, ``drop``) run in the service's own running container: a
    throwaway one costs a second and more."""
    if mode in ("present", "drop"):
        container = compose_command(stack, "exec", "-T", "--user", "0", QuoteString(service), "sh")
    else:
        run = ["-d"] if detached else ["--rm", "-T"]
        container = compose_command(stack, "run", *run, "--no-deps", "--user", "0", "--entrypoint", "sh",
                                    QuoteString(service))
    return StringCommand(
        container,
        "-c", QuoteString(script("redis_copies")), "sh", mode,
        QuoteString(layout["dir"]), QuoteString(layout["dbfilename"]), "yes" if layout["appendonly"] else "no",
        QuoteString(layout["appenddirname"]), QuoteString(layout["appendfilename"]), *map(QuoteString, args),
    )


def copy_served(stack: Stack, service: str, layout: dict, copy: str, absent: str,
                quiet: int = COPY_QUIET_SECONDS) -> StringCommand:
    """Shell that serves the ``copy`` in a throwaway container of the service, its id in
    ``$cid`` (removed when the shell exits), and waits until it answers ``PING`` on
    ``COPY_SOCKET`` (loaded: ``scripts/redis_served.sh``); ``absent`` runs where there is
    no such copy. A copy that does not load, or whose server answers nothing for ``quiet``
    seconds, fails, with the server's last lines."""
    return StringCommand(
        "cid=$(", copies_command(stack, service, layout, "serve", copy, detached=True), ") || exit 1;",
        "trap 'docker rm -f \"$cid\" >/dev/null 2>&1' EXIT;", script("redis_served"), "\n",
        'redis_served "$cid"', COPY_SOCKET, QuoteString(copy), str(int(quiet)),
        "|| case $? in 3)", absent, ";; *) exit 1 ;; esac;",
    )


class RedisCopy(RedisPipeFactBase):
    """
    Returns a copy of the data kept beside a Redis service's data: ``staged`` (the
    snapshot's data, loaded before the maintenance window) or ``displaced`` (what a swap
    moved aside), None where there is none.

    .. code:: python

        {
            "snapshot": "9c5c...",  # sha256 of the snapshot file it was staged from (None: displaced)
            "fingerprint": {...},   # RedisFingerprint's shape (None with fingerprint=False)
        }

    ``layout``: where the data lives (``layout_of(RedisPersistence)``). The fingerprint is
    read from a throwaway container of the service that serves the copy on a unix socket
    (``scripts/redis_copies.sh serve``): never the live server, never writing the copy; the
    container is removed after, also when the copy does not load (the fact fails then).
    ``volatile`` and ``databases`` as for ``RedisFingerprint``.
    """

    def command(self, stack: Stack, layout: dict, copy: str, service: str = "redis", fingerprint: bool = True,
                volatile: list = (), databases: list[int] | None = None) -> StringCommand:
        stack = Stack.of(stack)
        if copy not in COPIES:
            raise ValueError(f"copy must be one of {', '.join(COPIES)}, got {copy!r}")
        if not fingerprint:
            return StringCommand("found=$(", copies_command(stack, service, layout, "present", copy),
                                 ') || exit 1; echo "copy $found"')
        marker = f"{layout['dir']}/{COPIES[copy]}/.snapshot"
        return StringCommand(
            "set -o pipefail;", copy_served(stack, service, layout, copy, absent="echo copy absent; exit 0"),
            'echo copy present "$(docker exec "$cid" cat', QuoteString(marker), '2>/dev/null)";',
            fingerprint_command(StringCommand('docker exec -i "$cid" redis-cli -s', COPY_SOCKET), volatile, databases),
        )

    def process(self, output):
        lines = [line.strip() for line in output]
        head = lines[0].split() if lines else []
        if head[:2] == ["copy", "absent"]:
            return None
        if head[:2] != ["copy", "present"] or len(head) > 3:
            raise ValueError(f"redis copy: unexpected output {lines[:2]!r}")
        return {"snapshot": head[2] if len(head) == 3 else None,
                "fingerprint": fingerprint_of(lines[1:]) if len(lines) > 1 else None}


def fingerprint_lines_file(directory: str, part: str) -> str:
    """Where ``operations.redis.displaced_dumped`` leaves the fingerprint's lines of the
    copy it dumped, for ``displaced_described`` to turn into the part's descriptor."""
    return f"{directory}/.{part}.fingerprint"


class RedisFingerprintLines(WholeOutputFact):
    """
    Returns the fingerprint whose lines a dump wrote beside the RDB it streamed from the
    same server (``fingerprint_lines_file``), None where there is no such file.

    .. code:: python

        {"dbsize": 3, "databases": {...}}  # RedisFingerprint's shape
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand("if [ -f", QuoteString(path), "]; then cat", QuoteString(path), "; else echo absent; fi")

    def process(self, output):
        lines = [line.strip() for line in output]
        return None if lines == ["absent"] else fingerprint_of(lines)
