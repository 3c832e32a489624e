"""
The dry-run plan: per host and component, current -> target in concrete numbers,
computed from facts before anything is applied, printed and written as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from operations.stack import (
    image_returns,
    off_image,
    stale_services,
    uncommitted,
    unknown_commit,
)

from .engines import ENGINES
from .runs import write_private

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


def describe(plan: dict) -> list[str]:
    """Readable lines for one component's plan."""
    lines = describe_engine(plan)
    if plan.get("credentials") is False:
        lines.append(f"  {plan['component']}: no credentials (password_key is null): its client logs in "
                     "without a password")
    return lines


def describe_engine(plan: dict) -> list[str]:
    if plan.get("engine") in ENGINES:
        return ENGINES[plan["engine"]].describe(plan)
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
