"""
Trigger rules and their exact semantics, as plain Python (no host, no clock of its own).

Each poll gives every rule one sample per subject (a host for host rules, the stack for
Prometheus and HTTP rules): BREACH (its condition is true), OK, or MISSING (no value: the
host or the source did not answer, the query had no result).

- A streak starts at the first breaching sample. The rule FIRES on a breaching sample once
  the streak has lasted its whole `for` (time from the streak's first breaching sample) or
  reached its `samples` count (breaching samples in the streak). `for: 0` fires at once.
- An OK sample ends the streak: a flapping condition never fires.
- A MISSING sample is not a pass: it does not end a streak (a dead source is no evidence of
  health), it never counts as a breaching sample, and a rule never fires on one. After
  MAX_MISSING in a row the rule reports NO DATA, which the watcher alerts on, and a streak
  not yet fired starts over (a gap that long breaks "consecutive").
- Once fired, a rule stays FIRING while its samples breach (or are missing); the next OK
  sample resolves it.

The decision matrix (runbook 1.3): the highest severity among firing rules decides.
CRITICAL -> ROLLBACK (automatic), HIGH -> INVESTIGATE (alert, a person decides),
MEDIUM -> MONITOR (alert, document).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

SEVERITY_ACTIONS = {"CRITICAL": "ROLLBACK", "HIGH": "INVESTIGATE", "MEDIUM": "MONITOR"}
SEVERITY_RANK = {"CRITICAL": 3, "HIGH": 2, "MEDIUM": 1}
SOURCES = ("host", "http", "prometheus")
HOST_METRICS = ("health_failed", "container_memory_pct", "disk_free_pct", "kafka_lag")
OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
             "==": operator.eq, "!=": operator.ne}
CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
RULE_KEYS = {"name", "metric", "source", "condition", "for", "samples", "severity", "action",
             "query", "url", "enabled", "description"}
MAX_MISSING = 3

# Verdict states, as the status lines print them.
OK, PENDING, FIRING, NO_DATA, OFF = "ok", "pending", "FIRING", "no data", "off"


class RuleError(ValueError):
    """A rules file that cannot be used, naming the rule and key."""


def seconds(value, where: str) -> float:
    """``30s``, ``2m``, ``1h``, ``500ms`` or a number of seconds."""
    if isinstance(value, bool):
        raise RuleError(f"{where} must be a duration like 30s, 2m or 0, got {value!r}")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    match = DURATION.match(str(value))
    if not match:
        raise RuleError(f"{where} must be a duration like 30s, 2m or 0, got {value!r}")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    source: str
    op: str
    threshold: float
    severity: str
    held_for: float = 0.0           # seconds the condition must hold...
    samples: int | None = None      # ...or this many consecutive breaching samples
    query: str | None = None
    url: str | None = None
    description: str = ""

    @property
    def action(self) -> str:
        return SEVERITY_ACTIONS[self.severity]

    @property
    def condition(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    @property
    def duration(self) -> str:
        if self.samples:
            return f"{self.samples} consecutive samples"
        return f"for {self.held_for:g}s" if self.held_for else "at once"

    def breaches(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)


def parse_rule(raw, index: int) -> Rule | None:
    """A validated Rule from one YAML entry (None when ``enabled: false``)."""
    where = f"rule {index + 1}"
    if not isinstance(raw, dict):
        raise RuleError(f"{where} must be a mapping, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise RuleError(f"{where}: name must be lower-case letters, digits, _.- (at most 64), got {name!r}")
    where = f"rule {name!r}"
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(RULE_KEYS))})")
    if raw.get("enabled", True) is False:
        return None
    source = raw.get("source")
    if source not in SOURCES:
        raise RuleError(f"{where}: source must be one of {', '.join(SOURCES)}, got {source!r}")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not NAME.match(metric):
        raise RuleError(f"{where}: metric must be a name, got {metric!r}")
    if source == "host" and metric not in HOST_METRICS:
        raise RuleError(f"{where}: a host rule's metric must be one of {', '.join(HOST_METRICS)}, got {metric!r}")
    if source == "http" and metric != "health_failed":
        raise RuleError(f"{where}: an http rule measures health_failed, got {metric!r}")
    query, url = raw.get("query"), raw.get("url")
    if source == "prometheus" and not (isinstance(query, str) and query.strip()):
        raise RuleError(f"{where}: a prometheus rule needs a query (PromQL giving one number)")
    if source == "http" and not (isinstance(url, str) and re.match(r"^https?://[^\s'\"]+$", url)):
        raise RuleError(f"{where}: an http rule needs url: http(s)://..., got {url!r}")
    match = CONDITION.match(str(raw.get("condition", "")))
    if not match:
        raise RuleError(f"{where}: condition must be '<op> <number>' with op one of "
                        f"{' '.join(OPERATORS)}, got {raw.get('condition')!r}")
    severity = str(raw.get("severity", "")).upper()
    if severity not in SEVERITY_ACTIONS:
        raise RuleError(f"{where}: severity must be one of {', '.join(SEVERITY_ACTIONS)}, got {raw.get('severity')!r}")
    action = raw.get("action")
    if action is not None and str(action).upper() != SEVERITY_ACTIONS[severity]:
        raise RuleError(f"{where}: severity {severity} means action {SEVERITY_ACTIONS[severity]} "
                        f"(runbook 1.3), got action {action!r}")
    if "for" in raw and "samples" in raw:
        raise RuleError(f"{where}: give either for (a duration) or samples (a count), not both")
    samples = raw.get("samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise RuleError(f"{where}: samples must be a whole number >= 1, got {samples!r}")
    return Rule(name=name, metric=metric, source=source, op=match.group(1), threshold=float(match.group(2)),
                severity=severity, held_for=seconds(raw.get("for", 0), f"{where}: for"), samples=samples,
                query=query, url=url, description=str(raw.get("description") or ""))


@dataclass
class RuleSet:
    rules: list[Rule]
    poll_interval: float = 10.0
    prometheus_url: str | None = None
    prometheus_token_env: str | None = None
    alerts: dict = field(default_factory=dict)


def valid_webhook(url) -> bool:
    return isinstance(url, str) and bool(re.match(r"^https?://[^\s'\"]+$", url))


def default_rules_text() -> str:
    return resources.files("pyinfra_deploys").joinpath("rules.yaml").read_text()


def merged(defaults: dict, overrides: dict) -> dict:
    """Overrides on top of the defaults: rules merge by name, other keys replace."""
    result = {**defaults, **{k: v for k, v in overrides.items() if k != "rules"}}
    if isinstance(defaults.get("prometheus"), dict) and isinstance(overrides.get("prometheus"), dict):
        result["prometheus"] = {**defaults["prometheus"], **overrides["prometheus"]}
    rules = [dict(rule) for rule in defaults.get("rules", [])]
    by_name = {rule.get("name"): rule for rule in rules}
    extra = overrides.get("rules", [])
    if not isinstance(extra, list):
        raise RuleError(f"rules must be a list of rules, got {extra!r}")
    for rule in extra:
        if isinstance(rule, dict) and rule.get("name") in by_name:
            target = by_name[rule["name"]]
            if "for" in rule:
                target.pop("samples", None)
            if "samples" in rule:
                target.pop("for", None)
            target.update(rule)
        else:
            rules.append(rule)
    result["rules"] = rules
    return result


def load_rules(path: Path | None = None, use_defaults: bool = True) -> RuleSet:
    """The defaults, with ``path``'s rules merged over them by name."""
    data = yaml.safe_load(default_rules_text()) if use_defaults else {}
    if path is not None:
        try:
            overrides = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise RuleError(f"cannot read rules file {path}: {error}") from None
        if not isinstance(overrides, dict):
            raise RuleError(f"{path} must be a mapping with rules: [...] (and poll_interval, prometheus, alerts)")
        data = merged(data, overrides)
    rules = [rule for index, raw in enumerate(data.get("rules") or []) if (rule := parse_rule(raw, index))]
    names = [rule.name for rule in rules]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RuleError(f"rule names must be unique, repeated: {', '.join(twice)}")
    prometheus = data.get("prometheus") or {}
    if not isinstance(prometheus, dict):
        raise RuleError(f"prometheus must be a mapping with url and token_env, got {prometheus!r}")
    url = prometheus.get("url")
    if url is not None and not (isinstance(url, str) and re.match(r"^https?://[^\s'\"]+$", url)):
        raise RuleError(f"prometheus.url must be http(s)://host:port, got {url!r}")
    alerts = data.get("alerts") or {}
    if not isinstance(alerts, dict) or not set(alerts) <= {"webhook", "command"}:
        raise RuleError(f"alerts must be a mapping with webhook (a URL) and/or command (a list), got {alerts!r}")
    if alerts.get("webhook") is not None and not valid_webhook(alerts["webhook"]):
        raise RuleError(f"alerts.webhook must be an http(s):// URL, got {alerts['webhook']!r}")
    command = alerts.get("command")
    if command is not None and not (isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
        raise RuleError(f"alerts.command must be a list of strings (the program and its arguments), got {command!r}")
    interval = seconds(data.get("poll_interval", 10), "poll_interval")
    if not 0 < interval <= 3600:
        raise RuleError(f"poll_interval must be between 1s and 1h, got {data.get('poll_interval')!r}")
    return RuleSet(rules=rules, poll_interval=interval,
                   prometheus_url=url, prometheus_token_env=prometheus.get("token_env"), alerts=alerts)


@dataclass(frozen=True)
class Verdict:
    """One rule on one subject after a sample."""
    rule: Rule
    subject: str
    state: str
    value: float | None = None
    since: float | None = None      # the streak's first breaching sample
    held: float = 0.0               # seconds the streak has lasted
    count: int = 0                  # breaching samples in the streak
    missing: int = 0                # missing samples in a row
    fired_now: bool = False         # this sample made it fire
    detail: str = ""                # e.g. the service with the most memory

    @property
    def progress(self) -> str:
        if self.rule.samples:
            return f"{self.count}/{self.rule.samples} samples"
        return f"{self.held:.0f}s/{self.rule.held_for:g}s"


@dataclass
class Streak:
    since: float | None = None
    count: int = 0
    missing: int = 0
    firing: bool = False
    last_t: float | None = None


class Tracker:
    """Follows every (rule, subject) through its samples; `observe` gives the verdicts."""

    def __init__(self, rules: list[Rule]):
        self.rules = {rule.name: rule for rule in rules}
        self.streaks: dict[tuple[str, str], Streak] = {}

    def observe(self, t: float, samples: dict[tuple[str, str], float | None],
                details: dict[tuple[str, str], str] | None = None) -> list[Verdict]:
        """Samples taken at time ``t`` (seconds), keyed by (rule name, subject)."""
        verdicts = []
        for (name, subject), value in samples.items():
            rule = self.rules[name]
            streak = self.streaks.setdefault((name, subject), Streak())
            if streak.last_t is not None and t < streak.last_t:
                raise ValueError(f"samples must come in time order: {t} after {streak.last_t}")
            streak.last_t = t
            verdicts.append(self.step(rule, subject, streak, t, value, (details or {}).get((name, subject), "")))
        return verdicts

    @staticmethod
    def step(rule: Rule, subject: str, streak: Streak, t: float, value: float | None, detail: str) -> Verdict:
        if value is None or value != value:  # None or NaN: missing
            streak.missing += 1
            if streak.missing >= MAX_MISSING and not streak.firing:
                # a gap this long breaks "consecutive": what came before it proves nothing now
                streak.since, streak.count = None, 0
            state = FIRING if streak.firing else NO_DATA if streak.missing >= MAX_MISSING else \
                PENDING if streak.since is not None else NO_DATA
            return Verdict(rule, subject, state, None, streak.since,
                           (t - streak.since) if streak.since is not None else 0.0, streak.count, streak.missing,
                           detail=detail)
        streak.missing = 0
        if not rule.breaches(value):
            streak.since, streak.count, streak.firing = None, 0, False
            return Verdict(rule, subject, OK, value, detail=detail)
        if streak.since is None:
            streak.since = t
        streak.count += 1
        held = t - streak.since
        fired_now = False
        if not streak.firing:
            due = streak.count >= rule.samples if rule.samples else held >= rule.held_for
            streak.firing = fired_now = due
        return Verdict(rule, subject, FIRING if streak.firing else PENDING, value, streak.since, held,
                       streak.count, 0, fired_now, detail)


@dataclass(frozen=True)
class Decision:
    action: str                     # ROLLBACK, INVESTIGATE, MONITOR or NONE
    severity: str | None
    firing: tuple[Verdict, ...] = ()
    no_data: tuple[Verdict, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.action]


# `layra-rollback triggers check` exit codes (0-2 stay click's: ok, error, usage).
EXIT_CODES = {"NONE": 0, "MONITOR": 3, "INVESTIGATE": 4, "ROLLBACK": 5}
NO_DATA_EXIT = 6   # nothing fires, but some rule had no sample: not a pass


def decide(verdicts: list[Verdict]) -> Decision:
    """The decision matrix: the highest severity among the firing rules."""
    firing = tuple(sorted((v for v in verdicts if v.state == FIRING),
                          key=lambda v: (-SEVERITY_RANK[v.rule.severity], v.rule.name, v.subject)))
    no_data = tuple(v for v in verdicts if v.state == NO_DATA and v.missing >= MAX_MISSING)
    if not firing:
        return Decision("NONE", None, (), no_data)
    severity = firing[0].rule.severity
    return Decision(SEVERITY_ACTIONS[severity], severity, firing, no_data)


def status_line(verdict: Verdict) -> str:
    """``CRITICAL health-check  sandbox-1  health_failed=1 (>= 1, 2 consecutive samples)  FIRING 2/2 samples``"""
    rule = verdict.rule
    value = "-" if verdict.value is None else f"{verdict.value:g}"
    detail = f" ({verdict.detail})" if verdict.detail else ""
    state = verdict.state
    if state in (PENDING, FIRING):
        state = f"{state} {verdict.progress}"
    if verdict.missing:
        state += f", {verdict.missing} missing"
    return (f"{rule.severity:<8} {rule.name:<24} {verdict.subject:<14} "
            f"{rule.metric}={value}{detail} ({rule.op} {rule.threshold:g}, {rule.duration})  {state}")
