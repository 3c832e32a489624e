"""
`layra-rollback watch` and `layra-rollback triggers ...`: the rules against live hosts.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import sys
import time
from pathlib import Path

import click

from facts.snapshots import SNAPSHOT_ID_RULE, SnapshotCatalog, valid_snapshot_id

from ..config import metrics_args, snapshot_root
from ..pyinfra_run import loaded_inventory
from ..runs import runs_dir, utc_now
from ..snapshot import latest_snapshot
from ..triggers import (
    EXIT_CODES,
    NO_DATA_EXIT,
    RuleError,
    default_rules_text,
    load_rules,
    seconds,
    status_line,
    valid_webhook,
)
from ..watch import Alerts, RollbackCommand, Sampler, Watcher

RULES_HELP = "Rules file merged over the defaults by rule name (see `layra-rollback triggers defaults`)."


def connected_hosts(inventory: str, limit: tuple[str, ...]):
    """The inventory's hosts (those matching ``limit``: host or group names, globs), connected
    through pyinfra's API. Hosts that cannot be reached are kept: their samples are missing."""
    from pyinfra.api import Config
    from pyinfra.api.connect import connect_all
    from pyinfra.api.exceptions import DeployError, PyinfraError
    from pyinfra.context import ctx_config, ctx_inventory, ctx_state


    try:
        state, inventory_object = loaded_inventory(inventory)
    except BaseException as error:  # the inventory file's own SystemExit or errors
        raise click.ClickException(f"cannot load the inventory {inventory}: {error}") from None
    config = Config()
    ctx_state.set(state)
    ctx_config.set(config)
    ctx_inventory.set(inventory_object)
    hosts = list(inventory_object)
    if limit:
        groups = {name for pattern in limit for name in inventory_object.groups if fnmatch.fnmatch(name, pattern)}
        hosts = [host for host in hosts if any(fnmatch.fnmatch(host.name, p) for p in limit)
                 or set(host.groups) & groups]
        if not hosts:
            raise click.ClickException(f"--limit {' '.join(limit)} matches no host of {inventory}")
    for host in hosts:  # what each poll reads from host data: refused before any connection
        try:
            metrics_args(host.data)
        except DeployError as error:
            raise click.ClickException(f"{host.name}: {error}") from None
    state.init(inventory_object, config, initial_limit=hosts)
    try:
        connect_all(state)
    except PyinfraError as error:
        raise click.ClickException(f"cannot reach any host of {inventory}: {error}") from None
    unreachable = [host.name for host in hosts if not host.connected]
    if unreachable:
        click.echo(f"!!! not reachable now (their samples are missing until they answer): {', '.join(unreachable)}")
    return state, hosts


def rules_or_fail(rules_file: Path | None, interval: str | None):
    try:
        ruleset = load_rules(rules_file)
        if interval:
            ruleset.poll_interval = seconds(interval, "--interval")
            if not 0 < ruleset.poll_interval <= 3600:
                raise RuleError(f"--interval must be between 1s and 1h, got {interval!r}")
    except RuleError as error:
        raise click.ClickException(str(error)) from None
    if not ruleset.rules:
        raise click.ClickException("every rule is turned off: nothing to watch")
    return ruleset


def rollback_targets(hosts, wanted: str) -> dict[str, str | None]:
    """What `rollback.py --data snapshot=<wanted>` would restore on each host, read now
    (None: the host has no such snapshot, or could not be asked)."""
    from pyinfra.api.facts import get_fact

    targets = {}
    for host in hosts:
        catalog = get_fact(host.state, host, SnapshotCatalog, kwargs={"root": snapshot_root(host.data),
                                                                      "_ignore_errors": True},
                           apply_failed_hosts=False) if host.connected else None
        if not catalog:
            targets[host.name] = None
            continue
        targets[host.name] = latest_snapshot(catalog) if wanted == "latest" else \
            (wanted if wanted in catalog.get("snapshots", {}) else None)
    return targets


def pinned_snapshot(hosts, wanted: str, dry_run: bool) -> str:
    """The snapshot id the watcher will roll back to, fixed now: `latest` resolved once, so
    a backup taken after the bad release is never what a rollback restores."""
    targets = rollback_targets(hosts, wanted)
    for name, target in sorted(targets.items()):
        click.echo(f"--> {name}: rollback target {target or 'NONE'}")
    unreachable = sorted(host.name for host in hosts if not host.connected)
    missing = sorted(name for name, target in targets.items() if target is None and name not in unreachable)
    chosen = sorted({target for target in targets.values() if target})
    problem = None
    if unreachable:
        problem = f"{', '.join(unreachable)} cannot be reached now: its rollback target is unknown"
    elif missing:
        problem = (f"no snapshot {wanted!r} to roll back to on {', '.join(missing)}: take one (backup.py) "
                   "or name another with --snapshot")
    elif len(chosen) > 1:
        problem = (f"--snapshot latest is not the same snapshot on every host ({', '.join(chosen)}): "
                   "name the one to roll back to with --snapshot")
    if problem and not dry_run:
        raise click.ClickException(problem)
    if problem:
        click.echo(f"!!! {problem} (dry run: watching anyway)")
    return chosen[0] if len(chosen) == 1 else wanted


def alerts_from(ruleset, hook_url: str | None, hook_command: str | None) -> Alerts:
    if hook_url and not valid_webhook(hook_url):
        raise click.ClickException(f"--hook-url must be an http(s):// URL, got {hook_url!r}")
    command = shlex.split(hook_command) if hook_command else ruleset.alerts.get("command")
    if command is not None and not (isinstance(command, list) and all(isinstance(a, str) for a in command)):
        raise click.ClickException(f"alerts.command must be a list of strings, got {command!r}")
    return Alerts(webhook=hook_url or ruleset.alerts.get("webhook"), command=command, echo=click.echo)


@click.command("watch")
@click.option("--inventory", "-i", required=True, metavar="FILE", help="The pyinfra inventory, e.g. inventories/prod.py.")
@click.option("--snapshot", default="latest", show_default=True,
              help="What to roll back to: a snapshot id, or latest (newest verified, not a safety snapshot), "
                   "resolved once at the start and the same on every host.")
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=RULES_HELP)
@click.option("--interval", metavar="DURATION", help="Poll every DURATION (10s, 1m); default: the rules' poll_interval.")
@click.option("--limit", multiple=True, metavar="PATTERN", help="Only these hosts or groups (glob; repeatable).")
@click.option("--dry-run", is_flag=True, help="Decide and print, never act (no rollback, nothing changes on a host).")
@click.option("--hook-url", metavar="URL", help="POST every alert as JSON to URL (a chat or paging webhook).")
@click.option("--hook-command", metavar="COMMAND", help="Run COMMAND for every alert, the alert's JSON on its stdin.")
@click.option("--duration", metavar="DURATION", help="Stop watching after DURATION (default: until a rollback).")
def watch(inventory, snapshot, rules_file, interval, limit, dry_run, hook_url, hook_command, duration):
    """Watch the rules; roll back by itself when a CRITICAL one holds.

    \b
    Every poll samples each host over SSH (health URL, container memory, disk
    free, Kafka lag where layra_kafka is set: one round trip per host) and,
    when the rules name a prometheus.url, each Prometheus query. It prints a
    status line per rule and host while anything is pending or firing, and
    a one-line heartbeat otherwise.

    \b
    CRITICAL (ROLLBACK) held for its duration: runs
      pyinfra INVENTORY rollback.py --data snapshot=SNAPSHOT
    with the incident's start, detection and decision times, so its run
    record and report show the true RTO; its verify phases 1-4 follow the
    restore. The watcher then exits with the rollback's status.
    HIGH (INVESTIGATE): alerts and waits; type `rollback` + Enter to roll
    back now, `dismiss` to acknowledge.  MEDIUM (MONITOR): alerts only.

    \b
    Rule semantics: a condition must hold for its whole duration; one pass
    ends the streak; a missing sample is not a pass (it keeps the streak,
    never fires a rule; 3 in a row alert as NO DATA and restart a streak
    that has not fired). A host that stops answering is a missing sample
    and is reconnected; Ctrl-C stops the watcher, never a running rollback.
    Alerts go to the terminal, --hook-url and --hook-command (JSON events:
    firing, no_data, decision_needed, rollback_started, rollback_finished,
    resolved). A log of every poll: RUNS/<time>-watch/events.jsonl.
    """
    if snapshot != "latest" and not valid_snapshot_id(snapshot):
        raise click.BadParameter(f"{snapshot!r} is not a snapshot id: it must be {SNAPSHOT_ID_RULE}, or latest",
                                 param_hint="--snapshot")
    ruleset = rules_or_fail(rules_file, interval)
    alerts = alerts_from(ruleset, hook_url, hook_command)
    _, hosts = connected_hosts(inventory, limit)
    snapshot = pinned_snapshot(hosts, snapshot, dry_run)
    log_path = runs_dir() / f"{utc_now().strftime('%Y%m%dT%H%M%SZ')}-watch" / "events.jsonl"
    click.echo(f"--> Watching {len(ruleset.rules)} rules on {len(hosts)} host(s) every {ruleset.poll_interval:g}s"
               + (" (DRY RUN: decides, never acts)" if dry_run else "") + f"; log {log_path}")
    interactive = sys.stdin is not None and not sys.stdin.closed
    watcher = Watcher(Sampler(ruleset, hosts), alerts,
                      RollbackCommand(inventory, snapshot, tuple(sorted(host.name for host in hosts)),
                                      echo=click.echo),
                      echo=click.echo, dry_run=dry_run, decisions=sys.stdin if interactive else None,
                      log_path=log_path)
    try:
        until = time.time() + seconds(duration, "--duration") if duration else None
    except RuleError as error:
        raise click.ClickException(str(error)) from None
    try:
        outcome = watcher.run(until=until)
    except KeyboardInterrupt:
        click.echo("--> Stopped by the operator")
        sys.exit(130)
    if outcome.rolled_back:
        record = outcome.record or {}
        click.echo(f"--> Rolled back: run {record.get('run_id')} {record.get('status')}; "
                   f"report: layra-rollback report {record.get('run_id') or 'latest'}")
        sys.exit(0 if outcome.rollback_status == 0 and record.get("status") == "succeeded" else 1)
    click.echo(f"--> Watch ended after {watcher.polls} polls: {outcome.decision.action}")


@click.group("triggers")
def triggers():
    """The trigger rules: their defaults, and a one-off check against live metrics."""


@triggers.command("defaults")
def show_defaults():
    """Print the default rules (the runbook's tables) as YAML, to start a rules file from."""
    click.echo(default_rules_text(), nl=False)


@triggers.command("list")
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=RULES_HELP)
def list_rules(rules_file):
    """Print the rules in effect (defaults merged with --rules), one per line."""
    ruleset = rules_or_fail(rules_file, None)
    for rule in ruleset.rules:
        where = rule.url if rule.source == "http" else rule.source
        click.echo(f"{rule.severity:<8} {rule.action:<11} {rule.name:<24} {rule.condition} ({rule.duration}) [{where}]")
    click.echo(f"poll every {ruleset.poll_interval:g}s; prometheus: {ruleset.prometheus_url or 'none (its rules are off)'}")


@triggers.command("check")
@click.option("--inventory", "-i", required=True, metavar="FILE", help="The pyinfra inventory, e.g. inventories/prod.py.")
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=RULES_HELP)
@click.option("--limit", multiple=True, metavar="PATTERN", help="Only these hosts or groups (glob; repeatable).")
@click.option("--samples", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Take this many samples, --interval apart (durations can only be proven over several).")
@click.option("--interval", metavar="DURATION", help="Between samples (default: the rules' poll_interval).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts and the decision as JSON.")
def check(inventory, rules_file, limit, samples, interval, as_json):
    """Evaluate the rules now and print the decision matrix's outcome. Never acts.

    \b
    Exit status (for cron and CI):
      0  nothing firing            3  MONITOR (a MEDIUM rule fires)
      4  INVESTIGATE (HIGH fires)  5  ROLLBACK (a CRITICAL rule fires)
      6  nothing firing, but some rule got no sample (not a pass)
      1  error (rules, inventory)  2  usage
    With one sample, a rule with a duration can only be pending: it fires
    once its condition has held for the duration, so pass --samples with
    --interval to prove it (e.g. --samples 7 --interval 10s for 1m).
    """
    ruleset = rules_or_fail(rules_file, interval)
    _, hosts = connected_hosts(inventory, limit)
    quiet = lambda line: None  # noqa: E731 - the table below says it all, once
    watcher = Watcher(Sampler(ruleset, hosts), Alerts(echo=quiet), None, echo=quiet, dry_run=True)
    outcome = watcher.run(polls=samples)
    verdicts = watcher.last_verdicts
    decision = outcome.decision
    if as_json:
        click.echo(json.dumps({"decision": decision.action, "severity": decision.severity,
                               "exit_code": decision.exit_code,
                               "verdicts": [{"rule": v.rule.name, "subject": v.subject, "state": v.state,
                                             "value": v.value, "severity": v.rule.severity,
                                             "progress": v.progress, "detail": v.detail} for v in verdicts]},
                              indent=2))
    else:
        for verdict in sorted(verdicts, key=lambda v: (v.rule.name, v.subject)):
            click.echo(status_line(verdict))
        for line in watcher.sampler.off():
            click.echo(line)
        firing = ", ".join(f"{v.rule.name} on {v.subject}" for v in decision.firing) or "none firing"
        click.echo(f"decision: {decision.action}" + (f" ({decision.severity}: {firing})" if decision.severity
                                                     else f" ({firing})"))
    blind = [v for v in verdicts if v.value is None]
    if decision.action == "NONE" and blind:
        click.echo(f"no data: {', '.join(sorted({f'{v.rule.name} on {v.subject}' for v in blind}))} "
                   "(a missing sample is not a pass)", err=as_json)
        sys.exit(NO_DATA_EXIT)
    sys.exit(EXIT_CODES[decision.action])
