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
import queue
import select
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pyinfra.api.facts import get_fact

from facts.metrics import HostMetrics

from .config import metrics_args
from .pyinfra_run import PROJECT, pyinfra_env
from .runs import RUN_LINE, stamp
from .sources import http_health, prometheus_value
from .triggers import (
    FIRING,
    NO_DATA,
    OK,
    PENDING,
    Decision,
    RuleSet,
    Tracker,
    Verdict,
    decide,
    status_line,
)

STACK = "stack"   # the subject of Prometheus and HTTP rules
FACT_TIMEOUT = 30  # seconds a host may take to answer one poll


def iso(moment: float) -> str:
    """Seconds since the epoch as a run record writes times."""
    return stamp(datetime.fromtimestamp(moment, timezone.utc))


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

    def host_metrics(self, host, args: dict) -> dict | None:
        if self.fetch is not None:
            return self.fetch(host)
        try:
            if not host.connected:
                host.connect(raise_exceptions=True)
            # never marks the host failed (in migrate.py that would fail the release run), and
            # a stalled connection costs one missing sample, not the watch
            metrics = get_fact(host.state, host, HostMetrics, kwargs={
                **args, "_ignore_errors": True, "_timeout": FACT_TIMEOUT},
                apply_failed_hosts=False)
        except Exception:  # noqa: BLE001 - an unreachable host is a missing sample, not a crash
            metrics = None
        if metrics is None:
            try:
                host.disconnect()   # the next poll connects again
            except Exception:  # noqa: BLE001
                pass
        return metrics

    def sample(self) -> tuple[dict, dict]:
        samples, details = {}, {}
        host_rules = [rule for rule in self.ruleset.rules if rule.source == "host"]
        if host_rules:
            for host in self.hosts:
                args = metrics_args(host.data)
                values = host_values(self.host_metrics(host, args), bool(args["kafka"]))
                for rule in host_rules:
                    if rule.metric in values:
                        samples[(rule.name, host.name)], details[(rule.name, host.name)] = values[rule.metric]
        answers: dict = {}   # one request per distinct query (and direction) a poll
        for rule in self.ruleset.rules:
            if rule.source == "http":
                if rule.url not in answers:
                    answers[rule.url] = http_value(rule.url)
                samples[(rule.name, STACK)], details[(rule.name, STACK)] = answers[rule.url]
            elif rule.source == "prometheus" and self.ruleset.prometheus_url:
                worst = min if rule.op in ("<", "<=") else max
                if (rule.query, worst) not in answers:
                    answers[(rule.query, worst)] = prometheus_value(
                        self.ruleset.prometheus_url, rule.query, token_env=self.ruleset.prometheus_token_env,
                        worst=worst)
                samples[(rule.name, STACK)] = answers[(rule.query, worst)]
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
    its stdin). Each is sent in the background, so a slow or dead hook never delays a
    rollback; a failing hook is reported and never stops the watcher. `flush` waits for
    what is still on its way."""

    webhook: str | None = None
    command: list[str] | None = None
    echo: Callable[[str], None] = print
    queue: "queue.Queue | None" = None

    def send(self, event: dict):
        if not (self.webhook or self.command):
            return
        if self.queue is None:   # one sender: alerts arrive in the order they were raised
            self.queue = queue.Queue()
            threading.Thread(target=self.sender, daemon=True).start()
        self.queue.put(json.dumps(event, sort_keys=True, default=str))

    def sender(self):
        while True:
            body = self.queue.get()
            try:
                self.deliver(body)
            finally:
                self.queue.task_done()

    def deliver(self, body: str):
        if self.webhook:
            try:
                request = urllib.request.Request(self.webhook, data=body.encode(), method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
            except Exception as error:  # noqa: BLE001
                self.echo(f"!!! alert webhook failed: {type(error).__name__}: {error}")
        if self.command:
            try:
                done = subprocess.run(self.command, input=body, text=True, capture_output=True, timeout=30)
                if done.returncode:
                    self.echo(f"!!! alert command exited {done.returncode}: {done.stderr.strip()[-200:]}")
            except (OSError, subprocess.TimeoutExpired) as error:
                self.echo(f"!!! alert command failed: {error}")

    def flush(self, timeout: float = 45.0):
        """Wait (up to ``timeout``) for the alerts still on their way."""
        deadline = time.monotonic() + timeout
        while self.queue is not None and self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)


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


@dataclass
class RollbackCommand:
    """`pyinfra -y INVENTORY rollback.py --data snapshot=...` with the incident's times."""

    inventory: str
    snapshot: str
    limit: tuple[str, ...] = ()
    echo: Callable[[str], None] = print
    options: tuple[str, ...] = ()        # pyinfra options to pass on (connection, --data overrides)

    def argv(self, incident: dict) -> list[str]:
        command = [sys.executable, "-m", "pyinfra", "-y", *self.options]
        for pattern in self.limit:
            command += ["--limit", pattern]
        command += [self.inventory, str(PROJECT / "rollback.py"), "--data", f"snapshot={self.snapshot}"]
        for key, value in incident.items():
            command += ["--data", f"{key}={value}"]
        return command

    def run(self, incident: dict) -> tuple[int, dict | None]:
        """Runs it with its output on ours; returns its exit status and run record."""
        env = pyinfra_env()
        record_path = None
        # pyinfra logs on stderr: passed through line by line, its run line picked out. Its own
        # session: a Ctrl-C meant for the watcher never stops a restore halfway.
        with subprocess.Popen(self.argv(incident), env=env, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as process:
            self.echo(f"==> rollback.py runs as pid {process.pid}")
            for line in process.stderr:
                sys.stderr.write(line)
                match = RUN_LINE.search(line)
                if match:
                    record_path = Path(match.group(3))
        try:
            record = json.loads(record_path.read_text()) if record_path else None
        except (OSError, ValueError) as error:
            self.echo(f"!!! the rollback's record {record_path} cannot be read: {error}")
            record = None
        return process.returncode, record


# --- the loop ---------------------------------------------------------------------

@dataclass
class Outcome:
    decision: Decision
    rolled_back: bool = False
    rollback_status: int | None = None
    record: dict | None = None
    trigger: str = ""
    unproven: tuple[str, ...] = ()    # at the deadline: CRITICAL rules pending or without data


class SteadyClock:
    """Wall-clock seconds that never step back (NTP, a VM resumed): rule durations stay true."""

    def __init__(self):
        self.wall, self.steady = time.time(), time.monotonic()

    def __call__(self) -> float:
        return self.wall + (time.monotonic() - self.steady)


@dataclass
class Watcher:
    sampler: Sampler
    alerts: Alerts
    rollback: RollbackCommand | None      # None: never act (triggers check)
    echo: Callable[[str], None] = print
    dry_run: bool = False
    decisions: object = None               # a readable stream for HIGH decisions (stdin), or None
    log_path: Path | None = None
    clock: Callable[[], float] = field(default_factory=SteadyClock)
    sleep: Callable[[float], None] = time.sleep
    tracker: Tracker = field(init=False)
    alerted: set = field(default_factory=set)
    last_states: dict = field(default_factory=dict)
    polls: int = 0
    last_verdicts: list = field(default_factory=list)
    sampled_at: float = 0.0
    log_failed: bool = False
    waiting: Verdict | None = None         # a HIGH rule firing, waiting for a person
    acted: set = field(default_factory=set)  # (rule, subject) decided on, until it resolves

    def __post_init__(self):
        self.tracker = Tracker(self.sampler.ruleset.rules)
        self.detected_at: dict = {}      # (rule, subject) -> when it fired

    def log(self, entry: dict):
        """One line of the events log; a log that cannot be written is said once, never fatal."""
        if self.log_path is None:
            return
        try:
            self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(descriptor, "a") as stream:
                stream.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        except OSError as error:
            if not self.log_failed:
                self.echo(f"!!! the events log {self.log_path} cannot be written ({error}); watching on")
            self.log_failed = True

    def poll(self) -> list[Verdict]:
        now = self.clock()   # the samples' time: when the poll began
        samples, details = self.sampler.sample()
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

    def alert(self, kind: str, verdict: Verdict | None = None, **extra):
        self.alerts.send(alert_event(kind, verdict, dry_run=self.dry_run, **extra))

    def alert_new(self, decision: Decision, verdicts: list[Verdict]):
        """Alert once per firing (and once per silent source); say what resolved."""
        active = {(v.rule.name, v.subject) for v in decision.firing} | {("no-data", v.rule.name, v.subject)
                                                                         for v in decision.no_data}
        for verdict in decision.firing:
            if (verdict.rule.name, verdict.subject) not in self.alerted:
                self.echo(f"!!! {verdict.rule.severity} {verdict.rule.action}: {trigger_text(verdict, 'firing')}")
                self.alert("firing", verdict)
        for verdict in decision.no_data:
            if ("no-data", verdict.rule.name, verdict.subject) not in self.alerted:
                self.echo(f"!!! NO DATA: {verdict.rule.name} on {verdict.subject}: "
                          f"{verdict.missing} samples in a row missing (a missing sample is not a pass)")
                self.alert("no_data", verdict)
        for key in self.alerted - active:
            self.alerts.send({"event": "resolved", "at": iso(self.clock()), "rule": key[-2], "subject": key[-1],
                              "what": "no data" if key[0] == "no-data" else "firing", "dry_run": self.dry_run})
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
                self.echo(f"DRY RUN: would roll back now: pyinfra {shlex.join(self.rollback.argv(incident)[4:])}")
            self.log({"at": iso(decided_at), "decision": "rollback", "dry_run": True, **incident})
            return Outcome(decision, trigger=incident["trigger"])
        self.echo(f"==> Rolling back ({incident['trigger']})")
        self.alert("rollback_started", verdict, snapshot=self.rollback.snapshot, **incident)
        self.log({"at": iso(decided_at), "decision": "rollback", **incident})
        status, record = self.rollback.run(incident)
        run = record.get("run_id") if record else None
        result = record.get("status") if record else "no run record"
        self.echo(f"==> Rollback {'finished' if status == 0 else 'FAILED'}: run {run} {result}")
        self.alert("rollback_finished", verdict, exit_status=status, run=run, status=result)
        self.log({"at": iso(self.clock()), "rollback_exit": status, "run": run, "status": result})
        return Outcome(decision, True, status, record, incident["trigger"])

    def unproven(self) -> tuple[str, ...]:
        """CRITICAL rules the last poll could not clear: pending, or without data."""
        return tuple(f"{v.rule.name} on {v.subject} ({v.state}{' ' + v.progress if v.state == PENDING else ''})"
                     for v in self.last_verdicts
                     if v.rule.severity == "CRITICAL" and (v.state == PENDING or v.value is None))

    def run(self, until: float | None = None, polls: int | None = None) -> Outcome:
        """Poll until a rollback ran (or would have: dry run), the deadline or the poll count.
        At the deadline, a CRITICAL rule still pending gets the rest of its duration."""
        try:
            return self.watch(until, polls)
        finally:
            self.alerts.flush()

    def watch(self, until: float | None, polls: int | None) -> Outcome:
        acted = self.acted
        interval = self.sampler.ruleset.poll_interval
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
            pending = [v for v in decision.firing if v.rule.severity == "HIGH" and (v.rule.name, v.subject) not in acted]
            asked = self.waiting
            if asked is not None and all((v.rule.name, v.subject) != (asked.rule.name, asked.subject)
                                         for v in decision.firing):
                self.echo(f"--- {self.waiting.rule.name} on {self.waiting.subject} resolved by itself")
                self.waiting = None
            # read every poll: a line typed while nothing waited is no decision about what comes later
            answer = self.operator_says()
            if answer and self.waiting is None:
                self.echo(f"--- {answer!r} ignored: no decision is waiting")
            elif answer == "rollback":
                outcome = self.act(self.waiting, "operator decision after", self.clock())
                if outcome.rolled_back:
                    return outcome
                acted.add((self.waiting.rule.name, self.waiting.subject))
                self.waiting = None
            elif answer == "dismiss":
                self.echo(f"--- {self.waiting.rule.name} on {self.waiting.subject}: dismissed, still watching")
                self.log({"at": iso(self.clock()), "decision": "dismiss", "rule": self.waiting.rule.name})
                acted.add((self.waiting.rule.name, self.waiting.subject))
                self.waiting = None
            elif answer:
                self.echo(f"--- unknown answer {answer!r}: type `rollback` or `dismiss`")
            pending = [v for v in pending if (v.rule.name, v.subject) not in acted]
            if self.waiting is None and pending:
                self.waiting = pending[0]
                self.echo(f"??? {pending[0].rule.name} on {pending[0].subject} (HIGH: assess, roll back if no fix). "
                          + ("Type `rollback` and Enter to roll back now, `dismiss` to acknowledge."
                             if self.decisions is not None else "Decide, then run rollback.py yourself."))
                self.alert("decision_needed", self.waiting)
            for verdict in verdicts:   # a resolved rule may act again when it fires again
                if verdict.state == OK:
                    acted.discard((verdict.rule.name, verdict.subject))
            if polls is not None and self.polls >= polls:
                return Outcome(decision, unproven=self.unproven())
            if until is not None and self.clock() + interval > until:
                grace = max((v.rule.held_for + interval for v in verdicts
                             if v.rule.severity == "CRITICAL" and v.state == PENDING), default=0.0)
                if self.clock() + interval > until + grace:
                    return Outcome(decision, unproven=self.unproven())
            self.sleep(max(0.0, interval - (self.clock() - started)))
