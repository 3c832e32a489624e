"""The watcher's decisions and actions, with hosts whose metrics the test scripts (no SSH).

Real: the rule engine, the alert hooks (a real command and a real local webhook server),
the decision stream (a real pipe). Scripted: HostMetrics answers and the rollback command.
"""

import json
import os
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from pyinfra_deploys.triggers import RuleSet, load_rules
from pyinfra_deploys.watch import Alerts, Sampler, Watcher, host_values

HEALTHY = {"health": {"status": 200, "seconds": 0.01}, "memory_pct": {"backend": 20.0, "mysql": 41.5},
           "disk_free_pct": {"/srv/layra": 30.0, "/var/lib/docker": 29.0}, "kafka_lag": None}
FAILING = {**HEALTHY, "health": {"status": 503, "seconds": 0.01}}


def host(name="sandbox-1", **data):
    return SimpleNamespace(name=name, data=data, connected=True)


def only(*names, **overrides):
    rules = [rule for rule in load_rules().rules if rule.name in names]
    return RuleSet(rules=rules, poll_interval=overrides.get("interval", 5.0))


class Clock:
    def __init__(self):
        self.now = 1_790_000_000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeRollback:
    snapshot = "20261121T120000Z-pre-release"

    def __init__(self):
        self.incidents = []

    def argv(self, incident):
        return ["python", "-m", "pyinfra", "-y", "inv.py", "rollback.py", "--data", f"snapshot={self.snapshot}"]

    def run(self, incident):
        self.incidents.append(incident)
        return 0, {"run_id": "20261121T120100Z-rollback", "status": "succeeded"}


def watcher(ruleset, script, rollback=None, lines=None, **kwargs):
    """A watcher whose hosts answer from ``script``: {host: [metrics per poll]}."""
    clock = Clock()
    polls = {name: iter(answers) for name, answers in script.items()}
    sampler = Sampler(ruleset, [host(name) for name in script], fetch=lambda h: next(polls[h.name]))
    echoed = lines if lines is not None else []
    return Watcher(sampler, kwargs.pop("alerts", Alerts(echo=echoed.append)), rollback, echo=echoed.append,
                   clock=clock, sleep=clock.sleep, **kwargs), clock


def parse(moment):
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def test_host_metrics_become_rule_values_with_the_worst_service_and_path_named():
    values = host_values(HEALTHY, has_kafka=False)
    assert values == {"health_failed": (0.0, "HTTP 200"), "container_memory_pct": (41.5, "mysql"),
                      "disk_free_pct": (29.0, "/var/lib/docker")}
    assert host_values(FAILING, False)["health_failed"] == (1.0, "HTTP 503")
    assert host_values({**HEALTHY, "health": {"status": 0}}, False)["health_failed"] == (1.0, "no answer")


def test_a_host_that_did_not_answer_gives_missing_samples_not_passes():
    values = host_values(None, has_kafka=True)
    assert {value for value, _ in values.values()} == {None} and "kafka_lag" in values


def test_a_critical_rule_held_for_its_duration_rolls_back_once_with_the_incidents_times():
    rollback = FakeRollback()
    lines = []
    watch, clock = watcher(only("health-check"), {"sandbox-1": [HEALTHY, FAILING, FAILING, HEALTHY]},
                           rollback, lines)
    start = clock.now
    outcome = watch.run()
    assert outcome.rolled_back and outcome.rollback_status == 0 and watch.polls == 3
    [incident] = rollback.incidents
    assert parse(incident["incident_started_at"]) == pytest.approx(start + 5, abs=0.01)   # first failed check
    assert parse(incident["detected_at"]) == pytest.approx(start + 10, abs=0.01)          # the second one
    assert parse(incident["decided_at"]) >= parse(incident["detected_at"])
    assert incident["trigger"] == ("automatic: rule health-check (health_failed >= 1, 2 consecutive samples) "
                                   "on sandbox-1 = 1")
    assert any(line.startswith("==> Rolling back") for line in lines)


def test_a_dry_run_decides_and_prints_but_never_runs_the_rollback():
    rollback = FakeRollback()
    lines = []
    watch, _ = watcher(only("health-check"), {"sandbox-1": [FAILING] * 4}, rollback, lines, dry_run=True)
    outcome = watch.run(polls=4)
    assert rollback.incidents == [] and not outcome.rolled_back
    assert outcome.decision.action == "ROLLBACK"
    assert sum(line.startswith("DRY RUN: would roll back now: pyinfra") for line in lines) == 1


def test_a_flapping_health_check_never_rolls_back():
    rollback = FakeRollback()
    watch, _ = watcher(only("health-check"), {"sandbox-1": [FAILING, HEALTHY] * 5}, rollback)
    assert not watch.run(polls=10).rolled_back and rollback.incidents == []


def test_an_unreachable_host_is_no_data_never_a_rollback():
    rollback = FakeRollback()
    lines = []
    watch, _ = watcher(only("health-check"), {"sandbox-1": [None] * 4}, rollback, lines)
    outcome = watch.run(polls=4)
    assert rollback.incidents == [] and outcome.decision.no_data
    assert sum("NO DATA: health-check on sandbox-1" in line for line in lines) == 1


def test_one_host_failing_among_several_rolls_back_naming_that_host():
    rollback = FakeRollback()
    watch, _ = watcher(only("health-check"), {"sandbox-1": [HEALTHY] * 3, "sandbox-2": [FAILING] * 3}, rollback)
    watch.run()
    assert rollback.incidents[0]["trigger"].endswith("on sandbox-2 = 1")


def high_rule():
    [rule] = [r for r in load_rules().rules if r.name == "latency-p95"]
    from dataclasses import replace
    return replace(rule, source="host", metric="container_memory_pct", threshold=90, held_for=0)


def test_a_high_rule_alerts_and_waits_until_the_operator_types_rollback():
    rollback = FakeRollback()
    read, write = os.pipe()
    decisions = os.fdopen(read)
    lines = []
    hot = {**HEALTHY, "memory_pct": {"backend": 93.0}}
    watch, _ = watcher(RuleSet(rules=[high_rule()], poll_interval=5), {"sandbox-1": [hot] * 6}, rollback, lines,
                       decisions=decisions)
    assert not watch.run(polls=2).rolled_back, "a HIGH rule never rolls back by itself"
    assert any(line.startswith("??? latency-p95 on sandbox-1 (HIGH") for line in lines)
    os.write(write, b"rollback\n")
    outcome = watch.run(polls=3)
    assert outcome.rolled_back
    assert rollback.incidents[0]["trigger"].startswith("operator decision after: rule latency-p95")


def test_a_dismissed_high_rule_is_not_asked_again_while_it_keeps_firing():
    read, write = os.pipe()
    lines = []
    hot = {**HEALTHY, "memory_pct": {"backend": 93.0}}
    watch, _ = watcher(RuleSet(rules=[high_rule()], poll_interval=5), {"sandbox-1": [hot] * 5}, FakeRollback(),
                       lines, decisions=os.fdopen(read))
    assert not watch.run(polls=1).rolled_back
    os.write(write, b"dismiss\n")
    assert not watch.run(polls=5).rolled_back
    assert sum(line.startswith("??? ") for line in lines) == 1
    assert any("dismissed, still watching" in line for line in lines)


def test_every_alert_reaches_the_command_hook_as_json_on_its_stdin(tmp_path):
    out = tmp_path / "alerts.jsonl"
    alerts = Alerts(command=["sh", "-c", f"cat >> {out}; echo >> {out}"], echo=lambda line: None)
    watch, _ = watcher(only("health-check"), {"sandbox-1": [FAILING, FAILING]}, FakeRollback(), alerts=alerts)
    watch.run()
    events = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert [e["event"] for e in events] == ["firing", "rollback_started", "rollback_finished"]
    assert events[0]["rule"] == "health-check" and events[0]["severity"] == "CRITICAL"
    assert events[2]["run"] == "20261121T120100Z-rollback" and events[2]["status"] == "succeeded"


def test_alerts_are_posted_to_the_webhook_and_a_dead_webhook_does_not_stop_the_watch():
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        watch, _ = watcher(only("health-check"), {"sandbox-1": [FAILING, FAILING]}, FakeRollback(),
                           alerts=Alerts(webhook=f"http://127.0.0.1:{server.server_port}/hook", echo=lambda l: None))
        watch.run()
    finally:
        server.shutdown()
        server.server_close()
    assert [e["event"] for e in received] == ["firing", "rollback_started", "rollback_finished"]
    lines = []
    dead = Alerts(webhook=f"http://127.0.0.1:{server.server_port}/hook", echo=lines.append)
    watch, _ = watcher(only("health-check"), {"sandbox-1": [FAILING, FAILING]}, FakeRollback(), alerts=dead)
    assert watch.run().rolled_back
    assert any(line.startswith("!!! alert webhook failed") for line in lines)


def test_every_poll_is_logged_to_a_private_events_file(tmp_path):
    log = tmp_path / "watch" / "events.jsonl"
    watch, _ = watcher(only("health-check"), {"sandbox-1": [HEALTHY, FAILING, FAILING]}, FakeRollback(), log_path=log)
    watch.run()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["verdicts"][0]["state"] for e in entries if "verdicts" in e] == ["ok", "pending", "FIRING"]
    assert any(e.get("decision") == "rollback" for e in entries)
    assert (log.stat().st_mode & 0o777, log.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_the_watch_stops_at_its_deadline_when_nothing_fires():
    watch, clock = watcher(only("health-check"), {"sandbox-1": [HEALTHY] * 20}, FakeRollback())
    start = clock.now
    outcome = watch.run(until=start + 30)
    assert not outcome.rolled_back and outcome.decision.action == "NONE"
    assert watch.polls == 7 and clock.now == start + 30, "polls at 0, 5, ... 30 s: the window's both ends"


def test_a_line_typed_while_no_decision_waits_is_ignored_not_kept_for_a_later_rule():
    read, write = os.pipe()
    lines = []
    hot = {**HEALTHY, "memory_pct": {"backend": 93.0}}
    rollback = FakeRollback()
    watch, _ = watcher(RuleSet(rules=[high_rule()], poll_interval=5), {"sandbox-1": [HEALTHY, hot, hot]}, rollback,
                       lines, decisions=os.fdopen(read))
    os.write(write, b"rollback\n")
    assert not watch.run(polls=3).rolled_back and rollback.incidents == []
    assert "--- 'rollback' ignored: no decision is waiting" in lines


def test_a_second_high_rule_is_asked_about_once_the_first_is_dismissed():
    from dataclasses import replace
    read, write = os.pipe()
    lines = []
    other = replace(high_rule(), name="memory-high-2")
    hot = {**HEALTHY, "memory_pct": {"backend": 93.0}}
    watch, _ = watcher(RuleSet(rules=[high_rule(), other], poll_interval=5), {"sandbox-1": [hot] * 4},
                       FakeRollback(), lines, decisions=os.fdopen(read))
    watch.run(polls=1)
    os.write(write, b"dismiss\n")
    watch.run(polls=3)
    asked = [line.split()[1] for line in lines if line.startswith("??? ")]
    assert asked == ["latency-p95", "memory-high-2"]


def test_at_the_deadline_a_pending_critical_rule_gets_the_rest_of_its_duration():
    health = only("health-check")
    watch, clock = watcher(health, {"sandbox-1": [HEALTHY, HEALTHY, FAILING, FAILING, HEALTHY]}, FakeRollback())
    start = clock.now
    outcome = watch.run(until=start + 10)
    assert outcome.rolled_back, "the second failed check came after the deadline, within the grace"
