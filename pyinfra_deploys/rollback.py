"""
The rollback deploy, as target states in the runbook's order, on every host at once:

maintenance on -> safety snapshot -> stack at the snapshot's commit (its recorded images)
-> components restored from the snapshot (in parallel) -> caches flushed -> verify phase 4
(integrity, while writes are still blocked) -> maintenance off -> verify phases 1-3 -> run
record and report.

pyinfra runs each operation on every host before the next one, so each step is a barrier
across hosts. Everything is planned, and refused if it cannot be applied, before the
first change; a host unreachable at the start stops the run everywhere. Before the first
change the run takes each host's rollback lock (``pyinfra_deploys.lock``). A host whose
plan changes nothing gets no safety snapshot, no restore step and no tag (its fingerprints
are read once, by the plan); when no host changes anything,
no lock is taken and maintenance is never switched on: the second run is a no-op.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from pyinfra import host, logger, state
from pyinfra.api import DeployError, deploy

from facts.compose import ComposeServices, ComposeTargetConfig
from facts.gather import side_by_side
from facts.lock import RollbackLock
from facts.redis import RedisKeyCounts
from facts.snapshots import (
    SNAPSHOT_ID_RULE,
    SnapshotCatalog,
    SnapshotFiles,
    SnapshotManifest,
    snapshot_dir,
    valid_snapshot_id,
)
from facts.stack import ImagesPresent, StackRepo, StackTarget, valid_ref
from operations import lock, maintenance, parallel, redis
from operations import stack as stack_ops
from operations.snapshots import by_age, snapshot_problems

from .backup import snapshot_taken
from .config import (
    DEFAULTS,
    components_from,
    every_host_reached,
    functional_checks_from,
    maintenance_from,
    ready_timeout,
    rolling_from,
    snapshot_root,
    stack_from,
    work_wait,
)
from .engines import ENGINES, redis_args, without_credentials
from .lock import (
    LOCKS,
    lock_refusal,
    lock_to_break,
    maintenance_left_on,
    orphaned_work_waited,
)
from .plan import PLANS, describe, redis_plan, stack_plan
from .record import RUN
from .verify import integrity_verified, service_verified

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


def plan_stack(stack, ref: str, images: dict) -> dict:
    repo = host.get_fact(StackRepo, stack_dir=stack.dir)
    target = host.get_fact(StackTarget, stack_dir=stack.dir, ref=ref) if repo else None
    services = host.get_fact(ComposeServices, stack=stack) if repo else {}
    target_config = host.get_fact(ComposeTargetConfig, stack=stack, ref=ref) if target else None
    present = host.get_fact(ImagesPresent, ids=sorted(set(images.values()))) if images else []
    return stack_plan(ref, stack.dir, repo, target, services, target_config, images=images, present=present)


def cache_plan(stack, component: dict) -> dict:
    args = redis_args(component)
    counts = host.get_fact(RedisKeyCounts, stack=stack, patterns=component["flush_patterns"], **args)
    return without_credentials(redis_plan(component["name"], counts), args)


def incident_from(data) -> dict:
    """Times the operator (or the watcher) passes: ``--data detected_at=2026-11-21T12:58:00Z``."""
    incident = {}
    for key in ("started_at", "detected_at", "decided_at"):
        value = data.get(f"incident_{key}" if key == "started_at" else key)
        if value:
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise DeployError(f"--data {key}={value!r} must be an ISO 8601 UTC time, e.g. 2026-11-21T12:58:00Z")
            incident[key] = str(value)
    if data.get("trigger"):
        incident["trigger"] = str(data.get("trigger"))[:200]
    return incident


def lift_command() -> str:
    inventory = RUN.record.get("inventory") or "INVENTORY"
    return f"pyinfra {inventory} maintenance.py --data maintenance=off --limit {host.name}"


@deploy("Roll back the Layra stack", data_defaults=DEFAULTS)
def rollback():
    stack = stack_from(host.data)
    components = components_from(host.data)
    quiesce = maintenance_from(host.data)
    functional = functional_checks_from(host.data)
    wanted, ref = host.data.get("snapshot"), host.data.get("commit")
    if not wanted and not ref:
        raise DeployError("rollback.py needs a snapshot and/or a commit: --data snapshot=<id|latest> "
                          "(stack at the snapshot's commit) or --data commit=<sha|tag>")
    # what can be refused from its text is refused before anything is read from a host
    if wanted and str(wanted) != "latest" and not valid_snapshot_id(str(wanted)):
        raise DeployError(f"snapshot id {str(wanted)!r} must be {SNAPSHOT_ID_RULE} (or 'latest')")
    if ref and (not isinstance(ref, str) or not valid_ref(ref)):
        raise DeployError(f"commit {ref!r} is not a valid git ref (sha, tag or branch)")
    skip_safety = str(host.data.get("safety_snapshot", "")).lower() == "skip"
    breaking = lock_to_break(host.data)
    every_host_reached(state)
    RUN.start(state, "rollback", target={"snapshot": wanted, "commit": ref}, incident=incident_from(host.data))
    holder = host.get_fact(RollbackLock, stack_dir=stack.dir)
    refusal = lock_refusal(stack.dir, holder, breaking)
    if refusal:
        raise DeployError(f"{host.name}: {refusal}{maintenance_left_on(stack, quiesce, lift_command())}")
    if breaking and holder:
        logger.warning(f"{host.print_prefix}breaking the stale lock of run {breaking} "
                       f"(by {holder.get('who')} since {holder.get('since')})")
    orphaned_work_waited(stack.dir, work_wait(host.data))

    manifest, snapshot_id, parts, files, sha256s, images = None, None, [], {}, {}, {}
    if wanted:
        root = snapshot_root(host.data)
        snapshot_id = chosen_snapshot(root, str(wanted))
        manifest = load_manifest(root, snapshot_id)
        parts = restorable_parts(manifest, components)
        directory = snapshot_dir(root, snapshot_id)
        files = {name: f"{directory}/{name}" for name in manifest["files"]}
        sha256s = {name: entry["sha256"] for name, entry in manifest["files"].items()}
        if not ref:
            # the snapshot's own commit: its services return to the images it recorded
            ref, images = manifest["stack"]["commit"], manifest["stack"].get("images") or {}
    if not isinstance(ref, str) or not valid_ref(ref):
        raise DeployError(f"commit {ref!r} is not a valid git ref (sha, tag or branch)")

    # Cache patterns are flushed after the restores: also where Redis was restored from its
    # RDB (its sessions and caches then date from the snapshot).
    caches = [c for c in components if c["engine"] == "redis" and c.get("flush_patterns")]
    # the stack, each part and each cache: independent reads, side by side
    plans = side_by_side(
        [lambda: plan_stack(stack, ref, images)]
        + [partial(ENGINES[part["engine"]].plan, stack, component, part, sha256s) for component, part in parts]
        + [partial(cache_plan, stack, component) for component in caches]
    )
    # Cache flushes alone do not make a rollback: they follow a change, they do not cause one.
    restores = any(plan["changes"] for plan in plans[1:1 + len(parts)])
    changes = plans[0]["changes"] or restores
    for plan in plans[1 + len(parts):]:
        plan["flushes"] = changes
    for plan in plans:
        for line in describe(plan):
            logger.info(f"{host.print_prefix}plan: {line}")
    PLANS.add(host.name, plans, host.data.get("plan_out"))
    refused = [plan["error"] for plan in plans if plan.get("error")]
    if refused:
        # Planning runs on every host before any operation does: a refusal here stops the
        # whole run with no host changed.
        raise DeployError(f"{host.name}: " + "; ".join(refused))
    RUN.changes[host.name] = changes
    RUN.lift[host.name] = lift_command()
    RUN.note(host, snapshot=snapshot_id, commit=plans[0].get("target"),
             plan=[line for plan in plans for line in describe(plan)])

    # Taken before the first change, by the runs that change something; a run that
    # fails on a host releases it there at once (LOCKS), one that dies leaves it stale.
    LOCKS.attach(state)
    taken = lock.taken(name="Take the rollback lock", stack=stack, holder=LOCKS.holder(RUN.run_id),
                       breaking=breaking, _if=RUN.any_changes)

    with RUN.phase("maintenance_on"):
        if quiesce:
            maintenance.mode(name="Maintenance on", stack=stack, enabled=True, **quiesce, _if=RUN.any_changes)

    with RUN.phase("safety_snapshot"):
        # before any data is replaced: a rollback that only moves code destroys nothing
        if restores and not skip_safety:
            # one id for every host of the run; undo the rollback with --data snapshot=<it>
            safety_id = f"{RUN.run_id.split('-')[0]}-{SAFETY_LABEL}-before-rollback"
            RUN.note(host, safety_snapshot=safety_id)
            snapshot_taken(stack, components, snapshot_root(host.data), safety_id, f"{SAFETY_LABEL}-before-rollback")
        elif restores:
            logger.warning(f"{host.print_prefix}safety_snapshot=skip: NO safety snapshot; this rollback cannot be undone")

    with RUN.phase("stack"):
        stack_ops.at_commit(name=f"Stack at {ref[:12]}", stack=stack, commit=ref, images=images or None,
                            rolling=rolling_from(host.data, quiesce))
        stack_ops.services_ready(name="Services running and healthy", stack=stack,
                                 timeout=ready_timeout(host.data))
        if changes:
            tag = f"rollback-{RUN.run_id.split('-')[0]}"
            RUN.record["tag"] = tag
            stack_ops.tagged(name=f"Tag {tag}", stack=stack, tag=tag, commit=plans[0]["target"],
                             message=f"layra-rollback run {RUN.run_id} by {RUN.record['who']}: "
                                     f"stack at {ref}" + (f", data from snapshot {snapshot_id}" if snapshot_id else ""))

    expected = []
    with RUN.phase("restore"):
        if changes:
            # every part, also those that matched when planned: writes may have landed
            # since, until maintenance went on, so those restores check again first. A part
            # the plan found different stays different (only a restore brings it back, and
            # the lock keeps others out): its live fingerprint, a full scan, is not re-read.
            groups = [ENGINES[part["engine"]].restore(stack, component, part, files, sha256s, differs=plan["changes"])
                      for (component, part), plan in zip(parts, plans[1:1 + len(parts)])]
            if groups:
                parallel.concurrently(name=f"Restore the components from {snapshot_id}", groups=groups)
            expected = [ENGINES[part["engine"]].expected(component, part, sha256s) for component, part in parts]
        elif parts:
            # nothing to do here: reading every fingerprint again (restores, phase 4) would
            # only repeat what the plan read seconds ago, on a host the run leaves alone
            logger.info(f"{host.print_prefix}every part matched snapshot {snapshot_id} when planned: "
                        "nothing to restore, phase 4 not repeated")

    with RUN.phase("caches"):
        for component in caches:
            redis.caches_flushed(name=f"Flush {component['name']} caches", stack=stack,
                                 patterns=component["flush_patterns"], **redis_args(component),
                                 _if=RUN.any_changes)

    # Phase 4 while writes are still blocked: no write lands between the restore and its
    # check, and data that fails it is never reopened to writes (maintenance stays on).
    integrity_verified(stack, expected)

    with RUN.phase("maintenance_off"):
        if quiesce:
            maintenance.mode(name="Maintenance off", stack=stack, enabled=False, **quiesce)

    service_verified(stack, components, functional)
    released = lock.released(name="Release the rollback lock", stack=stack, token=LOCKS.token, _if=RUN.any_changes)
    LOCKS.track(host.name, taken, released, stack.dir)
