"""
The rollback deploy, as target states in the runbook's order, on every host at once:

stage (while the application serves: each part that differs built beside the live data
and checked against the snapshot) -> maintenance on -> the window: stack at the snapshot's
commit (its recorded images), each part swapped in (in parallel; the live data moved aside,
the displaced copy), caches flushed, verify phase 4 (integrity, writes still blocked) ->
maintenance off -> verify phases 1-3 -> the displaced copies made durable as the safety
snapshot, then dropped -> run record and report.

Everything whose cost grows with the data happens before the window or after it; inside
it, only swaps (and phase 4's reads). An engine that cannot stage yet (Redis from its RDB,
Qdrant through its API, volume sets) restores inside the window, its safety copy dumped
there first, and the plan says so.

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

from facts.capacity import DiskFree
from facts.compose import ComposeServices, ComposeTargetConfig
from facts.gather import side_by_side
from facts.lock import RollbackLock
from facts.snapshots import (
    SNAPSHOT_ID_RULE,
    SnapshotCatalog,
    snapshot_dir,
    valid_snapshot_id,
)
from facts.stack import ImagesPresent, StackRepo, StackTarget, valid_ref
from facts.text import human_size
from operations import lock, maintenance, parallel
from operations import stack as stack_ops

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
    staging_headroom,
    with_env_settings,
    work_wait,
    writes_stop_at_nginx,
)
from .engines import engine_of
from .engines.base import without_credentials
from .engines.mysql_point import parse_until
from .lock import (
    LOCKS,
    lock_refusal,
    lock_to_break,
    maintenance_left_on,
    orphaned_work_waited,
)
from .plan import PLANS, describe, stack_plan
from .record import RUN
from .report import duration, last_window
from .runs import runs_dir
from .safety import SafetySnapshot
from .snapshot import SAFETY_LABEL, chosen_snapshot, load_manifest, restorable_parts
from .verify import integrity_verified, service_verified


def plan_stack(stack, ref: str, images: dict) -> dict:
    repo = host.get_fact(StackRepo, stack_dir=stack.dir)
    target = host.get_fact(StackTarget, stack_dir=stack.dir, ref=ref) if repo else None
    services = host.get_fact(ComposeServices, stack=stack) if repo else {}
    target_config = host.get_fact(ComposeTargetConfig, stack=stack, ref=ref) if target else None
    present = host.get_fact(ImagesPresent, ids=sorted(set(images.values()))) if images else []
    return stack_plan(ref, stack.dir, repo, target, services, target_config, images=images, present=present)


def part_bytes(descriptor: dict, manifest: dict) -> int:
    """What a part's files take in the snapshot (compressed): every ``file`` its descriptor names."""
    names = [descriptor["file"]] if "file" in descriptor else []
    names += [volume["file"] for volume in (descriptor.get("volumes") or {}).values() if "file" in volume]
    return sum((manifest["files"].get(name) or {}).get("size", 0) for name in names)


def window_plan(changed: list[tuple], manifest: dict, stack_moves: bool, caches: bool,
                last: dict | None = None) -> dict:
    """The run's shape for the dry run: what is staged before the maintenance window (its
    size in the snapshot) and what the window holds, in order; and, as a guide to how long
    they take, what the ``last`` rollback of the host took (``report.last_window``)."""
    staged, inside = [], ["maintenance on"] + (["stack"] if stack_moves else [])
    for component, name, part in changed:
        engine = engine_of(component)
        size = human_size(part_bytes(part, manifest))
        if engine.keeps_displaced:  # it stages, and swaps in the window
            staged.append(f"{name} ({size})")
            note = engine.swap_note(component)
            inside.append(f"swap {name}" + (f" ({note})" if note else ""))
        else:
            inside.append(f"restore {name} in place ({size}, its safety copy dumped first: grows with its data)")
    inside += (["caches"] if caches else []) + ["phase 4", "maintenance off"]
    return {"part": None, "component": "window", "engine": None, "changes": False,
            "staged": staged, "inside": inside,
            "summary": (f"staged before it: {', '.join(staged)}; " if staged else "nothing staged; ")
                       + "inside it: " + " -> ".join(inside)
                       + "; after it: the displaced copies kept as the safety snapshot"
                       + last_took(last)}


def staging_room_checked(stack, changed: list[tuple], headroom: int):
    """Refuses (DeployError), before anything is staged, where a filesystem lacks room for
    the copies staged on it beside the live data plus ``headroom`` bytes (a database server
    whose disk fills stops serving), naming how many MiB are missing."""
    mounts: dict[str, dict] = {}
    for component, name, part in changed:
        for path, size in engine_of(component).staging_needs(stack, component, part):
            disk = host.get_fact(DiskFree, path=path)
            entry = mounts.setdefault(disk["mount"], {"bytes": headroom, "free": disk["free_kb"] * 1024,
                                                      "parts": []})
            entry["bytes"] += size
            entry["parts"] += [name] if name not in entry["parts"] else []
    problem = missing_room(mounts)
    if problem:
        raise DeployError(f"{host.name}: {problem}")


def missing_room(mounts: dict[str, dict]) -> str | None:
    """What lacks room, per filesystem: ``{mount: {"bytes": needed, "free": bytes, "parts": [...]}}``."""
    short = [f"staging {', '.join(entry['parts'])} beside the live data needs about {entry['bytes'] / 2**20:.0f} MiB "
             f"on {mount}, {entry['free'] / 2**20:.0f} MiB are free: "
             f"{(entry['bytes'] - entry['free']) / 2**20:.0f} MiB missing"
             for mount, entry in sorted(mounts.items()) if entry["free"] < entry["bytes"]]
    return "; ".join(short) + "; nothing was changed" if short else None


def leftover_safety(earlier: list[tuple], skip_safety: bool, changed: list[tuple]) -> str | None:
    """Where an earlier run died after a swap and left displaced copies aside: the unfinished
    safety snapshot that keeps them (that run's, the newest), else None (a new one).
    Refuses to skip the safety snapshot where this run's swaps would replace those copies."""
    if not earlier:
        return None
    names = ", ".join(name for _, name, _ in earlier)
    replaced = sorted({name for _, name, _ in earlier} & {name for _, name, _ in changed})
    if skip_safety and replaced:
        raise DeployError(f"{host.name}: an earlier run left displaced copies aside ({names}), in no complete "
                          f"snapshot; this run's swaps of {', '.join(replaced)} would replace them: run without "
                          f"safety_snapshot=skip, which keeps them first")
    unfinished = [found for found in host.get_fact(SnapshotCatalog, root=snapshot_root(host.data))["partials"]
                  if found.endswith(f"-{SAFETY_LABEL}-before-rollback")]
    into = f"its unfinished safety snapshot {unfinished[-1]}" if unfinished else "a safety snapshot"
    logger.warning(f"{host.print_prefix}plan: safety: an earlier run left displaced copies aside ({names}): kept "
                   + (f"first into {into}, completed before this run's window (this run's swaps of "
                      f"{', '.join(replaced)} displace newer copies: they go to this run's own safety snapshot)"
                      if replaced else f"first into {into}, which this run completes" if unfinished
                      else "first into this run's safety snapshot"))
    return unfinished[-1] if unfinished else None


def point_wanted(data, wanted) -> dict | None:
    """``--data until=<point>``, parsed (engines.mysql_point), refused from its text alone."""
    if not data.get("until"):
        return None
    if not wanted:
        raise DeployError("until= replays the binlog onto a snapshot: give --data snapshot=<id> with it")
    try:
        return parse_until(data.get("until"))
    except ValueError as error:
        raise DeployError(str(error)) from None


def points_planned(stack, parts: list[tuple], part_plans: dict, until: dict, snapshot_id: str, directory: str,
                   manifest: dict) -> list[tuple]:
    """Each part's replay up to ``until`` in its plan (or its refusal: the plan's error), and
    in its descriptor for the steps. A part at the snapshot changes where the replay has
    writes to bring; one already at the replayed target does not change."""
    planned = []
    for component, name, part in parts:
        plan = part_plans[name]
        replay = engine_of(component).point_in_time(stack, component, {**part, "snapshot_id": snapshot_id}, until,
                                                     directory, manifest.get("created"), plan["changes"])
        if replay is None and plan["changes"]:
            logger.info(f"{host.print_prefix}plan: {plan['component']}: until= does not apply (no log to "
                        f"replay): restored to the snapshot")
        if replay:
            plan["point_in_time"] = replay
            if "error" in replay:
                plan["error"] = replay["error"]
            elif replay.get("at_target"):
                plan["changes"] = False
            elif plan["changes"] or replay["replayed"]["transactions"]:
                plan["changes"] = True
                part = {**part, "point_in_time": replay}
        planned.append((component, name, part))
    return planned


def last_took(last: dict | None) -> str:
    """``; the last rollback here (<run>) staged in 40.0s, its window lasted 18.0s``: what
    its record has of the two, or nothing."""
    took = ([f"staged in {duration(last['staged_s'])}"] if last and last["staged_s"] is not None else []) + \
        ([f"its window lasted {duration(last['window_s'])}"] if last and last["window_s"] is not None else [])
    return f"; the last rollback here ({last['run_id']}) {', '.join(took)}" if took else ""


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
    until = point_wanted(host.data, wanted)
    breaking = lock_to_break(host.data)
    every_host_reached(state)
    components = with_env_settings(stack, components)
    RUN.start(state, "rollback", target={"snapshot": wanted, "commit": ref, **({"until": until["text"]} if until else {})},
              incident=incident_from(host.data))
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

    # the stack, each part and each component's caches: independent reads, side by side.
    # Caches are flushed after the restores: also where Redis was restored from its RDB
    # (its sessions and caches then date from the snapshot).
    # and whether an earlier run that died left displaced copies aside (kept first, below)
    displacing = [(component, name, part) for component, name, part in parts if engine_of(component).keeps_displaced]
    stack_change, *found = side_by_side(
        [lambda: plan_stack(stack, ref, images)]
        + [partial(engine_of(component).plan, stack, component, name, part, sha256s) for component, name, part in parts]
        + [partial(engine_of(component).cache_plan, stack, component) for component in components]
        + [partial(engine_of(component).displaced_present, stack, component, part)
           for component, name, part in displacing]
    )
    found, aside = found[:len(found) - len(displacing)], found[len(found) - len(displacing):]
    earlier = [item for item, present in zip(displacing, aside) if present]
    part_plans = {plan["part"]: plan for plan in found if plan and plan["part"]}
    cache_plans = [plan for plan in found if plan and not plan["part"]]
    for component, name, _ in parts:
        without_credentials(part_plans[name], component)
    for plan in cache_plans:
        without_credentials(plan, next(c for c in components if c.name == plan["component"]))
    if until:
        parts = points_planned(stack, parts, part_plans, until, snapshot_id, directory, manifest)
    # Cache flushes alone do not make a rollback: they follow a change, they do not cause one.
    restores = any(plan["changes"] for plan in part_plans.values())
    changes = stack_change["changes"] or restores
    for plan in cache_plans:
        plan["flushes"] = changes
    plans = [stack_change, *(plan for plan in found if plan)]
    changed = [(component, name, part) for component, name, part in parts if part_plans[name]["changes"]]
    if changed:
        plans.append(window_plan(changed, manifest, stack_change["changes"], bool(cache_plans),
                                 last_window(runs_dir(), host.name)))
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
    RUN.note(host, snapshot=snapshot_id, commit=stack_change.get("target"),
             plan=[line for plan in plans for line in describe(plan)])

    # Taken before the first change, by the runs that change something; a run that
    # fails on a host releases it there at once (LOCKS), one that dies leaves it stale.
    LOCKS.attach(state)
    # (also where only an earlier run's safety snapshot is left to finish)
    locked = (lambda: True) if earlier else RUN.any_changes
    taken = lock.taken(name="Take the rollback lock", stack=stack, holder=LOCKS.holder(RUN.run_id),
                       breaking=breaking, _if=locked)

    staging_room_checked(stack, [(component, name, part) for component, name, part in parts
                                 if part_plans[name]["changes"]], staging_headroom(host.data))
    # the safety snapshot: started before the window with the stack as it is; the parts
    # the window displaces join it after the window, those it cannot displace inside it
    changed_parts = [(component, name, part) for component, name, part in parts if part_plans[name]["changes"]]
    safety = earlier_safety = None
    own_id = f"{RUN.run_id.split('-')[0]}-{SAFETY_LABEL}-before-rollback"  # one id for every host of the run
    earlier_id = leftover_safety(earlier, skip_safety, changed_parts)
    if {name for _, name, _ in earlier} & {name for _, name, _ in changed_parts}:
        # this run's swaps displace parts again whose earlier displaced copy is aside: both
        # are kept, each in its own snapshot (the earlier one completed before the window)
        earlier_safety = SafetySnapshot(stack, snapshot_root(host.data),
                                        earlier_id or f"{own_id.split('-')[0]}-earlier-{SAFETY_LABEL}-before-rollback",
                                        [], earlier)
        RUN.note(host, earlier_safety_snapshot=earlier_safety.id)
        earlier, earlier_id = [], None
    if restores and not skip_safety or earlier:
        RUN.note(host, safety_snapshot=earlier_id or own_id)
        safety = SafetySnapshot(stack, snapshot_root(host.data), earlier_id or own_id, changed_parts, earlier)
    elif restores:
        logger.warning(f"{host.print_prefix}safety_snapshot=skip: NO safety snapshot; this rollback cannot be undone")

    with RUN.phase("stage"):
        if earlier_safety:
            earlier_safety.started()
            earlier_safety.completed([])
        if safety:
            safety.started()
        staged = [engine_of(component).stage(stack, component, part, files, sha256s, differs=True)
                  for component, name, part in changed_parts]
        if any(staged):
            parallel.concurrently(name=f"Stage the parts that differ from {snapshot_id}",
                                  groups=[group for group in staged if group])

    with RUN.phase("maintenance_on"):
        if quiesce:
            # where every write comes through nginx, it stops there at once, the backend
            # not replaced (the window seconds shorter); else the backend's own write block too
            maintenance.mode(name="Maintenance on", stack=stack, enabled=True, **quiesce,
                             at_nginx_only=writes_stop_at_nginx(host.data, quiesce), _if=RUN.any_changes)

    with RUN.phase("safety_in_window"):
        # parts whose engine displaces no copy: dumped before their restore replaces them
        if safety:
            safety.dumped_before_restore([(component, name, part) for component, name, part in changed_parts
                                          if not engine_of(component).keeps_displaced])

    with RUN.phase("stack"):
        stack_ops.at_commit(name=f"Stack at {ref[:12]}", stack=stack, commit=ref, images=images or None,
                            rolling=rolling_from(host.data, quiesce))
        stack_ops.services_ready(name="Services running and healthy", stack=stack,
                                 timeout=ready_timeout(host.data))
        if changes:
            tag = f"rollback-{RUN.run_id.split('-')[0]}"
            RUN.record["tag"] = tag
            stack_ops.tagged(name=f"Tag {tag}", stack=stack, tag=tag, commit=stack_change["target"],
                             message=f"layra-rollback run {RUN.run_id} by {RUN.record['who']}: "
                                     f"stack at {ref}" + (f", data from snapshot {snapshot_id}" if snapshot_id else ""))

    probes = []
    with RUN.phase("restore"):
        if changes:
            # every part, also those that matched when planned: writes may have landed
            # since, until maintenance went on, so those restores check again first. A part
            # the plan found different stays different (only a restore brings it back, and
            # the lock keeps others out): its live fingerprint, a full scan, is not re-read.
            groups = [engine_of(component).restore(stack, component, part, files, sha256s,
                                                   differs=part_plans[name]["changes"])
                      for component, name, part in parts]
            if groups:
                parallel.concurrently(name=f"Restore the components from {snapshot_id}", groups=groups)
            probes = [engine_of(component).integrity(stack, component, part, sha256s) for component, name, part in parts]
        elif parts:
            # nothing to do here: reading every fingerprint again (restores, phase 4) would
            # only repeat what the plan read seconds ago, on a host the run leaves alone
            logger.info(f"{host.print_prefix}every part matched snapshot {snapshot_id} when planned: "
                        "nothing to restore, phase 4 not repeated")

    with RUN.phase("caches"):
        flushed = {plan["component"] for plan in cache_plans}
        for component in host.loop(components):
            if component.name in flushed:
                engine_of(component).caches_flushed(stack, component, _if=RUN.any_changes)

    # Phase 4 while writes are still blocked: no write lands between the restore and its
    # check, and data that fails it is never reopened to writes (maintenance stays on).
    integrity_verified(stack, probes)

    with RUN.phase("maintenance_off"):
        if quiesce:
            maintenance.mode(name="Maintenance off", stack=stack, enabled=False, **quiesce)

    service_verified(stack, components, functional)

    with RUN.phase("safety_snapshot"):
        # the displaced copies made durable, then dropped: the rollback's undo
        if safety:
            safety.completed([(component, name, part) for component, name, part in changed_parts
                              if engine_of(component).keeps_displaced])

    released = lock.released(name="Release the rollback lock", stack=stack, token=LOCKS.token, _if=locked)
    LOCKS.track(host.name, taken, released, stack.dir)
