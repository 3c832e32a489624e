"""
What each engine brings to the backup and rollback deploys, in one shape: the parts a
component is backed up as, an estimate of their size, the dump operations, the plan
(current -> snapshot), the restore steps (run by ``parallel.concurrently``: one group per
component, the components of a host at the same time) and what verify then expects.

A part is one unit of a snapshot: ``<component>`` or ``<component>.<database>``, with
its descriptor ``<part>.json`` written by the engine's dump operation.
"""

from __future__ import annotations

from gevent.lock import Semaphore
from pyinfra import host

from facts.compose import Stack
from facts.mongo import MongoFingerprint
from facts.mysql import MysqlDatabaseSize, MysqlFingerprint
from facts.qdrant import QdrantFingerprint
from facts.redis import RedisFingerprint, RedisPersistence
from facts.volumes import MilvusCollections, VolumeSet, at_snapshot
from operations import mongo, mysql, qdrant, redis, volumes

from .plan import mongo_plan, mysql_plan, qdrant_plan, redis_plan, volumes_plan


def step(operation: str, label: str, **kwargs) -> dict:
    """One restore step for ``parallel.concurrently``: an operation of ours and its arguments."""
    return {"operation": operation, "label": label, "kwargs": kwargs}


# Components come from config.components_from, which gives one without ``password_key`` its
# engine's default key; ``password_key: null`` means no credentials at all (the plan says so).

def mysql_args(component: dict) -> dict:
    return {"service": component["service"], "user": component.get("user", "root"),
            "password_key": component.get("password_key")}


def mongo_args(component: dict) -> dict:
    return {"service": component["service"], "user": component.get("user", "root"),
            "password_key": component.get("password_key"), "auth_db": component.get("auth_db", "admin")}


def redis_args(component: dict) -> dict:
    return {"service": component["service"], "password_key": component.get("password_key")}


def without_credentials(plan: dict, args: dict) -> dict:
    """The plan, marked where the component logs in without a password (``password_key: null``)."""
    return {**plan, "credentials": False} if args.get("password_key") is None else plan


def redis_state_args(component: dict) -> dict:
    """Where Redis holds state, its cache patterns are not part of it: left out of the fingerprint."""
    patterns = component.get("flush_patterns") or []
    return {**redis_args(component), **({"volatile": list(patterns)} if patterns else {})}


class ShadowDatabases:
    """Engines that restore per database through a shadow copy swapped in (MySQL, MongoDB):
    one part per database, ``<component>.<database>``; ``dumped``, then ``shadow_loaded``
    and ``swapped_in`` of the engine's operations module."""

    engine: str
    operations = None          # the engine's operations module
    fingerprint_fact = None    # its fingerprint fact
    file_argument = ""         # what shadow_loaded calls the part's file
    plan_of = None             # plan.<engine>_plan

    def args(self, component: dict) -> dict:
        raise NotImplementedError

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {f"{component['name']}.{db}": {"database": db} for db in component.get("databases", [])}

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [self.operations.dumped(name=f"Dump {component['name']}/{part['database']}", stack=stack,
                                       database=part["database"], directory=directory, part=name,
                                       **self.args(component), **options)]

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        args = self.args(component)
        live = host.get_fact(self.fingerprint_fact, stack=stack, database=descriptor["database"], **args)
        return without_credentials(
            type(self).plan_of(component["name"], descriptor["database"], live, descriptor["fingerprint"]), args)

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[dict]:
        database, args = descriptor["database"], self.args(component)
        module = self.operations.__name__
        return [
            step(f"{module}.shadow_loaded", f"{component['name']}/{database}", stack=stack, database=database,
                 sha256=sha256s[descriptor["file"]], fingerprint=descriptor["fingerprint"],
                 **{self.file_argument: files[descriptor["file"]]}, live_differs=differs, **args),
            step(f"{module}.swapped_in", f"{component['name']}/{database}", stack=stack, database=database,
                 fingerprint=descriptor["fingerprint"], live_differs=differs, **args),
        ]

    def expected(self, component: dict, descriptor: dict, sha256s: dict) -> dict:
        return {"name": f"{component['name']}/{descriptor['database']}", "engine": self.engine,
                "database": descriptor["database"], **self.args(component), "fingerprint": descriptor["fingerprint"]}


class Mysql(ShadowDatabases):
    """A ``.sql.gz`` dump per database."""

    engine, operations, fingerprint_fact, file_argument = "mysql", mysql, MysqlFingerprint, "dump_file"
    plan_of = mysql_plan

    def args(self, component: dict) -> dict:
        return mysql_args(component)

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return host.get_fact(MysqlDatabaseSize, stack=stack, database=part["database"], **mysql_args(component))


class Mongo(ShadowDatabases):
    """A ``mongodump --archive --gzip`` per database."""

    engine, operations, fingerprint_fact, file_argument = "mongo", mongo, MongoFingerprint, "archive_file"
    plan_of = mongo_plan

    def args(self, component: dict) -> dict:
        return mongo_args(component)

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return 0  # compressed BSON is small next to the MySQL dumps; the headroom covers it


def qdrant_args(component: dict) -> dict:
    return {"url": component.get("url", "http://127.0.0.1:6333"),
            "password_key": component.get("password_key")}


class Qdrant:
    """One part per collection: ``<component>.<collection>``, Qdrant's own collection snapshot.

    Every collection the server has, unless the component names ``collections``."""

    def __init__(self):
        self.read: dict[tuple, dict] = {}
        self.reading: dict[tuple, Semaphore] = {}

    def fingerprint(self, stack: Stack, component: dict) -> dict:
        """Every collection's fingerprint, read once per run and host (pyinfra does not
        cache facts, and the plan asks for each collection, side by side)."""
        key = (id(host.state), host.name, stack, component["name"])
        with self.reading.setdefault(key, Semaphore()):
            if key not in self.read:
                self.read[key] = host.get_fact(QdrantFingerprint, stack=stack, **qdrant_args(component))
        return self.read[key]

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        names = component.get("collections") or sorted(self.fingerprint(stack, component).get("collections", {}))
        return {f"{component['name']}.{c}": {"collection": c} for c in names}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return 0  # Qdrant reports no size; the headroom covers small collections

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [qdrant.dumped(name=f"Snapshot {component['name']}/{part['collection']}", stack=stack,
                              collection=part["collection"], directory=directory, part=name,
                              service=component["service"], **qdrant_args(component), **options)]

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        live = self.fingerprint(stack, component).get("collections", {}).get(descriptor["collection"])
        return qdrant_plan(component["name"], descriptor["collection"], live, descriptor["fingerprint"])

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[dict]:
        collection = descriptor["collection"]
        return [step("operations.qdrant.restored", f"{component['name']}/{collection}", stack=stack,
                     collection=collection, snapshot_file=files[descriptor["file"]],
                     sha256=sha256s[descriptor["file"]], fingerprint=descriptor["fingerprint"],
                     **qdrant_args(component))]

    def expected(self, component: dict, descriptor: dict, sha256s: dict) -> dict:
        return {"name": f"{component['name']}/{descriptor['collection']}", "engine": "qdrant",
                "collection": descriptor["collection"], **qdrant_args(component),
                "fingerprint": descriptor["fingerprint"]}


class Redis:
    """One part when Redis holds state (``rdb: true``): ``<component>``, an RDB whose fingerprint
    leaves the cache patterns out (they are flushed after the restore); a cache-only Redis is
    flushed instead."""

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {component["name"]: {}} if component.get("rdb") else {}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return host.get_fact(RedisPersistence, stack=stack, **redis_args(component)).get("used_memory", 0)

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [redis.dumped(name=f"Dump {component['name']} (RDB)", stack=stack, directory=directory,
                             part=name, **redis_state_args(component), **options)]

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        live = host.get_fact(RedisFingerprint, stack=stack, **redis_state_args(component))
        return redis_plan(component["name"], {}, live, descriptor["fingerprint"])

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[dict]:
        return [step("operations.redis.restored", component["name"], stack=stack,
                     rdb_file=files[descriptor["file"]], sha256=sha256s[descriptor["file"]],
                     fingerprint=descriptor["fingerprint"], **redis_state_args(component))]

    def expected(self, component: dict, descriptor: dict, sha256s: dict) -> dict:
        return {"name": component["name"], "engine": "redis", **redis_state_args(component),
                "fingerprint": descriptor["fingerprint"]}


class Volumes:
    """One part per set: ``<component>``, an archive per named volume of its services."""

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {component["name"]: {}}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        # du, not the fingerprint: sizing a backup must not read every byte it will archive
        found = host.get_fact(VolumeSet, stack=stack, services=component["services"], fingerprint=False)["volumes"]
        return sum(volume.get("bytes", 0) for volume in found.values())

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [volumes.dumped(name=f"Archive {component['name']} ({', '.join(component['services'])})",
                               stack=stack, services=component["services"], directory=directory, part=name,
                               extra=self.row_counts(stack, component), **options)]

    def row_counts(self, stack: Stack, component: dict) -> dict:
        """Milvus collections' row counts, where the component says how to ask (``milvus``)."""
        milvus = component.get("milvus")
        if not milvus:
            return {}
        counts = host.get_fact(MilvusCollections, stack=stack, **milvus)
        return {"milvus_collections": counts["collections"]} if counts.get("ok") else {}

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        found = host.get_fact(VolumeSet, stack=stack, services=component["services"])["volumes"]
        matches = {name: name in found and at_snapshot(found[name], want["fingerprint"], sha256s[want["file"]])
                   for name, want in descriptor["volumes"].items()}
        # Milvus's row counts tell more only about a set that is restored, and asking its
        # client is the plan's slowest read (about a second and a core, for every host)
        row_counts = {} if all(matches.values()) else self.row_counts(stack, component)
        return volumes_plan(component["name"], found, descriptor, matches, row_counts)

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[dict]:
        wanted = {name: {"file": files[want["file"]], "sha256": sha256s[want["file"]],
                         "fingerprint": want["fingerprint"]}
                  for name, want in descriptor["volumes"].items()}
        return [step("operations.volumes.restored", component["name"], stack=stack,
                     services=component["services"], volumes=wanted)]

    def expected(self, component: dict, descriptor: dict, sha256s: dict) -> dict:
        return {"name": component["name"], "engine": "volumes", "services": component["services"],
                "volumes": {name: {"fingerprint": want["fingerprint"], "sha256": sha256s[want["file"]]}
                            for name, want in descriptor["volumes"].items()}}


ENGINES = {"mysql": Mysql(), "mongo": Mongo(), "qdrant": Qdrant(), "redis": Redis(), "volumes": Volumes()}
