"""
What each engine brings to the backup and rollback deploys, in one shape: the parts a
component is backed up as, an estimate of their size, the dump operations, the plan
(current -> snapshot) and the restore operations with what verify then expects.

A part is one unit of a snapshot: ``<component>`` or ``<component>.<database>``, with
its descriptor ``<part>.json`` written by the engine's dump operation.
"""

from __future__ import annotations

from pyinfra import host

from facts.compose import Stack
from facts.mongo import MongoFingerprint
from facts.mysql import MysqlDatabaseSize, MysqlFingerprint
from facts.qdrant import QdrantFingerprint
from facts.redis import RedisFingerprint, RedisPersistence
from facts.volumes import MilvusCollections, VolumeSet, at_snapshot
from operations import mongo, mysql, qdrant, redis, volumes

from .plan import mongo_plan, mysql_plan, qdrant_plan, redis_plan, volumes_plan


def mysql_args(component: dict) -> dict:
    return {"service": component["service"], "user": component.get("user", "root"),
            "password_key": component.get("password_key")}


def mongo_args(component: dict) -> dict:
    return {"service": component["service"], "user": component.get("user", "root"),
            "password_key": component.get("password_key"), "auth_db": component.get("auth_db", "admin")}


def redis_args(component: dict) -> dict:
    return {"service": component["service"], "password_key": component.get("password_key")}


class Mysql:
    """One part per database: ``<component>.<database>``, a ``.sql.gz`` dump."""

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {f"{component['name']}.{db}": {"database": db} for db in component.get("databases", [])}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return host.get_fact(MysqlDatabaseSize, stack=stack, database=part["database"], **mysql_args(component))

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [mysql.dumped(name=f"Dump {component['name']}/{part['database']}", stack=stack,
                             database=part["database"], directory=directory, part=name,
                             **mysql_args(component), **options)]

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        live = host.get_fact(MysqlFingerprint, stack=stack, database=descriptor["database"], **mysql_args(component))
        return mysql_plan(component["name"], descriptor["database"], live, descriptor["fingerprint"])

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict) -> dict:
        database, args = descriptor["database"], mysql_args(component)
        mysql.shadow_loaded(name=f"Load {component['name']}/{database} into a shadow copy", stack=stack,
                            database=database, dump_file=files[descriptor["file"]],
                            sha256=sha256s[descriptor["file"]], fingerprint=descriptor["fingerprint"], **args)
        mysql.swapped_in(name=f"Swap {component['name']}/{database} in", stack=stack, database=database,
                         fingerprint=descriptor["fingerprint"], **args)
        return {"name": f"{component['name']}/{database}", "engine": "mysql", "database": database, **args,
                "fingerprint": descriptor["fingerprint"]}


class Mongo:
    """One part per database: ``<component>.<database>``, a ``mongodump --archive --gzip``."""

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {f"{component['name']}.{db}": {"database": db} for db in component.get("databases", [])}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return 0  # compressed BSON is small next to the MySQL dumps; the headroom covers it

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [mongo.dumped(name=f"Dump {component['name']}/{part['database']}", stack=stack,
                             database=part["database"], directory=directory, part=name,
                             **mongo_args(component), **options)]

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        live = host.get_fact(MongoFingerprint, stack=stack, database=descriptor["database"], **mongo_args(component))
        return mongo_plan(component["name"], descriptor["database"], live, descriptor["fingerprint"])

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict) -> dict:
        database, args = descriptor["database"], mongo_args(component)
        mongo.shadow_loaded(name=f"Load {component['name']}/{database} into a shadow database", stack=stack,
                            database=database, archive_file=files[descriptor["file"]],
                            sha256=sha256s[descriptor["file"]], fingerprint=descriptor["fingerprint"], **args)
        mongo.swapped_in(name=f"Swap {component['name']}/{database} in", stack=stack, database=database,
                         fingerprint=descriptor["fingerprint"], **args)
        return {"name": f"{component['name']}/{database}", "engine": "mongo", "database": database, **args,
                "fingerprint": descriptor["fingerprint"]}


def qdrant_args(component: dict) -> dict:
    return {"url": component.get("url", "http://127.0.0.1:6333"),
            "password_key": component.get("password_key", "QDRANT_API_KEY")}


class Qdrant:
    """One part per collection: ``<component>.<collection>``, Qdrant's own collection snapshot.

    Every collection the server has, unless the component names ``collections``."""

    def fingerprint(self, stack: Stack, component: dict) -> dict:
        return host.get_fact(QdrantFingerprint, stack=stack, **qdrant_args(component))

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

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict) -> dict:
        collection, args = descriptor["collection"], qdrant_args(component)
        qdrant.restored(name=f"Recover {component['name']}/{collection} from its snapshot", stack=stack,
                        collection=collection, snapshot_file=files[descriptor["file"]],
                        sha256=sha256s[descriptor["file"]], fingerprint=descriptor["fingerprint"], **args)
        return {"name": f"{component['name']}/{collection}", "engine": "qdrant", "collection": collection, **args,
                "fingerprint": descriptor["fingerprint"]}


class Redis:
    """One part when Redis holds state (``rdb: true``): ``<component>``, an RDB; caches are flushed instead."""

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {component["name"]: {}} if component.get("rdb") else {}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        return host.get_fact(RedisPersistence, stack=stack, **redis_args(component)).get("used_memory", 0)

    def dump(self, stack: Stack, component: dict, name: str, part: dict, directory: str, **options):
        return [redis.dumped(name=f"Dump {component['name']} (RDB)", stack=stack, directory=directory,
                             part=name, **redis_args(component), **options)]

    def plan(self, stack: Stack, component: dict, descriptor: dict, sha256s: dict) -> dict:
        live = host.get_fact(RedisFingerprint, stack=stack, **redis_args(component))
        return redis_plan(component["name"], {}, live, descriptor["fingerprint"])

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict) -> dict:
        args = redis_args(component)
        redis.restored(name=f"Restore {component['name']} from its RDB", stack=stack,
                       rdb_file=files[descriptor["file"]], sha256=sha256s[descriptor["file"]],
                       fingerprint=descriptor["fingerprint"], **args)
        return {"name": component["name"], "engine": "redis", **args, "fingerprint": descriptor["fingerprint"]}


class Volumes:
    """One part per set: ``<component>``, an archive per named volume of its services."""

    def parts(self, stack: Stack, component: dict) -> dict[str, dict]:
        return {component["name"]: {}}

    def estimate(self, stack: Stack, component: dict, part: dict) -> int:
        found = host.get_fact(VolumeSet, stack=stack, services=component["services"])["volumes"]
        return sum((volume.get("fingerprint") or {}).get("bytes", 0) for volume in found.values())

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
        return volumes_plan(component["name"], found, descriptor, matches, self.row_counts(stack, component))

    def restore(self, stack: Stack, component: dict, descriptor: dict, files: dict, sha256s: dict) -> dict:
        wanted = {name: {"file": files[want["file"]], "sha256": sha256s[want["file"]],
                         "fingerprint": want["fingerprint"]}
                  for name, want in descriptor["volumes"].items()}
        volumes.restored(name=f"Restore {component['name']} ({', '.join(component['services'])})", stack=stack,
                         services=component["services"], volumes=wanted)
        return {"name": component["name"], "engine": "volumes", "services": component["services"],
                "volumes": {name: {"fingerprint": w["fingerprint"], "sha256": w["sha256"]} for name, w in wanted.items()}}


ENGINES = {"mysql": Mysql(), "mongo": Mongo(), "qdrant": Qdrant(), "redis": Redis(), "volumes": Volumes()}


def descriptor_files(descriptor: dict) -> list[str]:
    """Every data file a part descriptor names."""
    named = [descriptor["file"]] if isinstance(descriptor.get("file"), str) else []
    return named + [volume["file"] for volume in (descriptor.get("volumes") or {}).values()]
