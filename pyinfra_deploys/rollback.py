"""
The rollback deploy: bring every host's stack to a known-good commit, then wait for it.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import DeployError, deploy

from facts.compose import ComposeServices, ComposeTargetConfig
from facts.stack import StackRepo, StackTarget, valid_ref
from operations import stack as stack_ops

from .config import DEFAULTS, setting, stack_from
from .plan import PLANS, describe, stack_plan


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


@deploy("Roll back the Layra stack", data_defaults=DEFAULTS)
def rollback():
    stack = stack_from(host.data)
    ref = host.data.get("commit")
    if not ref:
        raise DeployError("rollback.py needs the commit to roll back to: --data commit=<sha|tag>")
    if not isinstance(ref, str) or not valid_ref(ref):
        raise DeployError(f"commit {ref!r} is not a valid git ref (sha, tag or branch)")

    plans = [plan_stack(stack, ref)]
    show_plan(plans)
    refused = [plan["error"] for plan in plans if plan.get("error")]
    if refused:
        # Planning runs on every host before any operation does: a refusal here stops the
        # whole run with no host changed.
        raise DeployError(f"{host.name}: " + "; ".join(refused))

    stack_ops.at_commit(name=f"Stack at {ref}", stack=stack, commit=ref)
    stack_ops.services_ready(
        name="Services running and healthy",
        stack=stack,
        timeout=int(setting(host.data, "layra_ready_timeout")),
    )
