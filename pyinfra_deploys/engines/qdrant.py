"""
Qdrant through its REST API: one part per collection, ``<component>.<collection>``, the
server's own collection snapshot (``operations.qdrant.dumped``: created, downloaded with
its sha256 checked, deleted on the server), recovered with ``priority=snapshot`` and the
checksum (``operations.qdrant.restored``). Every collection the server has, unless the
component names ``collections``. The fingerprint (``facts.qdrant``) is each collection's
point count and hashes of its configuration, of a sample of its points and of every point.
"""

from __future__ import annotations

from dataclasses import dataclass

from gevent.lock import Semaphore
from pyinfra import host

from facts import qdrant as facts
from facts.text import counted, moved
from operations import qdrant as operations
from operations.checks import Check, Probe
from operations.parallel import Step

from .base import (
    PASSWORD_KEY_RULE,
    SERVICE_RULE,
    Component,
    Engine,
    each,
    healthcheck,
    password_key,
    service_name,
    setting,
)


@dataclass(frozen=True)
class QdrantComponent(Component):
    """``{engine: qdrant, service, url, password_key, collections}``"""

    engine = "qdrant"
    service: str = setting(SERVICE_RULE, service_name, "qdrant")
    url: str = setting("be http(s)://host[:port]", facts.valid_url, facts.DEFAULT_URL)
    password_key: str | None = setting(PASSWORD_KEY_RULE, password_key, facts.DEFAULT_KEY)
    collections: tuple[str, ...] = setting("be a list of collection names (letters, digits, _.-)",
                                           each(facts.valid_name), (), plural=True)

    @property
    def client(self) -> dict:
        return {"url": self.url, "password_key": self.password_key}


class Qdrant(Engine):
    name, component, layra_name = "qdrant", QdrantComponent, "qdrant"
    images = ("qdrant",)

    def __init__(self):
        self.read: dict[tuple, dict] = {}
        self.reading: dict[tuple, Semaphore] = {}

    def fingerprint(self, stack, component: QdrantComponent) -> dict:
        """Every collection's fingerprint, read once per run and host (pyinfra does not
        cache facts, and the plan asks for each collection, side by side)."""
        key = (id(host.state), host.name, stack, component.name)
        with self.reading.setdefault(key, Semaphore()):
            if key not in self.read:
                self.read[key] = host.get_fact(facts.QdrantFingerprint, stack=stack, **component.client)
        return self.read[key]

    def parts(self, stack, component: QdrantComponent) -> dict[str, dict]:
        names = component.collections or sorted(self.fingerprint(stack, component).get("collections", {}))
        return {f"{component.name}.{c}": {"collection": c} for c in names}

    def dump(self, stack, component: QdrantComponent, name: str, part: dict, directory: str, **options) -> list:
        return [operations.dumped(name=f"Snapshot {component.name}/{part['collection']}", stack=stack,
                                  collection=part["collection"], directory=directory, part=name,
                                  service=component.service, **component.client, **options)]

    def plan(self, stack, component: QdrantComponent, part: str, descriptor: dict, sha256s: dict) -> dict:
        collection, snapshot = descriptor["collection"], descriptor["fingerprint"]
        live = self.fingerprint(stack, component).get("collections", {}).get(collection)
        return {
            "part": part,
            "component": f"{component.name}/{collection}",
            "engine": self.name,
            "exists": live is not None,
            "points": [(live or {}).get("points"), snapshot.get("points")],
            "config_changed": live is not None and live.get("config_sha256") != snapshot.get("config_sha256"),
            "changes": not facts.same_data(live, snapshot),
        }

    def describe(self, plan: dict) -> list[str]:
        head = f"{plan['component']}: "
        if not plan["changes"]:
            return [head + "no change: already matches the snapshot"]
        current, target = plan["points"]
        if not plan["exists"]:
            return [head + f"create from the snapshot (no live collection), {counted(target, 'point')}"]
        return [head + f"recover from the snapshot, {moved(current, target, 'point')}"
                + (" (same count, other content)" if current == target and not plan["config_changed"] else "")
                + (", configuration changed" if plan["config_changed"] else "")]

    def restore(self, stack, component: QdrantComponent, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[Step]:
        collection = descriptor["collection"]
        return [Step(operations.restored, {"stack": stack, "collection": collection,
                                           "snapshot_file": files[descriptor["file"]],
                                           "sha256": sha256s[descriptor["file"]],
                                           "fingerprint": descriptor["fingerprint"], "live_differs": differs,
                                           **component.client},
                     f"{component.name}/{collection}")]

    def integrity(self, stack, component: QdrantComponent, descriptor: dict, sha256s: dict) -> Probe:
        def read(services: dict) -> Check:
            live = host.get_fact(facts.QdrantFingerprint, stack=stack, **component.client)
            found = live.get("collections", {}).get(descriptor["collection"])
            want = descriptor["fingerprint"]
            return Check(4, f"{component.name}/{descriptor['collection']} fingerprint",
                         counted(found["points"], "point") if found else "no collection",
                         counted(want.get("points"), "point"), facts.same_data(found, want))
        return Probe(read)

    def ping(self, stack, component: QdrantComponent) -> Probe:
        return healthcheck(component.name, [component.service])

    def propose(self, service, settings: dict, why: list[str], todo: list[str]):
        why.append("per-collection snapshots through its REST API, Qdrant running")
        if service.volumes:
            why.append(f"or {{engine: volumes, services: [{service.name}]}} when it may stop "
                       f"(volume {', '.join(service.volumes)})")


ENGINE = Qdrant()
