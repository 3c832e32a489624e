"""Trigger rules: loading, validation and their exact semantics, on recorded metric series."""

from pathlib import Path

import pytest
import yaml

from pyinfra_deploys.triggers import (
    EXIT_CODES,
    FIRING,
    MAX_MISSING,
    NO_DATA,
    OK,
    PENDING,
    RuleError,
    Tracker,
    decide,
    load_rules,
    parse_rule,
    seconds,
    status_line,
)

SERIES = Path(__file__).parent / "fixtures" / "series"
DEFAULTS = {rule.name: rule for rule in load_rules().rules}


def rule(**fields):
    raw = {"name": "r", "metric": "api_error_rate", "source": "prometheus", "query": "up",
           "condition": "> 0.5", "severity": "CRITICAL", **fields}
    return parse_rule(raw, 0)


def replay(rule_, series, subject="stack"):
    tracker = Tracker([rule_])
    return [tracker.observe(t, {(rule_.name, subject): value})[0] for t, value in series]


# --- the defaults are the runbook's tables ---

def test_the_default_critical_rules_are_the_runbooks_immediate_rollback_table():
    critical = {name: (r.metric, r.op, r.threshold, r.held_for, r.samples)
                for name, r in DEFAULTS.items() if r.severity == "CRITICAL"}
    assert critical == {
        "api-error-rate": ("api_error_rate", ">", 0.5, 60.0, None),
        "health-check": ("health_failed", ">=", 1.0, 0.0, 2),
        "db-pool-exhausted": ("db_pool_usage", ">=", 1.0, 30.0, None),
        "login-failures": ("login_failure_rate", ">", 0.9, 60.0, None),
        "container-memory": ("container_memory_pct", ">", 95.0, 120.0, None),
        "disk-free": ("disk_free_pct", "<", 5.0, 0.0, None),
    }
    assert {r.action for r in DEFAULTS.values() if r.severity == "CRITICAL"} == {"ROLLBACK"}


def test_the_default_warnings_investigate_and_kafka_lag_is_only_monitored():
    assert (DEFAULTS["api-error-rate-warning"].threshold, DEFAULTS["api-error-rate-warning"].held_for) == (0.1, 300)
    assert (DEFAULTS["latency-p95"].threshold, DEFAULTS["latency-p95"].held_for) == (5, 300)
    assert (DEFAULTS["circuit-breakers-open"].threshold, DEFAULTS["circuit-breakers-open"].held_for) == (3, 120)
    assert DEFAULTS["latency-p95"].action == "INVESTIGATE"
    kafka = DEFAULTS["kafka-lag"]
    assert (kafka.source, kafka.threshold, kafka.held_for, kafka.action) == ("host", 1000, 300, "MONITOR")


def test_a_rules_file_overrides_a_default_by_name_turns_one_off_and_adds_one(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({
        "poll_interval": "5s",
        "prometheus": {"url": "http://127.0.0.1:9090"},
        "rules": [
            {"name": "health-check", "samples": 3},
            {"name": "disk-free", "enabled": False},
            {"name": "public-health", "metric": "health_failed", "source": "http",
             "url": "https://layra.example.com/api/v1/health/check", "condition": ">= 1", "for": "30s",
             "severity": "HIGH"},
        ],
    }))
    rules = load_rules(path)
    names = {r.name: r for r in rules.rules}
    assert names["health-check"].samples == 3 and names["health-check"].severity == "CRITICAL"
    assert "disk-free" not in names
    assert names["public-health"].held_for == 30 and names["public-health"].action == "INVESTIGATE"
    assert rules.poll_interval == 5 and rules.prometheus_url == "http://127.0.0.1:9090"


def test_an_override_giving_for_replaces_the_defaults_sample_count(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: health-check, for: 20s}\n")
    health = {r.name: r for r in load_rules(path).rules}["health-check"]
    assert (health.samples, health.held_for) == (None, 20)


@pytest.mark.parametrize("fields, message", [
    ({"condition": "above 0.5"}, "condition must be '<op> <number>'"),
    ({"condition": "> 0.5; rm -rf /"}, "condition must be '<op> <number>'"),
    ({"severity": "URGENT"}, "severity must be one of CRITICAL, HIGH, MEDIUM"),
    ({"severity": "HIGH", "action": "ROLLBACK"}, "severity HIGH means action INVESTIGATE"),
    ({"source": "snmp"}, "source must be one of host, http, prometheus"),
    ({"source": "host", "metric": "cpu"}, "a host rule's metric must be one of"),
    ({"query": ""}, "a prometheus rule needs a query"),
    ({"for": "soon"}, "for must be a duration"),
    ({"for": "1m", "samples": 2}, r"either for \(a duration\) or samples"),
    ({"samples": 0}, "samples must be a whole number >= 1"),
    ({"treshold": 3}, "unknown keys treshold"),
    ({"name": "Bad Name"}, "name must be lower-case"),
])
def test_a_malformed_rule_is_refused_naming_the_rule_and_what_is_expected(fields, message):
    with pytest.raises(RuleError, match=message):
        rule(**fields)


def test_two_rules_with_one_name_are_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    extra = {"name": "x", "metric": "kafka_lag", "source": "host", "condition": "> 1", "severity": "MEDIUM"}
    path.write_text(yaml.safe_dump({"rules": [extra, extra]}))
    with pytest.raises(RuleError, match="repeated: x"):
        load_rules(path)


def test_durations_read_as_an_operator_writes_them():
    assert [seconds(v, "for") for v in ("30s", "2m", "1h", "500ms", 0, 12, "1.5m")] == [30, 120, 3600, 0.5, 0, 12, 90]


# --- semantics, on recorded series ---

@pytest.mark.parametrize("name", sorted(p.stem for p in SERIES.glob("*.yaml")))
def test_a_recorded_series_fires_exactly_when_its_condition_has_held_for_the_whole_duration(name):
    case = yaml.safe_load((SERIES / f"{name}.yaml").read_text())
    verdicts = replay(DEFAULTS[case["rule"]], case["series"], case["subject"])
    fired_at = [t for (t, _), verdict in zip(case["series"], verdicts) if verdict.fired_now]
    assert fired_at == ([case["fires_at"]] if case["fires_at"] is not None else [])


def test_a_time_rule_does_not_fire_one_sample_before_its_duration():
    verdicts = replay(rule(**{"for": "60s"}), [(0, 0.9), (30, 0.9), (59, 0.9), (60, 0.9)])
    assert [v.state for v in verdicts] == [PENDING, PENDING, PENDING, FIRING]
    assert verdicts[2].held == 59 and verdicts[3].fired_now


def test_a_rule_with_no_duration_fires_on_its_first_breaching_sample():
    verdicts = replay(rule(condition="< 5", metric="disk_free_pct", source="host"), [(0, 30), (10, 4.9)])
    assert [v.state for v in verdicts] == [OK, FIRING] and verdicts[1].fired_now


def test_one_pass_ends_the_streak_so_a_flapping_condition_never_fires():
    verdicts = replay(rule(samples=2), [(0, 0.9), (10, 0.1), (20, 0.9), (30, 0.2), (40, 0.9)])
    assert FIRING not in [v.state for v in verdicts]
    assert [v.count for v in verdicts] == [1, 0, 1, 0, 1]


def test_a_missing_sample_is_not_a_pass_and_not_a_breach():
    verdicts = replay(rule(samples=3), [(0, 0.9), (10, None), (20, 0.9), (30, None), (40, 0.9)])
    assert [v.state for v in verdicts] == [PENDING, PENDING, PENDING, PENDING, FIRING]
    assert [v.count for v in verdicts] == [1, 1, 2, 2, 3]
    assert verdicts[1].since == 0, "the gap kept the streak's start"


def test_a_rule_never_fires_on_a_missing_sample_even_when_its_duration_has_passed():
    verdicts = replay(rule(**{"for": "20s"}), [(0, 0.9), (10, 0.9), (20, None), (30, None), (40, 0.9)])
    assert [v.state for v in verdicts] == [PENDING, PENDING, PENDING, PENDING, FIRING]
    assert verdicts[4].fired_now and verdicts[4].held == 40


def test_a_source_silent_for_several_polls_reports_no_data_which_decide_names():
    verdicts = replay(rule(), [(t, None) for t in range(0, 10 * MAX_MISSING, 10)])
    assert verdicts[-1].state == NO_DATA and verdicts[-1].missing == MAX_MISSING
    assert decide(verdicts[-1:]).no_data == (verdicts[-1],) and decide(verdicts[:1]).no_data == ()


def test_nan_from_a_ratio_of_zero_requests_counts_as_missing():
    verdicts = replay(rule(samples=1), [(0, float("nan"))])
    assert verdicts[0].state == NO_DATA and verdicts[0].value is None


def test_a_fired_rule_stays_firing_through_gaps_and_resolves_on_the_next_pass():
    verdicts = replay(rule(samples=1), [(0, 0.9), (10, None), (20, 0.8), (30, 0.1)])
    assert [v.state for v in verdicts] == [FIRING, FIRING, FIRING, OK]
    assert [v.fired_now for v in verdicts] == [True, False, False, False]


def test_each_subject_has_its_own_streak():
    health = DEFAULTS["health-check"]
    tracker = Tracker([health])
    tracker.observe(0, {("health-check", "sandbox-1"): 1, ("health-check", "sandbox-2"): 0})
    verdicts = tracker.observe(5, {("health-check", "sandbox-1"): 1, ("health-check", "sandbox-2"): 1})
    states = {v.subject: v.state for v in verdicts}
    assert states == {"sandbox-1": FIRING, "sandbox-2": PENDING}


def test_samples_out_of_time_order_are_refused():
    tracker = Tracker([rule()])
    tracker.observe(10, {("r", "stack"): 0.1})
    with pytest.raises(ValueError, match="time order"):
        tracker.observe(5, {("r", "stack"): 0.1})


# --- several rules at once: the decision matrix ---

def test_with_several_rules_firing_the_highest_severity_decides():
    rules = [DEFAULTS["kafka-lag"], DEFAULTS["latency-p95"], DEFAULTS["disk-free"]]
    tracker = Tracker(rules)
    samples = {("kafka-lag", "sandbox-1"): 5000, ("latency-p95", "stack"): 7.5, ("disk-free", "sandbox-2"): 40}
    assert decide(tracker.observe(0, samples)).action == "NONE"
    late = tracker.observe(300, samples)
    decision = decide(late)
    assert (decision.action, decision.severity) == ("INVESTIGATE", "HIGH")
    assert [v.rule.name for v in decision.firing] == ["latency-p95", "kafka-lag"]
    samples[("disk-free", "sandbox-2")] = 3.2
    decision = decide(tracker.observe(310, samples))
    assert (decision.action, decision.exit_code) == ("ROLLBACK", EXIT_CODES["ROLLBACK"])
    assert decision.firing[0].subject == "sandbox-2"


def test_nothing_firing_decides_nothing_and_exits_zero():
    decision = decide(replay(rule(), [(0, 0.1)]))
    assert (decision.action, decision.severity, decision.exit_code) == ("NONE", None, 0)


def test_the_exit_codes_rank_with_severity_and_leave_click_its_own():
    assert EXIT_CODES == {"NONE": 0, "MONITOR": 3, "INVESTIGATE": 4, "ROLLBACK": 5}


def test_a_status_line_names_severity_rule_subject_value_condition_and_progress():
    verdict = replay(DEFAULTS["health-check"], [(0, 1)], "sandbox-1")[0]
    line = status_line(verdict)
    assert line.split() == ["CRITICAL", "health-check", "sandbox-1", "health_failed=1", "(>=", "1,", "2",
                            "consecutive", "samples)", "pending", "1/2", "samples"]


def test_a_gap_of_three_missing_samples_breaks_a_streak_that_has_not_fired():
    verdicts = replay(rule(samples=2), [(0, 0.9), (10, None), (20, None), (30, None), (40, 0.9), (50, 0.9)])
    assert [v.state for v in verdicts] == [PENDING, PENDING, PENDING, NO_DATA, PENDING, FIRING]
    assert verdicts[4].since == 40 and verdicts[5].fired_now
