"""
The backup deploy: one snapshot per host of the stack's state and every stateful
component it holds, written as `<id>.partial/` and renamed only once whole.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyinfra import host, logger, state
from pyinfra.api import DeployError, deploy

from facts.capacity import DiskFree
from facts.compose import ComposeServices
from facts.snapshots import (
    SNAPSHOT_ID_RULE,
    SnapshotManifest,
    new_snapshot_id,
    partial_dir,
    valid_snapshot_id,
)
from facts.stack import StackRepo
from operations import snapshots
from operations import stack as stack_ops

from .config import (
    DEFAULTS,
    components_from,
    every_host_reached,
    snapshot_root,
    stack_from,
    with_env_settings,
)
from .engines import Component, engine_of

# Every host of one run shares one snapshot id.
_RUN: dict[str, str] = {}
# Room kept free beyond the estimate (dumps compress, but the filesystem must not fill).
HEADROOM_BYTES = 64 * 1024 * 1024


def snapshot_id_for_run(data) -> str:
    explicit = data.get("snapshot")
    if explicit is not None:
        if not valid_snapshot_id(str(explicit)):
            raise DeployError(f"snapshot id {str(explicit)!r} must be {SNAPSHOT_ID_RULE}")
        return str(explicit)
    if "id" not in _RUN:
        try:
            _RUN["id"] = new_snapshot_id(data.get("label"), datetime.now(timezone.utc))
        except ValueError as error:
            raise DeployError(str(error)) from None
    return _RUN["id"]


def backup_parts(stack, components: list[Component]) -> list[tuple]:
    """(engine, component, part name, part) for every part this host's components dump."""
    return [(engine_of(component), component, name, part)
            for component in components
            for name, part in engine_of(component).parts(stack, component).items()]


def estimated_bytes(stack, parts) -> int:
    """What the dumps may take before compression (data, Redis memory, volume bytes), plus stack files."""
    return 1024 * 1024 + sum(engine.estimate(stack, component, part) for engine, component, _, part in parts)


def stack_metadata(stack) -> dict:
    repo = host.get_fact(StackRepo, stack_dir=stack.dir) or {}
    services = host.get_fact(ComposeServices, stack=stack)
    return {
        **stack.as_data(),
        "commit": repo.get("commit"),
        "dirty": repo.get("dirty", []),
        "images": {name: service["image"] for name, service in services.items()},
        "config_hashes": {name: service["desired_hash"] for name, service in services.items()},
    }


def snapshot_taken(stack, components: list[Component], root: str, snapshot_id: str, label: str):
    """Register the operations that write snapshot ``snapshot_id`` of this host, checked
    against its manifest once complete; nothing when it already exists. Refuses (DeployError)
    when the snapshot root lacks room, before anything runs."""
    if host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id):
        logger.info(f"{host.print_prefix}snapshot {snapshot_id} is already complete: nothing to do")
        return

    parts = backup_parts(stack, components)
    needed = estimated_bytes(stack, parts) + HEADROOM_BYTES
    disk = host.get_fact(DiskFree, path=root)
    free = disk["free_kb"] * 1024
    if free < needed:
        raise DeployError(
            f"{host.name}: a backup needs about {needed / 2**20:.0f} MiB under {root}, "
            f"{free / 2**20:.0f} MiB are free on {disk['mount']}: {(needed - free) / 2**20:.0f} MiB missing"
        )
    logger.info(f"{host.print_prefix}snapshot {snapshot_id}: about {needed / 2**20:.0f} MiB "
                f"({free / 2**20:.0f} MiB free on {disk['mount']})")

    directory = partial_dir(root, snapshot_id)
    steps = [snapshots.started(name=f"Start snapshot {snapshot_id}", root=root, snapshot_id=snapshot_id)]
    # Failures are caught here, not at the first failed step, so the partial snapshot is removed.
    keep_going = {"_ignore_errors": True}
    steps.append(stack_ops.state_saved(name="Save the stack's commit, files and containers",
                                       stack=stack, directory=directory, **keep_going))
    for engine, component, name, part in host.loop(parts):
        steps += engine.dump(stack, component, name, part, directory, **keep_going)

    def failed() -> bool:
        return any(step.did_error() for step in steps)

    snapshots.completed(
        name=f"Complete snapshot {snapshot_id}", root=root, snapshot_id=snapshot_id,
        metadata={"label": label, "host": host.name, "stack": stack_metadata(stack)},
        _if=lambda: not failed(),
    )
    # named for what a green run sees it do: nothing (it only acts after a failed part)
    snapshots.abandoned(name=f"Keep snapshot {snapshot_id} only if every part was written", root=root,
                        snapshot_id=snapshot_id, reason=f"backup {snapshot_id} failed: no snapshot was kept",
                        _if=failed)
    # Read back what was written: a snapshot is only offered as `latest` once verified.
    snapshots.verified(name=f"Verify snapshot {snapshot_id}", root=root, snapshot_id=snapshot_id, pending=True)


@deploy("Back up the Layra stack", data_defaults=DEFAULTS)
def backup():
    every_host_reached(state)
    stack, components = stack_from(host.data), components_from(host.data)
    root, snapshot_id = snapshot_root(host.data), snapshot_id_for_run(host.data)
    snapshot_taken(stack, with_env_settings(stack, components), root, snapshot_id, host.data.get("label") or "")
