"""
Volume sets: the named volumes of services that keep one data set between them (Milvus
standalone + its etcd + its MinIO, Kafka + ZooKeeper, MinIO alone, Qdrant by volume),
stopped together, archived on the host and started again (``operations.volumes.dumped``);
one part per set, ``<component>``. A restore extracts each archive beside its volume,
checks it against the snapshot's fingerprint, stops the set, swaps the directories and
starts it (``operations.volumes.restored``). The fingerprint (``facts.volumes``) reads no
file's content: every entry's type, mode, owner, size, mtime and name; a marker beside a
volume says which archive it was last left at, as its services settled on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host

from facts import volumes as facts
from facts.text import counted, moved
from operations import volumes as operations
from operations.checks import Check, Probe
from operations.parallel import Step

from ..compose_file import Service
from .base import (
    NAME_RULE,
    Component,
    Engine,
    SettingError,
    each,
    healthcheck,
    one_line,
    service_name,
    setting,
)


def milvus_client(value) -> bool:
    return value is None or (isinstance(value, dict) and set(value) <= {"client_service", "uri"}
                             and service_name(value.get("client_service", "backend")) and one_line(value.get("uri", "-")))


@dataclass(frozen=True)
class VolumesComponent(Component):
    """``{engine: volumes, services, milvus}``"""

    engine = "volumes"
    services: tuple[str, ...] = setting(f"be a non-empty list of compose service names ({NAME_RULE})",
                                        lambda value: bool(value) and each(service_name)(value), (), plural=True)
    # where the set is Milvus: how to ask it for row counts (a service with pymilvus)
    milvus: dict | None = setting("be a mapping with client_service (a service with pymilvus) and/or uri (strings on "
                                  "one line)", milvus_client, None)

    def check(self):
        if not self.services:
            raise SettingError("services", f"must be a non-empty list of compose service names ({NAME_RULE}), "
                                           f"got {list(self.services)!r}")

    @property
    def label(self) -> str:
        return f"{self.name} ({', '.join(self.services)})"


# Services whose data a volume set holds, by image; the first present in a set leads (names) it.
KINDS = {"milvus": "milvus", "etcd": "etcd", "minio": "minio", "kafka": "kafka", "cp-kafka": "kafka",
         "zookeeper": "zookeeper", "cp-zookeeper": "zookeeper"}
LEADS = ("milvus", "kafka", "minio", "etcd", "zookeeper")
LAYRA_NAMES = {"milvus": "milvus", "kafka": "kafka", "minio": "minio"}


class Volumes(Engine):
    name, component = "volumes", VolumesComponent
    images = tuple(KINDS)

    def kind_of(self, image: str) -> str | None:
        return KINDS.get(image)

    def volume_set(self, stack, component: VolumesComponent, fingerprint: bool = True) -> dict:
        return host.get_fact(facts.VolumeSet, stack=stack, services=list(component.services),
                             fingerprint=fingerprint)["volumes"]

    def parts(self, stack, component: VolumesComponent) -> dict[str, dict]:
        return {component.name: {}}

    def estimate(self, stack, component: VolumesComponent, part: dict) -> int:
        # du, not the fingerprint: sizing a backup must not read every byte it will archive
        return sum(volume.get("bytes", 0) for volume in self.volume_set(stack, component, fingerprint=False).values())

    def dump(self, stack, component: VolumesComponent, name: str, part: dict, directory: str, **options) -> list:
        return [operations.dumped(name=f"Archive {component.label}", stack=stack, services=list(component.services),
                                  directory=directory, part=name, extra=self.row_counts(stack, component), **options)]

    def row_counts(self, stack, component: VolumesComponent) -> dict:
        """Milvus collections' row counts asked through the server, where the component says
        how (``milvus``); those of collections not loaded (statistics, not a query) named as
        such; the server's error where it did not answer."""
        if not component.milvus:
            return {}
        counts = host.get_fact(facts.MilvusCollections, stack=stack, **component.milvus)
        if not counts.get("ok"):
            return {"milvus_error": counts.get("error") or "no answer"}
        return {"milvus_collections": counts["collections"],
                **({"milvus_not_loaded": counts["not_loaded"]} if counts.get("not_loaded") else {})}

    def served(self, stack, component: VolumesComponent, descriptor: dict) -> tuple[dict, bool | None]:
        """(the row counts read, whether the server serves the snapshot's data; None where
        the set has no server to ask, or the snapshot no counts)."""
        snapshot_counts = descriptor.get("milvus_collections")
        if snapshot_counts is None or not component.milvus:
            return {}, None
        found = self.row_counts(stack, component)
        live = {"ok": "milvus_collections" in found, "collections": found.get("milvus_collections")}
        return found, facts.same_rows(live, snapshot_counts)

    def plan(self, stack, component: VolumesComponent, part: str, descriptor: dict, sha256s: dict) -> dict:
        found = self.volume_set(stack, component)
        wanted = wanted_volumes(descriptor, sha256s)
        how = facts.set_match(found, wanted)
        row_counts = {}
        if not all(how.values()):
            # Milvus's row counts tell more only about a set that differs, and asking its
            # client is the plan's slowest read (about a second and a core, for every host)
            row_counts, served = self.served(stack, component, descriptor)
            how = facts.set_match(found, wanted, served)
        matches = {name: bool(found_how) for name, found_how in how.items()}
        volumes = {}
        for volume, want in sorted(descriptor["volumes"].items()):
            current = (found.get(volume) or {}).get("fingerprint") or {}
            volumes[volume] = {"changed": not matches[volume],
                               "files": [current.get("files"), want["fingerprint"].get("files")],
                               "bytes": [current.get("bytes"), want["fingerprint"].get("bytes")]}
        plan = {"part": part, "component": component.name, "engine": self.name, "services": descriptor["services"],
                "volumes": volumes, "changes": not all(matches.values()),
                **({"served": True} if "served" in how.values() else {})}
        snapshot_counts = descriptor.get("milvus_collections")
        if "milvus_collections" in row_counts:
            live_counts = row_counts["milvus_collections"]
            plan["milvus_collections"] = {c: [live_counts.get(c), snapshot_counts.get(c)]
                                          for c in sorted(set(live_counts) | set(snapshot_counts))}
        elif row_counts:
            plan["milvus_error"] = row_counts["milvus_error"]
        return plan

    def describe(self, plan: dict) -> list[str]:
        head = f"{plan['component']} ({', '.join(plan['services'])}): "
        if not plan["changes"]:
            if plan.get("served"):
                return [head + "no change: restored from (or archived at) the snapshot, and Milvus serves its rows"]
            return [head + "no change: every volume matches the snapshot"]
        lines = [head + "stop together, restore, start"]
        for volume, change in plan["volumes"].items():
            (files, want_files), (size, want_size) = change["files"], change["bytes"]
            lines.append(f"  volume {volume}: " + (f"{moved(files, want_files, 'file')}, {size_text(size)} -> "
                                                   f"{size_text(want_size)}" if change["changed"] else "unchanged"))
        for collection, (current, want) in plan.get("milvus_collections", {}).items():
            lines.append(f"  milvus {collection}: {moved(current, want, 'row')}")
        if plan.get("milvus_error"):
            lines.append(f"  milvus rows not read: {plan['milvus_error']}")
        return lines

    keeps_displaced = True  # the swap renames each live volume to <path>.pre-restore

    def swap_note(self, component: VolumesComponent) -> str:
        return f"stops and starts {', '.join(component.services)}: the window's floor"

    def archives(self, descriptor: dict, files: dict, sha256s: dict) -> dict:
        return {name: {"file": files[want["file"]], "sha256": sha256s[want["file"]], "fingerprint": want["fingerprint"]}
                for name, want in descriptor["volumes"].items()}

    def stage(self, stack, component: VolumesComponent, descriptor: dict, files: dict, sha256s: dict,
              differs: bool = False) -> list[Step]:
        # every archive extracted beside its volume while the set runs; the window renames
        if not differs:
            return []
        return [Step(operations.staged, {"stack": stack, "services": list(component.services),
                                         "volumes": self.archives(descriptor, files, sha256s)}, component.name)]

    def restore(self, stack, component: VolumesComponent, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[Step]:
        milvus = ({"milvus": {**component.milvus, "rows": descriptor["milvus_collections"]}}
                  if component.milvus and descriptor.get("milvus_collections") is not None else {})
        # staged before the window where the plan found it different: stop, rename, start
        return [Step(operations.restored, {"stack": stack, "services": list(component.services),
                                           "volumes": self.archives(descriptor, files, sha256s), "staged": differs,
                                           **milvus},
                     component.name)]

    def keep_displaced(self, stack, component: VolumesComponent, name: str, descriptor: dict, directory: str,
                       **options) -> list:
        return [operations.displaced_archived(name=f"Keep the displaced {component.label}", stack=stack,
                                              services=list(component.services), directory=directory, part=name,
                                              **options)]

    def staging_needs(self, stack, component: VolumesComponent, descriptor: dict) -> list[tuple[str, int]]:
        # each archive extracted beside its volume, as big as the snapshot's fingerprint says
        live = self.volume_set(stack, component, fingerprint=False)
        return [(live[name]["path"], (want.get("fingerprint") or {}).get("bytes", 0))
                for name, want in sorted(descriptor["volumes"].items()) if name in live]

    def displaced_present(self, stack, component: VolumesComponent, descriptor: dict) -> bool:
        return any(volume.get("aside") for volume in self.volume_set(stack, component, fingerprint=False).values())

    def aside_dropped(self, stack, component: VolumesComponent, descriptor: dict, **options) -> list:
        return [operations.aside_dropped(name=f"Drop the displaced {component.label}", stack=stack,
                                         services=list(component.services), **options)]

    def integrity(self, stack, component: VolumesComponent, descriptor: dict, sha256s: dict) -> Probe:
        wanted = wanted_volumes(descriptor, sha256s)
        snapshot_counts = descriptor.get("milvus_collections")

        def read(services: dict) -> Check:
            # the data as the server serves it, not only the files it reads
            row_counts, served = self.served(stack, component, descriptor)
            observed, ok, expected = set_matches(self.volume_set(stack, component), wanted, served)
            if served is not None:
                rows, rows_ok = milvus_rows(row_counts, snapshot_counts)
                observed, ok = f"{observed}; {rows}", ok and rows_ok
                expected = f"{expected}; {rows_text(snapshot_counts)}"
            return Check(4, f"{component.name} fingerprint", observed, f"the snapshot's: {expected}", ok)
        return Probe(read)

    def ping(self, stack, component: VolumesComponent) -> Probe:
        return healthcheck(component.name, list(component.services))

    # components --compose: sets, joined over depends_on and shared volumes

    def proposals(self, services: list[Service], todo: list[str], unclassified: dict[str, str]) -> list[tuple]:
        found = []
        for members in groups([s for s in services if s.engine == self.name], lambda a, b: bool(links(a, b))):
            lead = min(members, key=lambda m: LEADS.index(m.kind))  # the first of its kind
            members = [lead] + [m for m in members if m is not lead]
            if any(m.volumes for m in members):
                found.append((LAYRA_NAMES.get(lead.kind), lead, *proposed_set(members, services)))
                continue
            binds = [b for m in members for b in m.binds]
            unclassified[", ".join(m.name for m in members)] = (
                f"{', '.join(m.origin for m in members)} -> volumes engine, but no named volume to archive"
                + (f" (bind mounts {', '.join(binds)} are not archived)" if binds else
                   " (its data does not outlive the container)"))
        return found


def wanted_volumes(descriptor: dict, sha256s: dict) -> dict[str, tuple[dict, str]]:
    """The snapshot's volumes: name -> (fingerprint, archive sha256)."""
    return {name: (want["fingerprint"], sha256s[want["file"]]) for name, want in descriptor["volumes"].items()}


def set_matches(live: dict, wanted: dict[str, tuple[dict, str]], served: bool | None = None) -> tuple[str, bool, str]:
    """(what the set is, whether every volume is at the snapshot, what the snapshot holds):
    a set that matches through its marker says so instead of showing two counts that differ."""
    how = facts.set_match(live, wanted, served)
    want_files = sum(fingerprint.get("files", 0) for fingerprint, _ in wanted.values())
    expected = f"{counted(len(wanted), 'volume')}, {counted(want_files, 'file')}"
    if "served" in how.values():
        # its server writes on as it runs (Milvus): the files never settle, the server answers
        return (f"{counted(len(wanted), 'volume')} restored from (or archived at) the snapshot; its server has "
                f"written on since", True, f"{expected}, or its archive as restored")
    if all(how.values()) and "settled" in how.values():
        # their services changed them as they started (etcd's WAL): the counts differ, rightly
        settled = [name for name, found in how.items() if found == "settled"]
        files = sum((live[name].get("fingerprint") or {}).get("files", 0) for name in settled)
        return (f"{counted(len(wanted), 'volume')} at the snapshot; {', '.join(settled)} restored from the snapshot's "
                f"archive, unchanged since it settled: {counted(files, 'file')}", True,
                f"{expected}, or its archive as restored")
    files = sum((live.get(name, {}).get("fingerprint") or {}).get("files", 0) for name in wanted)
    observed = f"{counted(len(wanted), 'volume')}, {counted(files, 'file')}" + "".join(
        f", {name} differs" for name, found in how.items() if not found)
    return observed, all(how.values()), expected


def rows_text(counts: dict) -> str:
    """``milvus kb_chunks 200 rows, other 10 rows``."""
    return "milvus " + (", ".join(f"{name} {counted(rows, 'row')}" for name, rows in sorted(counts.items()))
                        or "no collection")


def milvus_rows(live: dict, snapshot_counts: dict) -> tuple[str, bool]:
    """(what Milvus answers, whether its collections hold the snapshot's rows)."""
    if "milvus_collections" not in live:
        return f"milvus rows not read: {live.get('milvus_error', 'no answer')}", False
    counts = live["milvus_collections"]
    return rows_text(counts), counts == snapshot_counts


def size_text(size) -> str:
    if size is None:
        return "?"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


def groups(services: list[Service], joined) -> list[list[Service]]:
    """Connected components of ``services`` under ``joined(a, b)``, in compose order."""
    found, left = [], list(services)
    while left:
        group = [left.pop(0)]
        for member in group:  # grows while it is walked
            near = [other for other in left if joined(member, other)]
            group += near
            left = [other for other in left if other not in near]
        found.append(sorted(group, key=services.index))
    return found


def links(a: Service, b: Service) -> list[str]:
    """Why two services keep one data set: one depends on the other, or they share a volume."""
    return ((["depends_on"] if b.name in a.depends or a.name in b.depends else [])
            + [f"shared volume {v}" for v in sorted(set(a.volumes) & set(b.volumes))])


def proposed_set(members: list[Service], everyone: list[Service]) -> tuple[dict, list[str]]:
    lead, settings, why = members[0], {"engine": "volumes", "services": [m.name for m in members]}, []
    others = [m.name for m in members[1:]]
    joined = sorted({w for a in members for b in members if a is not b for w in links(a, b)})
    volumes = ", ".join(sorted({v for m in members for v in m.volumes}))
    why.append(f"{lead.origin} -> volumes set with {', '.join(others)} ({', '.join(joined)}); volumes {volumes}"
               if others else f"{lead.origin} -> volumes engine; volume {volumes}")
    client = next((s for s in everyone if lead.name in s.depends and any("MILVUS" in k for k in s.env)), None)
    if lead.kind == "milvus" and client:
        settings["milvus"] = {"client_service": client.name, "uri": f"http://{lead.name}:19530"}
        why.append(f"milvus: row counts through {client.name} (depends on {lead.name}, has MILVUS_* settings; "
                   f"it needs pymilvus)")
    return settings, why


ENGINE = Volumes()
