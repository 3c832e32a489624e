"""
Redis: a cache, flushed by pattern after a rollback's change (``SCAN`` + ``UNLINK``,
``operations.redis.caches_flushed``); where it holds state (``rdb: true``) also one part,
``<component>``, its RDB (``operations.redis.dumped``). A rollback loads the snapshot's
RDB beside the live data and checks it before the maintenance window (``staged``,
``staged_checked``), swaps it in at a restart inside it (``restored``: the live files
moved aside, the displaced copy) and, after it, writes the displaced copy into the safety
snapshot (``displaced_dumped``, served once for its RDB and its fingerprint;
``displaced_described``) before dropping it (``aside_dropped``). The
fingerprint (``facts.redis``) hashes the sorted key names, every value and a sample of
values on the host, leaving the cache patterns out where Redis holds state.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host

from facts import redis as facts
from facts.text import counted, moved
from operations import redis as operations
from operations.checks import Check, Probe
from operations.parallel import Step

from ..compose_file import after, env_of, password_from
from .base import (
    PASSWORD_KEY_RULE,
    SERVICE_RULE,
    Component,
    Engine,
    SettingError,
    data_path,
    password_key,
    service_name,
    setting,
)

# Layra's caches (a compose file cannot say which keys are caches).
# Layra's caches: sessions in its token database (REDIS_TOKEN_DB), the knowledge-base list
# and embedding progress in its task database (REDIS_TASK_DB)
LAYRA_CACHES = ({"db": 1, "pattern": "user:session:*"}, {"db": 2, "pattern": "kb:cache:*"},
                {"db": 2, "pattern": "embedding:*"})


def cache_patterns_given(value) -> bool:
    try:
        facts.cache_patterns(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, (list, tuple))


def databases_given(value) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and all(
        isinstance(db, int) and not isinstance(db, bool) and 0 <= db < facts.MAX_DATABASES for db in value))


@dataclass(frozen=True)
class RedisComponent(Component):
    """``{engine: redis, service, password_key, flush_patterns, rdb}``"""

    engine = "redis"
    service: str = setting(SERVICE_RULE, service_name, "redis")
    password_key: str | None = setting(PASSWORD_KEY_RULE, password_key, facts.PASSWORD_KEY)
    # (db, pattern) pairs: a bare pattern is in database 0, {db: 1, pattern: ...} in database 1
    flush_patterns: tuple = setting("be a list of key patterns (each on one line), bare for database 0 or "
                                    "{db: N, pattern: ...}", cache_patterns_given, (), plural=True)
    # the logical databases it holds (None: every one that has keys)
    databases: tuple[int, ...] | None = setting("be a list of database numbers (0-1023), or null for every one "
                                                "that has keys", databases_given, None)
    rdb: bool = setting("be true (Redis holds state: back it up) or false (cache only)",
                        lambda value: isinstance(value, bool), False)

    def __post_init__(self):
        # host data's forms, each pattern with its database, one way
        object.__setattr__(self, "flush_patterns", tuple(facts.cache_patterns(self.flush_patterns)))
        if self.databases is not None:
            object.__setattr__(self, "databases", tuple(self.databases))

    def check(self):
        if self.rdb and not all(facts.valid_volatile(p) for _, p in self.flush_patterns):
            raise SettingError("flush_patterns", f"with rdb true are also left out of the fingerprint, so only * "
                                                 f"and ? wildcards, got {[p if not db else {'db': db, 'pattern': p} for db, p in self.flush_patterns]!r}")

    @property
    def client(self) -> dict:
        return {"service": self.service, "password_key": self.password_key}

    @property
    def state(self) -> dict:
        """The fingerprint's arguments where Redis holds state: its databases, and its cache
        patterns left out (they are not part of it)."""
        volatile = [pattern if not db else [db, pattern] for db, pattern in self.flush_patterns]
        return {**self.client, **({"volatile": volatile} if volatile else {}),
                **({"databases": list(self.databases)} if self.databases is not None else {})}

    @property
    def caches(self) -> dict[int, list[str]]:
        """The cache patterns by database."""
        found: dict[int, list[str]] = {}
        for db, pattern in self.flush_patterns:
            found.setdefault(db, []).append(pattern)
        return found


class Redis(Engine):
    name, component, layra_name = "redis", RedisComponent, "redis"
    images = ("redis", "redis-stack-server", "valkey")

    def parts(self, stack, component: RedisComponent) -> dict[str, dict]:
        return {component.name: {}} if component.rdb else {}

    def estimate(self, stack, component: RedisComponent, part: dict) -> int:
        return host.get_fact(facts.RedisPersistence, stack=stack, **component.client).get("used_memory", 0)

    def dump(self, stack, component: RedisComponent, name: str, part: dict, directory: str, **options) -> list:
        return [operations.dumped(name=f"Dump {component.name} (RDB)", stack=stack, directory=directory,
                                  part=name, **component.state, **options)]

    def live(self, stack, component: RedisComponent) -> dict:
        return host.get_fact(facts.RedisFingerprint, stack=stack, **component.state)

    def plan(self, stack, component: RedisComponent, part: str, descriptor: dict, sha256s: dict) -> dict:
        live, snapshot = self.live(stack, component), descriptor["fingerprint"]
        changes = not facts.same_data(live, snapshot)
        return {"part": part, "component": component.name, "engine": self.name, "flush": {},
                "restore": {"dbsize": [(live or {}).get("dbsize"), snapshot.get("dbsize")], "changes": changes},
                "changes": changes}

    def cache_plan(self, stack, component: RedisComponent) -> dict | None:
        if not component.flush_patterns:
            return None
        counts = {}
        for db, patterns in sorted(component.caches.items()):
            found = host.get_fact(facts.RedisKeyCounts, stack=stack, patterns=patterns, db=db, **component.client)
            counts.update({facts.pattern_name(db, pattern): count for pattern, count in found.items()})
        # caches follow a change, they do not make one: the deploy says whether this run flushes
        return {"part": None, "component": component.name, "engine": self.name, "flush": counts,
                "changes": any(counts.values())}

    def caches_flushed(self, stack, component: RedisComponent, **options) -> None:
        for db, patterns in sorted(component.caches.items()):
            operations.caches_flushed(name=f"Flush {component.name} caches" + (f" (database {db})" if db else ""),
                                      stack=stack, patterns=patterns, db=db, **component.client, **options)

    def describe(self, plan: dict) -> list[str]:
        lines = []
        restore = plan.get("restore")
        if restore:
            lines.append(f"{plan['component']}: " + (f"restore RDB, {moved(*restore['dbsize'], 'key')} (staged beside "
                                                     f"the live data, swapped in at a restart)"
                                                     if restore["changes"] else "RDB already matches the snapshot"))
        # caches are flushed after a change, not for their own sake: only when the run changes something
        flushes = plan.get("flushes", True)
        for pattern, count in plan["flush"].items():
            lines.append(f"{plan['component']}: {counted(count, 'key')} match{'es' * (count == 1)} {pattern}"
                         + ((" (flush)" if flushes else " (left alone: the run changes nothing here)") if count else ""))
        return lines or [f"{plan['component']}: nothing to do"]

    keeps_displaced = True  # the swap moves the live files to <dir>/.layra-displaced

    def swap_note(self, component: RedisComponent) -> str:
        return (f"restarts {component.service}, which saves its data on the way down and loads the snapshot's as it "
                f"starts: both grow with its data, the window's floor")

    def layout(self, stack, component: RedisComponent) -> dict:
        return facts.layout_of(host.get_fact(facts.RedisPersistence, stack=stack, **component.client))

    def file_arguments(self, stack, component: RedisComponent, descriptor: dict, files: dict, sha256s: dict) -> dict:
        return {"stack": stack, "rdb_file": files[descriptor["file"]], "sha256": sha256s[descriptor["file"]],
                **component.client}

    def stage(self, stack, component: RedisComponent, descriptor: dict, files: dict, sha256s: dict,
              differs: bool = False) -> list[Step]:
        # loaded beside the live data and checked while the application serves; the window swaps
        if not differs:
            return []
        return [Step(operations.staged, self.file_arguments(stack, component, descriptor, files, sha256s),
                     component.name),
                Step(operations.staged_checked, {"stack": stack, "sha256": sha256s[descriptor["file"]],
                                                 "fingerprint": descriptor["fingerprint"], **component.state},
                     component.name)]

    def staging_needs(self, stack, component: RedisComponent, descriptor: dict) -> list[tuple[str, int]]:
        # the staged RDB (and AOF) about the size of the data in memory, on the data's volume
        persistence = host.get_fact(facts.RedisPersistence, stack=stack, **component.client)
        path = data_path(stack, component.service, persistence["dir"])
        return [(path, persistence.get("used_memory", 0) * (2 if persistence["appendonly"] else 1))] if path else []

    def restore(self, stack, component: RedisComponent, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[Step]:
        # staged and checked before the window where the plan found it different: only the swap
        return [Step(operations.restored, {**self.file_arguments(stack, component, descriptor, files, sha256s),
                                           "fingerprint": descriptor["fingerprint"], **component.state,
                                           "staged": differs},
                     component.name)]

    def keep_displaced(self, stack, component: RedisComponent, name: str, descriptor: dict, directory: str,
                       **options) -> list:
        return [operations.displaced_dumped(name=f"Keep the displaced {component.name}", stack=stack,
                                            directory=directory, part=name, **component.state, **options),
                operations.displaced_described(name=f"Describe the displaced {component.name}", stack=stack,
                                               directory=directory, part=name, **component.client, **options)]

    def displaced_present(self, stack, component: RedisComponent, descriptor: dict) -> bool:
        return host.get_fact(facts.RedisCopy, stack=stack, layout=self.layout(stack, component), copy="displaced",
                             service=component.service, fingerprint=False) is not None

    def aside_dropped(self, stack, component: RedisComponent, descriptor: dict, **options) -> list:
        return [operations.aside_dropped(name=f"Drop the displaced {component.name}", stack=stack,
                                         **component.client, **options)]

    def integrity(self, stack, component: RedisComponent, descriptor: dict, sha256s: dict) -> Probe:
        def read(services: dict) -> Check:
            live, want = self.live(stack, component), descriptor["fingerprint"]
            return Check(4, f"{component.name} fingerprint", key_counts(live), key_counts(want),
                         facts.same_data(live, want))
        return Probe(read)

    def ping(self, stack, component: RedisComponent) -> Probe:
        def read(services: dict) -> Check:
            answer = host.get_fact(facts.RedisPing, stack=stack, **component.client)
            return Check(2, f"{component.name} ping", answer["output"] or "no answer", "PONG", answer["ok"])
        return Probe(read)

    def propose(self, service, settings: dict, why: list[str], todo: list[str]):
        given = after(service.words, "--requirepass")
        if given and given.startswith("$$"):  # the container's own variable: what feeds it?
            given = service.env.get(given[2:].strip("{}"))
        password_from(service, {"--requirepass": given, **env_of(service, "REDIS_PASSWORD", "VALKEY_PASSWORD")},
                      settings, why, todo)
        settings["flush_patterns"] = [dict(entry) for entry in LAYRA_CACHES]
        why.append("flush_patterns: Layra's caches, in its token (1) and task (2) databases (a compose file "
                   "cannot say which keys are caches)")
        given = {flag: after(service.words, flag) for flag in ("--appendonly", "--save")}
        persists = [f"{flag} {value}" for flag, value in given.items() if value not in (None, "", "no")]
        settings["rdb"] = bool(service.volumes and persists)
        if settings["rdb"]:
            why.append(f"rdb: true: {' '.join(persists)} keeps its data in volume {', '.join(service.volumes)}: state")
        elif service.volumes:
            why.append(f"rdb: false: volume {', '.join(service.volumes)} but no --appendonly/--save: treated as a "
                       f"cache (set rdb: true if it holds state)")
        else:
            why.append("rdb: false: no named volume, so a cache")


def key_counts(fingerprint: dict) -> str:
    """``2 databases, 45 keys (db1 40, db2 5)``, for checks."""
    databases = facts.databases_of(fingerprint) or {}
    total = sum(found["dbsize"] for found in databases.values())
    each = ", ".join(f"db{db} {found['dbsize']:,}" for db, found in sorted(databases.items(), key=lambda i: int(i[0])))
    return f"{counted(len(databases), 'database')}, {counted(total, 'key')}" + (f" ({each})" if databases else "")


ENGINE = Redis()
