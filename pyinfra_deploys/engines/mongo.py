"""
MongoDB: one part per database (``<component>.<database>``), a ``mongodump --archive
--gzip`` each (``operations.mongo.dumped``). A restore loads the archive into shadow
collections ``__restore__<collection>`` of the same database and renames them in once
the copy matches the snapshot's fingerprint (``operations.mongo.shadow_loaded``,
``swapped_in``): within one database a rename is a change of the catalog, so the window's
swap does not grow with the data. The live collections it replaces stay beside them as
``__pre_restore__<collection>``, the displaced copy. The fingerprint (``facts.mongo``) is
``dbHash`` and the document count per collection.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host

from facts import mongo as facts
from operations import mongo as operations

from ..compose_file import env_of, key_from, password_from
from .base import (
    PASSWORD_KEY_RULE,
    SERVICE_RULE,
    Component,
    one_line,
    password_key,
    service_name,
    setting,
)
from .shadow import (
    DATABASES,
    DATABASES_KEY,
    FROM_ENV,
    USER_KEY,
    ShadowDatabases,
    databases_from,
)


@dataclass(frozen=True)
class MongoComponent(Component):
    """``{engine: mongo, service, user, auth_db, password_key, databases, user_key, databases_key}``"""

    engine = "mongo"
    service: str = setting(SERVICE_RULE, service_name, "mongodb")
    user: str = setting("be a name on one line", one_line, "root")
    auth_db: str = setting("be a name on one line", one_line, "admin")
    password_key: str | None = setting(PASSWORD_KEY_RULE, password_key, facts.PASSWORD_KEY)
    databases: tuple[str, ...] = DATABASES
    user_key: str | None = USER_KEY
    databases_key: str | None = DATABASES_KEY
    from_env = FROM_ENV

    @property
    def client(self) -> dict:
        """The connection arguments its facts and operations take."""
        return {"service": self.service, "user": self.user, "password_key": self.password_key,
                "auth_db": self.auth_db}


class Mongo(ShadowDatabases):
    name, component, layra_name = "mongo", MongoComponent, "mongodb"
    images = ("mongo", "mongodb", "mongodb-community-server")
    operations, fingerprint_fact, file_argument = operations, facts.MongoFingerprint, "archive_file"
    ping_fact, ping_answer = facts.MongoPing, '{"ok":1}'

    def matches(self, live, snapshot) -> bool:
        return facts.same_data(live, snapshot)

    def load_arguments(self, descriptor: dict) -> dict:
        # a displaced copy's archive holds its prefixed collections (an earlier release's:
        # the <database>__pre_restore database's)
        return {key: descriptor[key] for key in ("source_prefix", "source_database") if descriptor.get(key)}

    def point_in_time(self, stack, component, descriptor: dict, until: dict, snapshot_dir: str,
                      created: str | None, differs: bool) -> dict | None:
        # the oplog would be MongoDB's log: see the README's point-in-time section
        if not differs:
            return None
        return {"error": f"mongo/{descriptor['database']}: until={until['text']} refused: MongoDB's writes can only "
                         "be replayed from the oplog of a replica set (mongorestore --oplogReplay), which cannot be "
                         "combined with the namespace renames its shadow copy needs; nothing was changed (a rollback "
                         "to the snapshot alone, without until=, is possible)"}

    def displaced_dump(self, database: str) -> dict:
        return {"displaced": True}

    def displaced_fingerprint(self, stack, component, database: str) -> dict:
        return host.get_fact(facts.MongoFingerprint, stack=stack, database=database, copy="aside", **component.client)

    def summary(self, fingerprint: dict) -> str:
        return facts.summary(fingerprint)

    def plan(self, stack, component, part: str, descriptor: dict, sha256s: dict) -> dict:
        live = self.live(stack, component, descriptor["database"])
        return {"part": part, **database_plan(component.name, descriptor["database"], live, descriptor["fingerprint"])}

    def describe(self, plan: dict) -> list[str]:
        lines = self.describe_changes(plan, "collections", "document")
        if plan["changes"]:
            lines += [f"  collection {c} added" for c in plan["collections_added"]]
            lines += [f"  collection {c} dropped (kept aside as {facts.COPIES['aside']}{c})"
                      for c in plan["collections_dropped"]]
        return lines

    def propose(self, service, settings: dict, why: list[str], todo: list[str]):
        password_from(service, env_of(service, "MONGO_INITDB_ROOT_PASSWORD", "MONGODB_ROOT_PASSWORD"),
                      settings, why, todo)
        users = env_of(service, "MONGO_INITDB_ROOT_USERNAME", "MONGODB_ROOT_USERNAME")
        if not key_from(users, settings, "user_key", why) and one_line(users["MONGO_INITDB_ROOT_USERNAME"]):
            settings["user"] = users["MONGO_INITDB_ROOT_USERNAME"]
            why.append("user from MONGO_INITDB_ROOT_USERNAME")
        databases_from(service, ("MONGO_INITDB_DATABASE",), settings, why, todo)


def database_plan(name: str, database: str, live: dict, snapshot: dict) -> dict:
    """Restoring one MongoDB database: per-collection documents current -> snapshot."""
    live_collections = live.get("collections", {}) if live.get("exists") else {}
    snap_collections = snapshot.get("collections", {})
    changed = {
        collection: [live_collections[collection].get("count"), snap_collections[collection].get("count")]
        for collection in sorted(set(live_collections) & set(snap_collections))
        if live_collections[collection] != snap_collections[collection]
    }
    return {
        "component": f"{name}/{database}",
        "engine": "mongo",
        "exists": bool(live.get("exists")),
        "collections_changed": changed,
        "collections_added": sorted(set(snap_collections) - set(live_collections)),
        "collections_dropped": sorted(set(live_collections) - set(snap_collections)),
        "changes": not facts.same_data(live, snapshot),
    }


ENGINE = Mongo()
