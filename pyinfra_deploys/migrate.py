"""
The guarded release (the runbook's migration retry procedure, automated):

pre-migration snapshot, verified -> the stack at the new commit -> watch the trigger rules
for a window -> when the release could not be deployed, or a CRITICAL rule held, roll back
to that snapshot by itself (rollback.py, its own run and record), verified.

The watch runs once for the whole run, not per host: the first host to reach it watches
every host, the others wait for its outcome. A rollback then covers every host of the run.
"""

from __future__ import annotations

import sys
import time

from gevent.lock import BoundedSemaphore
from pyinfra import host, logger, state
from pyinfra.api import DeployError, deploy
from pyinfra.operations import python

from facts.stack import StackRepo, StackTarget, valid_ref
from operations import checks
from operations import stack as stack_ops
from operations.stack import uncommitted, unknown_commit

from .backup import snapshot_taken
from .config import (
    DEFAULTS,
    components_from,
    maintenance_from,
    ready_timeout,
    rolling_from,
    snapshot_root,
    stack_from,
    with_env_settings,
)
from .engines import engine_of
from .record import RUN
from .runs import VALUE_OPTIONS
from .triggers import Decision, RuleError, load_rules, seconds
from .watch import Alerts, Outcome, RollbackCommand, Sampler, Watcher, iso

PRE_MIGRATION = "pre-migration"


class Guard:
    """The run's one watch window, shared by every host's last operation."""

    def __init__(self):
        self.lock = BoundedSemaphore()
        self.deployed: dict[str, list] = {}   # host -> its release operations
        self.result = None                     # held, rolled back, rollback failed, not released, watch failed
        self.settings: dict = {}

    def failed_release(self) -> list[str]:
        return sorted(name for name, ops in self.deployed.items()
                      if any(op.is_complete() and op.did_error() for op in ops))

    def watch(self):
        with self.lock:   # the first host watches; the others wait here for its outcome
            if self.result is None:
                try:
                    self.result = self.run_watch()
                except Exception as error:   # never watched twice, never a second rollback
                    self.result = "watch failed"
                    print(f"!!! the watch failed: {type(error).__name__}: {error}; nothing was rolled back. "
                          f"Roll back by hand if needed: rollback.py --data snapshot={self.settings['snapshot']}")
                RUN.record["release_outcome"] = self.result

    def red(self) -> bool:
        return self.result != "held"

    def run_watch(self) -> str:
        settings = self.settings
        commit, snapshot_id = settings["commit"], settings["snapshot"]
        if state.failed_hosts:
            print(f"==> Release {commit} not shipped: {', '.join(sorted(h.name for h in state.failed_hosts))} "
                  "failed before it (no pre-migration snapshot there); nothing to watch or roll back")
            return "not released"
        hosts = [h for h in state.inventory if h in state.activated_hosts]
        ruleset = settings["rules"]
        alerts = Alerts(**settings["alerts"], echo=print)
        rollback = RollbackCommand(RUN.record.get("inventory") or "", snapshot_id,
                                   limit=tuple(sorted(h.name for h in hosts)), options=parent_options())
        watcher = Watcher(Sampler(ruleset, hosts), alerts, rollback, echo=print)
        failed = self.failed_release()
        if failed:
            # The release did not come up: no window to wait for, the decision is made.
            now = watcher.clock()
            trigger = f"automatic: release {commit} failed to deploy on {', '.join(failed)}"
            print(f"==> {trigger}: rolling back to {snapshot_id}")
            alerts.send({"event": "rollback_started", "at": iso(now), "severity": "CRITICAL",
                         "rule": "release-failed", "subject": ", ".join(failed), "snapshot": snapshot_id})
            status, record = rollback.run({"incident_started_at": iso(settings["released_at"] or now),
                                           "detected_at": iso(now), "decided_at": iso(now), "trigger": trigger})
            alerts.flush()
            outcome = Outcome(Decision("ROLLBACK", "CRITICAL"), True, status, record, trigger)
        else:
            print(f"==> Watching {len(ruleset.rules)} rules on {len(hosts)} host(s) for "
                  f"{settings['window']:g}s after release {commit}")
            outcome = watcher.run(until=watcher.clock() + settings["window"])
        if not outcome.rolled_back:
            if outcome.unproven:
                RUN.record["unproven"] = list(outcome.unproven)
                print(f"!!! at the window's end these CRITICAL rules were not proven clear: "
                      f"{'; '.join(outcome.unproven)}")
            print(f"==> Release {commit} held for {settings['window']:g}s: no CRITICAL rule fired "
                  f"(last decision: {outcome.decision.action})")
            return "held"
        record = outcome.record or {}
        RUN.record["rollback_run"] = record.get("run_id")
        RUN.record["incident"]["trigger"] = outcome.trigger
        verified = outcome.rollback_status == 0 and record.get("status") == "succeeded"
        print(f"==> Release {commit} rolled back to snapshot {snapshot_id} ({outcome.trigger}): rollback run "
              f"{record.get('run_id') or '(no record)'} {record.get('status') or 'FAILED'}"
              + ("" if verified else f": roll back by hand: rollback.py --data snapshot={snapshot_id}"))
        return "rolled back" if verified else "rollback failed"


# Our own --data keys: the rollback a guarded release runs does not take them.
OWN_DATA = ("commit", "watch_window", "watch_interval", "rules", "hook_url")


def parent_options() -> tuple[str, ...]:
    """This run's pyinfra options (connection, --data overrides), for the rollback it runs:
    it must reach the hosts the same way and see the same host data."""
    options, arguments = [], iter(sys.argv[1:])
    for argument in arguments:
        if argument in VALUE_OPTIONS and argument != "--limit":
            value = next(arguments, "")
            if argument == "--data" and value.split("=", 1)[0] in OWN_DATA:
                continue
            options += [argument, value]
        elif argument in ("--sudo", "--use-sudo-password", "--use-sudo-login"):
            options.append(argument)
    return tuple(options)


GUARD = Guard()


def guard_settings(data) -> dict:
    commit = data.get("commit")
    if not isinstance(commit, str) or not valid_ref(commit):
        raise DeployError(f"migrate.py needs --data commit=<sha|tag> (a valid git ref), got {commit!r}")
    try:
        window = seconds(data.get("watch_window", 300), "--data watch_window")
        ruleset = load_rules(data.get("rules") or None)
        if data.get("watch_interval"):
            ruleset.poll_interval = seconds(data.get("watch_interval"), "--data watch_interval") or 10.0
    except RuleError as error:
        raise DeployError(str(error)) from None
    alerts = {"webhook": data.get("hook_url") or ruleset.alerts.get("webhook"),
              "command": ruleset.alerts.get("command")}
    return {"commit": commit, "window": window, "rules": ruleset, "alerts": alerts, "released_at": None}


@deploy("Guarded release of the Layra stack", data_defaults=DEFAULTS)
def migrate():
    stack = stack_from(host.data)
    components = components_from(host.data)
    quiesce = maintenance_from(host.data)
    root = snapshot_root(host.data)
    if not GUARD.settings:
        GUARD.settings = guard_settings(host.data)
    commit = GUARD.settings["commit"]
    components = with_env_settings(stack, components)
    RUN.start(state, "migrate", target={"commit": commit, "watch_window": GUARD.settings["window"]},
              incident={"trigger": "none"})
    # one id for every host of the run: the rollback restores it everywhere
    snapshot_id = GUARD.settings.setdefault("snapshot", f"{RUN.run_id.split('-')[0]}-{PRE_MIGRATION}")
    RUN.record["pre_migration_snapshot"] = snapshot_id
    RUN.note(host, snapshot=snapshot_id, commit=commit)
    released_commit(stack, commit)

    with RUN.phase("pre_migration_snapshot"):
        snapshot_taken(stack, components, root, snapshot_id, PRE_MIGRATION)

    with RUN.phase("release"):
        timeout = ready_timeout(host.data)
        # the incident starts with the release: a migration can damage data as it starts
        python.call(name="Note the release time", function=released, _if=nothing_failed)
        # where a point-in-time rollback of this release replays up to (until=migration)
        for component in host.loop(components):
            engine_of(component).release_point_saved(stack, component, _if=nothing_failed)
        # A failed release is not the end of the run: the watch rolls it back.
        GUARD.deployed[host.name] = [
            stack_ops.at_commit(name=f"Release {commit}", stack=stack, commit=commit,
                                rolling=rolling_from(host.data, quiesce),
                                _ignore_errors=True, _if=nothing_failed),
            stack_ops.services_ready(name="Services running and healthy", stack=stack, timeout=timeout,
                                     _ignore_errors=True, _if=nothing_failed),
        ]

    with RUN.phase("watch"):
        python.call(name=f"Watch the trigger rules for {GUARD.settings['window']:g}s, roll back on CRITICAL",
                    function=GUARD.watch)
        # the run ends red unless the release held
        checks.failed(name=f"Judge release {commit} by the watch", _if=GUARD.red,
                      message=f"release {commit} did not hold (pre-migration snapshot {snapshot_id}): "
                              "the watch's lines above say why, and name the rollback run")
    logger.info(f"{host.print_prefix}pre-migration snapshot {snapshot_id}; release {commit}; "
                f"watch {GUARD.settings['window']:g}s")


def released_commit(stack, commit: str):
    """Refuse, before any snapshot is taken, a commit the host cannot check out (what
    ``at_commit`` refuses too, only once the release has begun)."""
    repo = host.get_fact(StackRepo, stack_dir=stack.dir)
    if repo is None:
        raise DeployError(f"{host.name}: {stack.dir} is not a git repository with a commit checked out")
    if not host.get_fact(StackTarget, stack_dir=stack.dir, ref=commit):
        raise DeployError(f"{host.name}: {unknown_commit(commit, stack.dir, repo['remotes'], repo['commit'])}")
    if repo["dirty"]:
        raise DeployError(f"{host.name}: {uncommitted(stack.dir, repo['dirty'])}")


def nothing_failed() -> bool:
    """A host that failed before the release (its pre-migration snapshot) stops it everywhere."""
    return not state.failed_hosts


def released():
    GUARD.settings["released_at"] = GUARD.settings["released_at"] or time.time()
