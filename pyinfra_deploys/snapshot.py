"""
The snapshot a run restores (rollback) or checks against (verify): ``latest`` resolved to
the newest verified one, its manifest read and every file checked against it (refused
before anything changes otherwise), and its parts matched to the host's components.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import DeployError

from facts.snapshots import (
    SNAPSHOT_ID_RULE,
    SnapshotCatalog,
    SnapshotFiles,
    SnapshotManifest,
    snapshot_dir,
    valid_snapshot_id,
)
from operations.snapshots import by_age, snapshot_problems

from .engines import Component

SAFETY_LABEL = "safety"


def latest_snapshot(catalog: dict) -> str | None:
    """The newest verified snapshot that is not a safety snapshot (those hold a bad state)."""
    snapshots = catalog.get("snapshots", {})
    for snapshot_id in reversed(by_age(snapshots)):
        entry = snapshots[snapshot_id]
        if entry.get("verified_at") and not (entry.get("label") or "").startswith(SAFETY_LABEL):
            return snapshot_id
    return None


def chosen_snapshot(root: str, wanted: str) -> str:
    if wanted != "latest":
        if not valid_snapshot_id(wanted):
            raise DeployError(f"snapshot id {wanted!r} must be {SNAPSHOT_ID_RULE} (or 'latest')")
        return wanted
    catalog = host.get_fact(SnapshotCatalog, root=root)
    chosen = latest_snapshot(catalog)
    if chosen is None:
        raise DeployError(f"{host.name}: snapshot=latest, but no verified snapshot under {root} "
                          f"({len(catalog.get('snapshots', {}))} complete, none verified outside safety snapshots): "
                          "verify one with `layra-rollback snapshots verify`")
    logger.info(f"{host.print_prefix}snapshot=latest: {chosen}")
    return chosen


def load_manifest(root: str, snapshot_id: str) -> dict:
    """The snapshot's manifest, once every file is checked against it; refused otherwise."""
    manifest = host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id)
    if not manifest:
        known = sorted(host.get_fact(SnapshotCatalog, root=root).get("snapshots", {}))
        raise DeployError(
            f"{host.name}: no snapshot {snapshot_id!r} under {root}"
            + (f" (this host has: {', '.join(known[-5:])})" if known else " (this host has none)")
        )
    files = host.get_fact(SnapshotFiles, directory=snapshot_dir(root, snapshot_id))
    problems = snapshot_problems(snapshot_id, manifest, files) if files else ["its directory is unreadable"]
    if problems:
        raise DeployError(f"{host.name}: snapshot {snapshot_id} fails its checksums, nothing was restored: "
                          + "; ".join(problems))
    return manifest


def restorable_parts(manifest: dict, components: list[Component]) -> list[tuple[Component, str, dict]]:
    """(component, part name, part descriptor) for each part of the snapshot this host holds."""
    by_name = {component.name: component for component in components}
    parts = []
    for name, part in sorted(manifest.get("parts", {}).items()):
        component = by_name.get(part.get("component"))
        if component is None or component.engine != part.get("engine"):
            logger.info(f"{host.print_prefix}snapshot part {name} is not a component of this host: skipped")
            continue
        parts.append((component, name, part))
    return parts
