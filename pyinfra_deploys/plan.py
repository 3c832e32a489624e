"""
The dry-run plan: per host and component, current -> target in concrete numbers,
computed from facts before anything is applied, printed and written as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from facts import mongo
from facts.mysql import same_data, schema_changes
from facts.text import counted, moved
from operations.stack import (
    image_returns,
    off_image,
    stale_services,
    uncommitted,
    unknown_commit,
)

from .record import write_private

OFF_IMAGE = "it runs another image than the one the snapshot recorded"


def stack_plan(ref: str, stack_dir: str, repo: dict | None, target: dict | None, services: dict,
               target_config: dict | None, images: dict | None = None, present=()) -> dict:
    """What moving the stack to ``ref`` changes: commits, rebuilds, recreated services.

    ``images`` are the image ids a snapshot recorded per service (at its own commit) and
    ``present`` those still on the host: the plan's ``images`` says per service whether
    it returns to its recorded image or is rebuilt, as ``stack.at_commit`` does it.
    A plan with an ``error`` cannot be applied; the deploy refuses it before any change.
    """
    plan = {"component": "stack", "ref": ref, "current": (repo or {}).get("commit"),
            "target": (target or {}).get("commit"), "changes": False}
    if repo is None:
        return {**plan, "error": f"{stack_dir} is not a git repository with a commit checked out"}
    if target is None:
        return {**plan, "error": unknown_commit(ref, stack_dir, repo["remotes"], repo.get("commit"))}
    if repo["dirty"]:
        plan["error"] = uncommitted(stack_dir, repo["dirty"])

    changed = target["changed_files"]
    contexts = (target_config or {}).get("build_contexts", {})
    rebuild = sorted(
        name for name, context in contexts.items()
        if any(context in (".", "") or path == context or path.startswith(context.rstrip("/") + "/")
               for path in changed)
    )
    moves = repo["commit"] != target["commit"]
    images, present = images or {}, set(present or ())
    returns = image_returns(images, present, target_config or {}, moves) if images else {}
    if returns:
        back = {name for name, service in returns.items() if service["action"] == "tag"}
        rebuilt = {name for name, service in returns.items() if service["action"] == "rebuild"}
        rebuild = sorted((set(rebuild) - back) | rebuilt)
    hashes = (target_config or {}).get("hashes") or {name: s["desired_hash"] for name, s in services.items()}
    elsewhere = off_image(services, images, present)
    reasons = {}
    for name in hashes:
        service = services.get(name, {})
        if name in rebuild:
            reasons[name] = "rebuilt from the commit"
        elif service.get("state") != "running":
            reasons[name] = f"its container is {service.get('state') or 'missing'}"
        elif name in elsewhere:
            reasons[name] = OFF_IMAGE   # back to its recorded image: image_line says so
        elif service.get("config_hash") != hashes[name]:
            reasons[name] = ("its configuration at the commit differs from the running one's "
                             "(compose file or env file)")
    if not moves:
        reasons.update({name: "its container is stopped or was created from another configuration"
                        for name in stale_services(services) if name not in reasons})
    recreate = sorted(reasons)
    remove = sorted(name for name in services if name not in hashes)
    extra = {"images": returns} if images else {}
    return {
        **plan,
        "subject": target["subject"],
        "undone": target["undone"],
        "added": target["added"],
        "changed_files": changed,
        "rebuild": rebuild,
        "recreate": recreate,
        "recreate_reasons": {name: reasons[name] for name in recreate},
        "remove": remove,
        **extra,
        "changes": moves or bool(recreate or remove),
    }


def mysql_plan(name: str, database: str, live: dict, snapshot: dict) -> dict:
    """Restoring one database: per-table rows current -> snapshot, tables added/dropped."""
    live_tables = live.get("tables", {}) if live.get("exists") else {}
    snap_tables = snapshot.get("tables", {})
    tables = {
        table: [live_tables.get(table, {}).get("rows"), snap_tables.get(table, {}).get("rows")]
        for table in sorted(set(live_tables) | set(snap_tables))
    }
    changed_rows = {
        table: counts for table, counts in tables.items()
        if table in live_tables and table in snap_tables
        and (counts[0] != counts[1] or live_tables[table].get("checksum") != snap_tables[table].get("checksum"))
    }
    added, dropped = sorted(set(snap_tables) - set(live_tables)), sorted(set(live_tables) - set(snap_tables))
    return {
        "component": f"{name}/{database}",
        "engine": "mysql",
        "exists": bool(live.get("exists")),
        "tables_changed": changed_rows,
        "tables_added": added,      # the restore brings them back
        "tables_dropped": dropped,  # the restore moves them aside
        "schema_changed": live.get("schema_sha256") != snapshot.get("schema_sha256"),
        "schema": schema_objects_changed(live, snapshot, set(added) | set(dropped)),
        "changes": not same_data(live, snapshot),
    }


def schema_objects_changed(live: dict, snapshot: dict, whole_tables: set[str]) -> dict | None:
    """The columns, indexes, views, routines, triggers and events a restore adds, drops or
    alters; a table added or dropped whole is named once, as a table, not by its columns."""
    changes = schema_changes(live, snapshot) if live.get("exists") else None
    if changes is None:
        return None

    def own(name: str) -> bool:
        kind, _, rest = name.partition(" ")
        return not (kind in ("column", "index") and rest.rsplit(".", 1)[0] in whole_tables)

    return {what: [name for name in names if own(name)] for what, names in changes.items()}


def mongo_plan(name: str, database: str, live: dict, snapshot: dict) -> dict:
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
        "changes": not mongo.same_data(live, snapshot),
    }


def qdrant_plan(name: str, collection: str, live: dict | None, snapshot: dict) -> dict:
    """Recovering one Qdrant collection: points current -> snapshot, configuration changed or not."""
    return {
        "component": f"{name}/{collection}",
        "engine": "qdrant",
        "exists": live is not None,
        "points": [(live or {}).get("points"), snapshot.get("points")],
        "config_changed": live is not None and live.get("config_sha256") != snapshot.get("config_sha256"),
        "changes": live != snapshot,
    }


def redis_plan(name: str, flush_counts: dict[str, int], live: dict | None = None,
               snapshot: dict | None = None) -> dict:
    """Flushing caches by pattern (how many keys match each), and an RDB restore if any."""
    plan = {"component": name, "engine": "redis", "flush": flush_counts,
            "changes": any(flush_counts.values())}
    if snapshot is not None:
        plan["restore"] = {"dbsize": [(live or {}).get("dbsize"), snapshot.get("dbsize")],
                           "changes": live != snapshot}
        plan["changes"] = plan["changes"] or live != snapshot
    return plan


def volumes_plan(name: str, live: dict, descriptor: dict, matches: dict[str, bool], row_counts: dict) -> dict:
    """Restoring a volume set: per volume changed or not (files, bytes current -> snapshot),
    and Milvus row counts where both sides have them (read only for a set that changes)."""
    volumes = {}
    for volume, want in sorted(descriptor["volumes"].items()):
        current = (live.get(volume) or {}).get("fingerprint") or {}
        volumes[volume] = {"changed": not matches[volume],
                           "files": [current.get("files"), want["fingerprint"].get("files")],
                           "bytes": [current.get("bytes"), want["fingerprint"].get("bytes")]}
    plan = {"component": name, "engine": "volumes", "services": descriptor["services"], "volumes": volumes,
            "changes": not all(matches.values())}
    snapshot_counts = descriptor.get("milvus_collections")
    if snapshot_counts is not None and row_counts:
        live_counts = row_counts["milvus_collections"]
        plan["milvus_collections"] = {c: [live_counts.get(c), snapshot_counts.get(c)]
                                      for c in sorted(set(live_counts) | set(snapshot_counts))}
    return plan


def describe(plan: dict) -> list[str]:
    """Readable lines for one component's plan."""
    lines = describe_engine(plan)
    if plan.get("credentials") is False:
        lines.append(f"  {plan['component']}: no credentials (password_key is null): its client logs in "
                     "without a password")
    return lines


def describe_engine(plan: dict) -> list[str]:
    engine = plan.get("engine")
    if engine == "mysql":
        return describe_mysql(plan)
    if engine == "redis":
        return describe_redis(plan)
    if engine == "volumes":
        return describe_volumes(plan)
    if engine == "mongo":
        return describe_mongo(plan)
    if engine == "qdrant":
        return describe_qdrant(plan)
    if plan["component"] != "stack":
        return [f"{plan['component']}: {plan.get('summary', '')}"]
    current, target = (plan["current"] or "?")[:7], (plan["target"] or "?")[:7]
    if plan.get("error") and not plan.get("target"):
        return [f"stack: {plan['error']}"]
    moves = []
    if plan["undone"]:
        moves.append(f"{len(plan['undone'])} commit{'s' * (len(plan['undone']) != 1)} undone")
    if plan["added"]:
        moves.append(f"{len(plan['added'])} commit{'s' * (len(plan['added']) != 1)} added")
    head = f"stack: commit {current} -> {target}" + (f" ({', '.join(moves)})" if moves else " (same commit)")
    lines = [head]
    lines += [f"  - {c['commit'][:7]} {c['subject']}" for c in plan["undone"]]
    lines += [f"  + {c['commit'][:7]} {c['subject']}" for c in plan["added"]]
    if plan.get("error"):
        lines.append(f"  refused: {plan['error']}")
    lines.append(f"  rebuild: {', '.join(plan['rebuild']) or 'nothing'}")
    lines.append(f"  recreate: {', '.join(plan['recreate']) or 'nothing'}")
    if plan["remove"]:
        lines.append(f"  remove: {', '.join(plan['remove'])}")
    # why each service is recreated, and where its image comes from where that is news
    reasons, images = plan.get("recreate_reasons", {}), plan.get("images", {})
    moving = set(plan["recreate"]) | set(plan["rebuild"])
    for service in sorted(moving | set(images)):
        reason, back = reasons.get(service), images.get(service)
        if back and (reason == OFF_IMAGE or back["action"] != "tag"):
            lines.append(f"  {service}: {image_line(back)}")
        elif reason and service not in plan["rebuild"]:   # a rebuild says why already
            on = f" (on its recorded image {back['recorded'][:19]}, no rebuild)" if back else ""
            lines.append(f"  {service}: recreated: {reason}{on}")
    if images and not moving & set(images):
        lines.append(f"  images: all {len(images)} services on the ids the snapshot recorded")
    if not plan["changes"]:
        lines.append("  no change: the stack is already there")
    return lines


def image_line(back: dict) -> str:
    """Where one service's image comes from, given what the snapshot recorded."""
    recorded = back["recorded"][:19]   # sha256: and 12 hex digits, as docker shows ids
    if back["action"] == "tag":
        return f"back to image {recorded} (recorded in the snapshot; no rebuild)"
    why = (f"recorded image {recorded} is gone" if back["reason"] == "gone"
           else f"its image name {back['image']} cannot be pinned to the recorded {recorded}")
    if back["action"] == "rebuild":
        return f"rebuilt from the commit ({why})"
    return f"image {back['image']} as the commit names it ({why})"


def describe_mysql(plan: dict) -> list[str]:
    head = f"{plan['component']}: "
    if not plan["changes"]:
        return [head + "no change: already matches the snapshot"]
    lines = [head + ("restore from the snapshot" if plan["exists"] else "create from the snapshot (no live database)")]
    lines += [f"  {table}: {moved(*counts, 'row')}" + (" (same count, other content)" if counts[0] == counts[1] else "")
              for table, counts in plan["tables_changed"].items()]
    lines += [f"  table {table} added" for table in plan["tables_added"]]
    lines += [f"  table {table} dropped (kept in the __pre_restore database)" for table in plan["tables_dropped"]]
    schema = plan.get("schema")
    if schema:
        lines += [f"  {name} added" for name in schema["added"]]
        lines += [f"  {name} dropped" for name in schema["dropped"]]
        lines += [f"  {name} altered (back to the snapshot's definition)" for name in schema["altered"]]
    if not plan["schema_changed"]:
        lines.append("  schema unchanged")
    elif schema is None:
        lines.append("  schema changed (the snapshot predates per-object fingerprints: which objects, not known)")
    return lines


def describe_redis(plan: dict) -> list[str]:
    lines = []
    restore = plan.get("restore")
    if restore:
        lines.append(f"{plan['component']}: " + (f"restore RDB, {moved(*restore['dbsize'], 'key')}" if restore["changes"]
                                                 else "RDB already matches the snapshot"))
    # caches are flushed after a change, not for their own sake: only when the run changes something
    flushes = plan.get("flushes", True)
    for pattern, count in plan["flush"].items():
        lines.append(f"{plan['component']}: {counted(count, 'key')} match{'es' * (count == 1)} {pattern}"
                     + ((" (flush)" if flushes else " (left alone: the run changes nothing here)") if count else ""))
    return lines or [f"{plan['component']}: nothing to do"]


def describe_mongo(plan: dict) -> list[str]:
    head = f"{plan['component']}: "
    if not plan["changes"]:
        return [head + "no change: already matches the snapshot"]
    lines = [head + ("restore from the snapshot" if plan["exists"] else "create from the snapshot (no live database)")]
    lines += [f"  {collection}: {moved(*counts, 'document')}" + (" (same count, other content)" if counts[0] == counts[1] else "")
              for collection, counts in plan["collections_changed"].items()]
    lines += [f"  collection {c} added" for c in plan["collections_added"]]
    lines += [f"  collection {c} dropped (kept in the __pre_restore database)" for c in plan["collections_dropped"]]
    return lines


def describe_qdrant(plan: dict) -> list[str]:
    head = f"{plan['component']}: "
    if not plan["changes"]:
        return [head + "no change: already matches the snapshot"]
    current, target = plan["points"]
    if not plan["exists"]:
        return [head + f"create from the snapshot (no live collection), {counted(target, 'point')}"]
    return [head + f"recover from the snapshot, {moved(current, target, 'point')}"
            + (" (same count, other content)" if current == target and not plan["config_changed"] else "")
            + (", configuration changed" if plan["config_changed"] else "")]


def describe_volumes(plan: dict) -> list[str]:
    head = f"{plan['component']} ({', '.join(plan['services'])}): "
    if not plan["changes"]:
        return [head + "no change: every volume matches the snapshot"]
    lines = [head + "stop together, restore, start"]
    for volume, change in plan["volumes"].items():
        (files, want_files), (size, want_size) = change["files"], change["bytes"]
        lines.append(f"  volume {volume}: " + (f"{moved(files, want_files, 'file')}, {size_text(size)} -> {size_text(want_size)}"
                                               if change["changed"] else "unchanged"))
    for collection, (current, want) in plan.get("milvus_collections", {}).items():
        lines.append(f"  milvus {collection}: {moved(current, want, 'row')}")
    return lines


def size_text(size) -> str:
    if size is None:
        return "?"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


class PlanFile:
    """Collects each host's plan and rewrites one JSON file as hosts are planned."""

    def __init__(self):
        self.hosts: dict[str, list[dict]] = {}

    def add(self, host_name: str, plans: list[dict], path: str | None):
        self.hosts[host_name] = plans
        if path:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_private(target, json.dumps({"hosts": self.hosts}, indent=2, sort_keys=True) + "\n")


PLANS = PlanFile()
