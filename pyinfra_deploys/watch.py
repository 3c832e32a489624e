"""
The watcher: poll the metrics, follow the rules (triggers.py), decide, act.

Shared by `layra-rollback watch` / `triggers check` (hosts reached through pyinfra's API)
and migrate.py's watch window (the deploy's own hosts). Acting means running the rollback
deploy as its own pyinfra process, with the incident's times passed in, so its run record
and report show detection, decision, execution and verification as they happened.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from facts.metrics import HostMetrics

from .config import metrics_args
from .sources import http_health, prometheus_value
from .triggers import (FIRING, NO_DATA, OK, PENDING, Decision, RuleSet, Tracker, Verdict, decide,
                       status_line)

PROJECT = Path(__file__).resolve().parent.parent
STACK = "stack"   # the subject of Prometheus and HTTP rules


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


# --- sampling ---------------------------------------------------------------------

def host_values(metrics: dict | None, has_kafka: bool) -> dict[str, tuple[float | None, str]]:
    """Host metrics as rule values, ``{metric: (value, detail)}``; None is a missing sample."""
    if metrics is None:
        values = {name: (None, "host did not answer") for name in ("health_failed", "container_memory_pct",
                                                                    "disk_free_pct")}
        return {**values, **({"kafka_lag": (None, "host did not answer")} if has_kafka else {})}
    health = metrics.get("health") or {}
    status = health.get("status")
    values = {"health_failed": (None, "") if status is None
              else (0.0 if 200 <= status < 300 else 1.0, f"HTTP {status}" if status else "no answer")}
    memory = {k: v for k, v in (metrics.get("memory_pct") or {}).items() if v is not None}
    worst = max(memory, key=memory.get) if memory else None
    values["container_memory_pct"] = (memory[worst], worst) if worst else (None, "")
    disks = {k: v for k, v in (metrics.get("disk_free_pct") or {}).items() if v is not None}
    fullest = min(disks, key=disks.get) if disks else None
    values["disk_free_pct"] = (disks[fullest], fullest) if fullest else (None, "")
    if has_kafka:
        values["kafka_lag"] = (metrics.get("kafka_lag"), "")
    return values


def http_value(url: str) -> tuple[float, str]:
    answer = http_health(url)
    status = answer["status"]
    return (0.0 if 200 <= status < 300 else 1.0), (f"HTTP {status}" if status else "no answer")


@dataclass
class Sampler:
    """One poll of every rule: host rules per host (one HostMetrics round trip each),
    HTTP and Prometheus rules once, from here."""

    ruleset: RuleSet
    hosts: list                                       # pyinfra Host objects, connected
    fetch: Callable = None                            # host -> HostMetrics dict (tests replace it)

    def host_metrics(self, host) -> dict | None:
        if self.fetch is not None:
            return self.fetch(host)
        try:
            if not host.connected:
                host.connect(raise_exceptions=True)
            return host.get_fact(HostMetrics, **metrics_args(host.data))
        except Exception:  # noqa: BLE001 - an unreachable host is a missing sample, not a crash
            return None

    def sample(self) -> tuple[dict, dict]:
        samples, details = {}, {}
        host_rules = [rule for rule in self.ruleset.rules if rule.source == "host"]
        if host_rules:
            for host in self.hosts:
                has_kafka = bool(metrics_args(host.data).get("kafka"))
                values = host_values(self.host_metrics(host), has_kafka)
                for rule in host_rules:
                    if rule.metric in values:
                        samples[(rule.name, host.name)], details[(rule.name, host.name)] = values[rule.metric]
        for rule in self.ruleset.rules:
            if rule.source == "http":
                samples[(rule.name, STACK)], details[(rule.name, STACK)] = http_value(rule.url)
            elif rule.source == "prometheus" and self.ruleset.prometheus_url:
                samples[(rule.name, STACK)] = prometheus_value(self.ruleset.prometheus_url, rule.query,
                                                               token_env=self.ruleset.prometheus_token_env)
        return samples, details

    def off(self) -> list[str]:
        """Rules that cannot be evaluated here, with the reason."""
        lines = []
        if not self.ruleset.prometheus_url:
            names = [rule.name for rule in self.ruleset.rules if rule.source == "prometheus"]
            if names:
                lines.append(f"off (no prometheus.url in the rules): {', '.join(names)}")
        if any(rule.metric == "kafka_lag" for rule in self.ruleset.rules):
            without = [host.name for host in self.hosts if not metrics_args(host.data).get("kafka")]
            if without:
                lines.append(f"off (no layra_kafka in host data): kafka-lag on {', '.join(without)}")
        return lines


# --- alerts -----------------------------------------------------------------------

@dataclass
class Alerts:
    """Where alerts go besides the terminal: a webhook (JSON POST) and/or a command (JSON on
    its stdin). A failing hook is reported and never stops the watcher."""

    webhook: str | None = None
    command: list[str] | None = None
    echo: Callable[[str], None] = print

    def send(self, event: dict):
        body = json.dumps(event, sort_keys=True)
        if self.webhook:
            import urllib.request
            request = urllib.request.Request(self.webhook, data=body.encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
            except Exception as error:  # noqa: BLE001
                self.echo(f"!!! alert webhook failed: {error}")
        if self.command:
            try:
                done = subprocess.run(self.command, input=body, text=True, capture_output=True, timeout=30)
                if done.returncode:
                    self.echo(f"!!! alert command exited {done.returncode}: {done.stderr.strip()[-200:]}")
            except (OSError, subprocess.TimeoutExpired) as error:
                self.echo(f"!!! alert command failed: {error}")


def alert_event(kind: str, verdict: Verdict | None = None, **extra) -> dict:
    event = {"event": kind, "at": iso(time.time()), **extra}
    if verdict is not None:
        rule = verdict.rule
        event.update(rule=rule.name, severity=rule.severity, action=rule.action, subject=verdict.subject,
                     condition=f"{rule.op} {rule.threshold:g}", duration=rule.duration, metric=rule.metric,
                     value=verdict.value, detail=verdict.detail,
                     since=iso(verdict.since) if verdict.since is not None else None)
    return event


# --- acting -----------------------------------------------------------------------

def trigger_text(verdict: Verdict, how: str) -> str:
    rule = verdict.rule
    value = "" if verdict.value is None else f" = {verdict.value:g}"
    return (f"{how}: rule {rule.name} ({rule.metric} {rule.op} {rule.threshold:g}, {rule.duration}) "
            f"on {verdict.subject}{value}")


# The line every run prints last (record.print_summary): how we find the record it wrote.
RUN_LINE = re.compile(r"^--> Run (\S+) (?:succeeded|failed): record (\S+)$")


@dataclass
class RollbackCommand:
    """`pyinfra -y INVENTORY rollback.py --data snapshot=...` with the incident's times."""

    inventory: str
    snapshot: str
    limit: tuple[str, ...] = ()
    echo: Callable[[str], None] = print

    def argv(self, incident: dict) -> list[str]:
        command = [sys.executable, "-m", "pyinfra", "-y"]
        for pattern in self.limit:
            command += ["--limit", pattern]
        command += [self.inventory, str(PROJECT / "rollback.py"), "--data", f"snapshot={self.snapshot}"]
        for key, value in incident.items():
            command += ["--data", f"{key}={value}"]
        return command

    def run(self, incident: dict) -> tuple[int, dict | None]:
        """Runs it with its output on ours; returns its exit status and run record."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
        record_path = None
        # pyinfra logs on stderr: passed through line by line, its run line picked out
        with subprocess.Popen(self.argv(incident), env=env, stderr=subprocess.PIPE, text=True) as process:
            for line in process.stderr:
                sys.stderr.write(line)
                match = RUN_LINE.match(line.strip())
                if match:
                    record_path = Path(match.group(2))
        record = json.loads(record_path.read_text()) if record_path and record_path.exists() else None
        return process.returncode, record


# --- the loop ---------------------------------------------------------------------

@dataclass
class Outcome:
    decision: Decision
    rolled_back: bool = False
    rollback_status: int | None = None
    record: dict | None = None
    trigger: str = ""


@dataclass
class Watcher:
    sampler: Sampler
    alerts: Alerts
    rollback: RollbackCommand | None      # None: never act (dry run, triggers check)
    echo: Callable[[str], None] = print
    dry_run: bool = False
    decisions: object = None               # a readable stream for HIGH decisions (stdin), or None
    log_path: Path | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    tracker: Tracker = field(init=False)
    alerted: set = field(default_factory=set)
    last_states: dict = field(default_factory=dict)
    polls: int = 0
    last_verdicts: list = field(default_factory=list)
    sampled_at: float = 0.0

    def __post_init__(self):
        self.tracker = Tracker(self.sampler.ruleset.rules)
        self.detected_at: dict = {}      # (rule, subject) -> when it fired

    def log(self, entry: dict):
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a") as stream:
            stream.write(json.dumps(entry, sort_keys=True) + "\n")

    def poll(self) -> list[Verdict]:
        samples, details = self.sampler.sample()
        now = self.clock()
        verdicts = self.tracker.observe(now, samples, details)
        self.polls += 1
        self.last_verdicts, self.sampled_at = verdicts, now
        self.show(now, verdicts)
        self.log({"at": iso(now), "verdicts": [
            {"rule": v.rule.name, "subject": v.subject, "state": v.state, "value": v.value} for v in verdicts]})
        return verdicts

    def show(self, now: float, verdicts: list[Verdict]):
        states = {(v.rule.name, v.subject): v.state for v in verdicts}
        clock = datetime.fromtimestamp(now, timezone.utc).strftime("%H:%M:%S")
        if self.polls == 1 or states != self.last_states or any(v.state in (PENDING, FIRING) for v in verdicts):
            self.echo(f"--- {clock} poll {self.polls}")
            for verdict in sorted(verdicts, key=lambda v: (v.rule.name, v.subject)):
                self.echo(f"  {status_line(verdict)}")
            if self.polls == 1:
                for line in self.sampler.off():
                    self.echo(f"  {line}")
        else:
            counts = {state: sum(1 for v in verdicts if v.state == state) for state in (OK, NO_DATA)}
            self.echo(f"--- {clock} poll {self.polls}: all {len(verdicts)} ok"
                      if counts[OK] == len(verdicts) else
                      f"--- {clock} poll {self.polls}: {counts[OK]} ok, {counts[NO_DATA]} no data")
        self.last_states = states

    def alert_new(self, decision: Decision, verdicts: list[Verdict]):
        """Alert once per firing (and once per silent source); forget what resolved."""
        active = {(v.rule.name, v.subject) for v in decision.firing} | {("no-data", v.rule.name, v.subject)
                                                                         for v in decision.no_data}
        for verdict in decision.firing:
            key = (verdict.rule.name, verdict.subject)
            if key not in self.alerted:
                self.echo(f"!!! {verdict.rule.severity} {verdict.rule.action}: {trigger_text(verdict, 'firing')}")
                self.alerts.send(alert_event("firing", verdict, dry_run=self.dry_run))
        for verdict in decision.no_data:
            key = ("no-data", verdict.rule.name, verdict.subject)
            if key not in self.alerted:
                self.echo(f"!!! NO DATA: {verdict.rule.name} on {verdict.subject}: "
                          f"{verdict.missing} samples in a row missing (a missing sample is not a pass)")
                self.alerts.send(alert_event("no_data", verdict))
        for key in self.alerted - active:
            if len(key) == 2:
                self.alerts.send({"event": "resolved", "at": iso(self.clock()), "rule": key[0], "subject": key[1]})
        self.alerted = active

    def operator_says(self) -> str | None:
        """'rollback' or 'dismiss' typed on the decision stream, if a line is waiting."""
        if self.decisions is None:
            return None
        try:
            ready, _, _ = select.select([self.decisions], [], [], 0)
        except (ValueError, OSError):
            return None
        if not ready:
            return None
        line = self.decisions.readline()
        if not line:
            self.decisions = None   # closed: no one will answer
            return None
        return line.strip().lower() or None

    def act(self, verdict: Verdict, how: str, decided_at: float) -> Outcome:
        incident = {"incident_started_at": iso(verdict.since if verdict.since is not None else decided_at),
                    "detected_at": iso(self.detected_at.get((verdict.rule.name, verdict.subject), decided_at)),
                    "decided_at": iso(decided_at), "trigger": trigger_text(verdict, how)}
        decision = decide([verdict])
        if self.rollback is None or self.dry_run:
            if self.rollback is not None:
                self.echo(f"DRY RUN: would roll back now: pyinfra {' '.join(self.rollback.argv(incident)[3:])}")
            self.log({"at": iso(decided_at), "decision": "rollback", "dry_run": True, **incident})
            return Outcome(decision, trigger=incident["trigger"])
        self.echo(f"==> Rolling back ({incident['trigger']})")
        self.alerts.send(alert_event("rollback_started", verdict, snapshot=self.rollback.snapshot, **incident))
        self.log({"at": iso(decided_at), "decision": "rollback", **incident})
        status, record = self.rollback.run(incident)
        run = record.get("run_id") if record else None
        result = record.get("status") if record else "no run record"
        self.echo(f"==> Rollback {'finished' if status == 0 else 'FAILED'}: run {run} {result}")
        self.alerts.send(alert_event("rollback_finished", verdict, exit_status=status, run=run, status=result))
        self.log({"at": iso(self.clock()), "rollback_exit": status, "run": run, "status": result})
        return Outcome(decision, True, status, record, incident["trigger"])

    def run(self, until: float | None = None, polls: int | None = None) -> Outcome:
        """Poll until a rollback ran (or would have: dry run), the deadline or the poll count."""
        waiting: Verdict | None = None   # a HIGH firing, waiting for a person
        acted: set = set()
        interval = self.sampler.ruleset.poll_interval
        decision = Decision("NONE", None)
        while True:
            started = self.clock()
            verdicts = self.poll()
            for verdict in verdicts:
                if verdict.fired_now:
                    self.detected_at[(verdict.rule.name, verdict.subject)] = self.sampled_at
            decision = decide(verdicts)
            self.alert_new(decision, verdicts)
            critical = [v for v in decision.firing if v.rule.severity == "CRITICAL"
                        and (v.rule.name, v.subject) not in acted]
            if critical:
                outcome = self.act(critical[0], "automatic", self.clock())
                if outcome.rolled_back:
                    return outcome
                acted.add((critical[0].rule.name, critical[0].subject))
            high = [v for v in decision.firing if v.rule.severity == "HIGH"]
            if high and waiting is None and (high[0].rule.name, high[0].subject) not in acted:
                waiting = high[0]
                self.echo(f"??? {waiting.rule.name} on {waiting.subject} (HIGH: assess, roll back if no fix). "
                          + ("Type `rollback` and Enter to roll back now, `dismiss` to acknowledge."
                             if self.decisions is not None else "Decide, then run rollback.py yourself."))
                self.alerts.send(alert_event("decision_needed", waiting))
            answer = self.operator_says() if waiting is not None else None
            if answer == "rollback":
                outcome = self.act(waiting, "operator decision after", self.clock())
                if outcome.rolled_back:
                    return outcome
                acted.add((waiting.rule.name, waiting.subject))
                waiting = None
            elif answer == "dismiss":
                self.echo(f"--- {waiting.rule.name} on {waiting.subject}: dismissed, still watching")
                self.log({"at": iso(self.clock()), "decision": "dismiss", "rule": waiting.rule.name})
                acted.add((waiting.rule.name, waiting.subject))
                waiting = None
            elif answer:
                self.echo(f"--- unknown answer {answer!r}: type `rollback` or `dismiss`")
            if waiting is not None and not any((v.rule.name, v.subject) == (waiting.rule.name, waiting.subject)
                                               for v in decision.firing):
                self.echo(f"--- {waiting.rule.name} on {waiting.subject} resolved by itself")
                waiting = None
            for verdict in verdicts:   # a resolved rule may act again when it fires again
                if verdict.state == OK:
                    acted.discard((verdict.rule.name, verdict.subject))
            if polls is not None and self.polls >= polls:
                return Outcome(decision)
            if until is not None and self.clock() + interval > until:
                return Outcome(decision)
            self.sleep(max(0.0, interval - (self.clock() - started)))
