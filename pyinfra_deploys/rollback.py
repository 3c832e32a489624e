"""
The rollback deploy: bring every host's stack to a known-good commit and, given a
snapshot, its databases to the snapshot's content; flush caches; verify integrity.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import DeployError, deploy

from facts.compose import ComposeServices, ComposeTargetConfig
from facts.redis import RedisKeyCounts
from facts.snapshots import SnapshotCatalog, SnapshotFiles, SnapshotManifest, snapshot_dir, valid_snapshot_id
from facts.stack import StackRepo, StackTarget, valid_ref
from operations import checks, redis
from operations.snapshots import snapshot_problems
from operations import stack as stack_ops

from .config import DEFAULTS, components_from, setting, snapshot_root, stack_from
from .engines import ENGINES, redis_args
from .plan import PLANS, describe, redis_plan, stack_plan


def plan_stack(stack, ref: str) -> dict:
    repo = host.get_fact(StackRepo, stack_dir=stack.dir)
    target = host.get_fact(StackTarget, stack_dir=stack.dir, ref=ref) if repo else None
    services = host.get_fact(ComposeServices, stack=stack) if repo else {}
    target_config = host.get_fact(ComposeTargetConfig, stack=stack, ref=ref) if target else None
    return stack_plan(ref, stack.dir, repo, target, services, target_config)


def show_plan(plans: list[dict]):
    for plan in plans:
        for line in describe(plan):
            logger.info(f"{host.print_prefix}plan: {line}")
    PLANS.add(host.name, plans, host.data.get("plan_out"))


def load_manifest(root: str, snapshot_id: str) -> dict:
    """The snapshot's manifest, once every file is checked against it; refused otherwise."""
    if not valid_snapshot_id(snapshot_id):
        raise DeployError(f"snapshot id {snapshot_id!r} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}")
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


def restorable_parts(manifest: dict, components: list[dict]) -> list[tuple[dict, dict]]:
    """(component settings, part descriptor) for each part of the snapshot this host holds."""
    by_name = {component["name"]: component for component in components}
    parts = []
    for name, part in sorted(manifest.get("parts", {}).items()):
        component = by_name.get(part.get("component"))
        if component is None or component["engine"] != part.get("engine"):
            logger.info(f"{host.print_prefix}snapshot part {name} is not a component of this host: skipped")
            continue
        parts.append((component, part))
    return parts


@deploy("Roll back the Layra stack", data_defaults=DEFAULTS)
def rollback():
    stack = stack_from(host.data)
    components = components_from(host.data)
    snapshot_id = host.data.get("snapshot")
    ref = host.data.get("commit")
    if not snapshot_id and not ref:
        raise DeployError("rollback.py needs a snapshot and/or a commit: --data snapshot=<id> "
                          "(stack at the snapshot's commit) or --data commit=<sha|tag>")

    manifest, parts, files, sha256s = None, [], {}, {}
    if snapshot_id:
        root = snapshot_root(host.data)
        manifest = load_manifest(root, str(snapshot_id))
        parts = restorable_parts(manifest, components)
        directory = snapshot_dir(root, str(snapshot_id))
        files = {name: f"{directory}/{name}" for name in manifest["files"]}
        sha256s = {name: entry["sha256"] for name, entry in manifest["files"].items()}
        ref = ref or manifest["stack"]["commit"]
    if not isinstance(ref, str) or not valid_ref(ref):
        raise DeployError(f"commit {ref!r} is not a valid git ref (sha, tag or branch)")

    plans = [plan_stack(stack, ref)]
    plans += [ENGINES[part["engine"]].plan(stack, component, part, sha256s) for component, part in parts]
    restored = {component["name"] for component, _ in parts}
    caches = [c for c in components if c["engine"] == "redis" and c["name"] not in restored and c.get("flush_patterns")]
    for component in caches:
        counts = host.get_fact(RedisKeyCounts, stack=stack, patterns=component["flush_patterns"],
                               **redis_args(component))
        plans.append(redis_plan(component["name"], counts))
    show_plan(plans)
    refused = [plan["error"] for plan in plans if plan.get("error")]
    if refused:
        # Planning runs on every host before any operation does: a refusal here stops the
        # whole run with no host changed.
        raise DeployError(f"{host.name}: " + "; ".join(refused))

    # Every file was checked against the manifest while planning (load_manifest), and each
    # restore checks its own file again right before loading it: no third pass here.
    stack_ops.at_commit(name=f"Stack at {ref}", stack=stack, commit=ref)
    stack_ops.services_ready(name="Services running and healthy", stack=stack,
                             timeout=int(setting(host.data, "layra_ready_timeout")))

    expected = [ENGINES[part["engine"]].restore(stack, component, part, files, sha256s)
                for component, part in parts]
    for component in caches:
        redis.caches_flushed(name=f"Flush {component['name']} caches", stack=stack,
                             patterns=component["flush_patterns"], **redis_args(component))

    if expected:
        checks.integrity(name="Verify phase 4: integrity", stack=stack, expected=expected)
