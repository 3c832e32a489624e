"""
The run report (``layra-rollback report RUN``): a run record rendered for people.

A run leaves ``<runs dir>/<run id>/record.json`` (``record.py``); from it we render, beside
the record:

- ``report.md``: header, RTO figures against the runbook's targets, a timeline of every
  phase, then host by host what was planned, done and checked;
- ``report.html``: the same, self-contained (inline CSS and SVG charts, no script, nothing
  fetched), every value escaped;
- ``postmortem.md``: the runbook's post-mortem template, filled from the record where the
  record knows, ``[placeholder: ...]`` where a person must write.

Records come from runs that failed or died midway: every field may be missing, and a
missing time is reported as "not recorded" with the reason, never as zero or as met.
Everything below the templates is plain functions of the record (tested in
tests/test_report.py); the templates only lay out what ``context`` computed.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import jinja2

from .runs import PHASES, write_private

# The runbook's recovery-time targets, in seconds.
TARGETS = {"detection": 60, "decision": 120, "execution": 300, "verification": 180, "total": 600}
EXECUTION_PHASES = ("stage", "maintenance_on", "safety_in_window", "stack", "restore", "caches", "maintenance_off")
VERIFY_PHASES = ("verify_infrastructure", "verify_connectivity", "verify_functionality", "verify_integrity")
# Phases that only start once execution is over (phase 4, integrity, runs inside maintenance).
AFTER_EXECUTION = ("verify_infrastructure", "verify_connectivity", "verify_functionality")
REPORT_FILES = {"md": ("report.md", "postmortem.md"), "html": ("report.html",)}
NEWEST_SHOWN = 5
TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


class RecordError(ValueError):
    """A run cannot be found, or its record cannot be read as one."""


# Reading values tolerantly: a record may be partial, from a run that died midway


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str:
    return "" if value is None else str(value)


def parse_time(value) -> datetime | None:
    """``"2026-11-21T13:00:00.25Z" -> datetime`` (UTC; a zone-less time is UTC); None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def duration(seconds: float | None) -> str:
    """``3.21 -> "3.2s"``, ``250 -> "4m 10.0s"``; ``None -> "not recorded"``."""
    if seconds is None:
        return "not recorded"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.1f}s"
    minutes, rest = divmod(round(seconds, 1), 60)
    return f"{sign}{int(minutes)}m {rest:04.1f}s"


def figure_duration(item: dict) -> str:
    """An RTO figure's duration as shown: ``"at least ..."`` for a bucket the run did not finish."""
    if item["seconds"] is None:
        return "not recorded"
    return ("" if item["complete"] else "at least ") + duration(item["seconds"])


def target_text(seconds: int) -> str:
    """``60 -> "< 1m"``, ``90 -> "< 1m 30s"``."""
    minutes, rest = divmod(seconds, 60)
    return "< " + " ".join(part for part in (f"{minutes}m" if minutes else "", f"{rest}s" if rest else "") if part)


# Phases


def run_start(record: dict) -> datetime | None:
    """The run's start, else its first recorded phase or operation."""
    started = parse_time(record.get("started_at"))
    if started:
        return started
    starts = [s["started_at"] for s in raw_spans(record).values() if s["started_at"]]
    return min(starts, default=None)


def last_window(runs: Path, host_name: str) -> dict | None:
    """What the newest rollback that succeeded on ``host_name`` took, from the run records
    under ``runs`` (run ids sort by time): ``{"run_id", "staged_s", "window_s"}``, the
    window from maintenance on's start to maintenance off's end; None without one."""
    for path in sorted(runs.glob("*-rollback/record.json"), reverse=True):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        entry = _dict(_dict(record).get("hosts")).get(host_name)
        spans = raw_spans(record)
        if _dict(entry).get("status") != "succeeded" or not {"maintenance_on", "maintenance_off"} <= set(spans):
            continue
        stage = spans.get("stage") or {}
        return {"run_id": record.get("run_id"),
                "staged_s": seconds_between(stage.get("started_at"), stage.get("ended_at")),
                "window_s": seconds_between(spans["maintenance_on"]["started_at"], spans["maintenance_off"]["ended_at"])}
    return None


def raw_spans(record: dict) -> dict[str, dict]:
    """``{phase: {"started_at", "ended_at"}}`` as datetimes, from ``phases``; from the hosts'
    operations when a partial record has none."""
    phases = _dict(record.get("phases"))
    if phases:
        return {str(name): {"started_at": parse_time(_dict(span).get("started_at")),
                            "ended_at": parse_time(_dict(span).get("ended_at"))}
                for name, span in phases.items()}
    spans: dict[str, dict] = {}
    for entry in _dict(record.get("hosts")).values():
        for op in map(_dict, _list(_dict(entry).get("operations"))):
            started, ended = parse_time(op.get("started_at")), parse_time(op.get("ended_at"))
            if not op.get("phase") or not started:
                continue
            span = spans.setdefault(str(op["phase"]), {"started_at": started, "ended_at": ended})
            span["started_at"] = min(span["started_at"], started)
            if ended:
                span["ended_at"] = max(span["ended_at"] or ended, ended)
    return spans


def phase_spans(record: dict) -> list[dict]:
    """Every phase the run reached, in the order it started:
    ``{"name", "started_at", "ended_at", "offset", "seconds"}`` (offset from the run's start;
    ``seconds`` None when the phase has no end, as when the run stopped inside it)."""
    base = run_start(record)
    order = {name: index for index, name in enumerate(PHASES)}
    spans = []
    for name, span in raw_spans(record).items():
        started, ended = span["started_at"], span["ended_at"]
        spans.append({"name": name, "started_at": started, "ended_at": ended,
                      "offset": seconds_between(base, started), "seconds": seconds_between(started, ended)})
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(spans, key=lambda s: (s["started_at"] or far, order.get(s["name"], len(order)), s["name"]))


# The RTO figures


def figure(name: str, start: datetime | None, end: datetime | None, complete: bool = True,
           note: str | None = None) -> dict:
    """One RTO bucket: ``{"name", "seconds", "target", "status", "complete", "note"}``.

    ``status`` is ``met``/``missed``/``unknown``. A bucket the run did not finish
    (``complete=False``) is missed once it already took longer than its target, unknown
    before that: a run that stopped early has not met anything.
    """
    target = TARGETS[name]
    seconds = seconds_between(start, end)
    if seconds is None:
        return {"name": name, "seconds": None, "target": target, "status": "unknown", "complete": False, "note": note}
    if seconds < 0:
        return {"name": name, "seconds": None, "target": target, "status": "unknown", "complete": False,
                "note": f"times out of order: ends {duration(-seconds)} before it starts"}
    if complete:
        status = "met" if seconds < target else "missed"
    else:
        status = "missed" if seconds >= target else "unknown"
    return {"name": name, "seconds": seconds, "target": target, "status": status, "complete": complete, "note": note}


def failure_summary(record: dict) -> str:
    """Why a run did not succeed, in a few words (``sandbox-2 unreachable; 1 check failed``)."""
    status = record.get("status")
    if status == "running":
        return "the run has no end: it is still going, or its process died before finishing"
    reasons = [f"{name} {_dict(entry).get('status')}" for name, entry in sorted(_dict(record.get("hosts")).items())
               if _dict(entry).get("status") in ("unreachable", "running")]
    failed = failed_checks(record)
    if failed:
        reasons.append(f"{len(failed)} check{'s' * (len(failed) != 1)} failed")
    if not reasons:
        reasons += [f"{name} failed" for name, entry in sorted(_dict(record.get("hosts")).items())
                    if _dict(entry).get("status") == "failed"]
    return "; ".join(reasons) or f"the run {status or 'has no status'}"


def rto(record: dict) -> list[dict]:
    """The runbook's recovery-time buckets for a run: detection, decision, execution,
    verification and total, each against its target (see ``figure``)."""
    incident = _dict(record.get("incident"))
    began, detected, decided = (parse_time(incident.get(key)) for key in ("started_at", "detected_at", "decided_at"))
    trigger = incident.get("trigger")
    manual = not trigger or trigger == "manual"
    started, ended = parse_time(record.get("started_at")), parse_time(record.get("ended_at"))
    succeeded = record.get("status") == "succeeded"
    stopped = None if succeeded else f"incomplete: {failure_summary(record)}"
    spans = {span["name"]: span for span in phase_spans(record)}
    no_detection = ("no detection time: a manual run; the watcher records it (or pass --data detected_at=...)"
                    if manual else "no detection time in the record")

    # Detection
    if detected is None:
        detection = figure("detection", None, None, note=no_detection)
    elif began is None:
        detection = figure("detection", None, None,
                           note="no incident start time: the watcher records it (or pass --data incident_started_at=...)")
    else:
        detection = figure("detection", began, detected)

    # Decision
    if detected is None:
        decision = figure("decision", None, None, note=no_detection)
    elif decided is None and started is None:
        decision = figure("decision", None, None, note="no decision time and no run start recorded")
    else:
        decision = figure("decision", detected, decided or started,
                          note=None if decided else "until the run started (no decision time recorded)")

    # Execution: maintenance on .. maintenance off
    present = [spans[name] for name in EXECUTION_PHASES if name in spans and spans[name]["started_at"]]
    if not present:
        why = ("a verify run executes nothing" if record.get("kind") == "verify"
               else "no execution phase recorded: the run stopped before maintenance on")
        execution = figure("execution", None, None, note=why)
    else:
        finished = (succeeded
                    or bool(spans.get("maintenance_off", {}).get("ended_at"))
                    or any(name in spans for name in AFTER_EXECUTION))
        execution = figure("execution", min(s["started_at"] for s in present), latest(present),
                           complete=finished, note=None if finished else stopped)

    # Verification: the verify_* phases
    checked = [spans[name] for name in VERIFY_PHASES if name in spans and spans[name]["started_at"]]
    if not checked:
        why = "no verification phase recorded" + ("" if succeeded else f": {failure_summary(record)}")
        verification = figure("verification", None, None, note=why)
    else:
        verification = figure("verification", min(s["started_at"] for s in checked), latest(checked),
                              complete=succeeded, note=stopped)

    # Total: incident start (else detection, else run start) .. verified (else run end)
    start, note = began, None
    if start is None and detected is not None:
        start, note = detected, "from detection: no incident start recorded"
    elif start is None:
        start, note = started or run_start(record), "from the run's start: no incident times recorded"
    end = latest(checked) if checked else (ended or latest(list(spans.values())))
    if start is None or end is None:
        total = figure("total", None, None, note="no start or end time recorded")
    else:
        total = figure("total", start, end, complete=succeeded,
                       note="; ".join(part for part in (note, stopped) if part) or None)
    return [detection, decision, execution, verification, total]


def latest(spans: list[dict]) -> datetime | None:
    """The last moment the spans reach: their latest end, or a start where a span never ended."""
    moments = [s["ended_at"] or s["started_at"] for s in spans if s["ended_at"] or s["started_at"]]
    return max(moments, default=None)


# Hosts and checks


def failed_checks(record: dict) -> list[dict]:
    """``[{"host", "phase", "name", "observed", "expected"}]`` for every check that failed."""
    return [{"host": name, **check} for name, entry in sorted(_dict(record.get("hosts")).items())
            for check in host_checks(_dict(entry)) if check["ok"] is False]


def host_checks(entry: dict) -> list[dict]:
    checks = []
    for check in _list(entry.get("checks")):
        check = _dict(check)
        checks.append({"phase": _text(check.get("phase")), "name": _text(check.get("name")),
                       "observed": _text(check.get("observed")), "expected": _text(check.get("expected")),
                       "ok": check.get("ok") if isinstance(check.get("ok"), bool) else None})
    return checks


def lift_command(record: dict, name: str, entry: dict) -> str:
    """How to lift maintenance on a host: the record's command, else the one the deploy prints."""
    return _text(entry.get("maintenance_lift")) or (
        f"pyinfra {record.get('inventory') or 'INVENTORY'} maintenance.py --data maintenance=off --limit {name}")


def host_view(record: dict, name: str, entry: dict) -> dict:
    operations = []
    for op in _list(entry.get("operations")):
        op = _dict(op)
        started, ended = parse_time(op.get("started_at")), parse_time(op.get("ended_at"))
        operations.append({
            "name": _text(op.get("name")) or "?", "phase": _text(op.get("phase")),
            "duration": duration(seconds_between(started, ended)) if ended else ("no end" if started else "not recorded"),
            "changed": {True: "yes", False: "no"}.get(op.get("changed"), "?"),
            "ok": op.get("ok") if isinstance(op.get("ok"), bool) else None,
            "error": _text(op.get("error")),
        })
    return {
        "name": name,
        "groups": ", ".join(_text(g) for g in _list(entry.get("groups"))),
        "status": _text(entry.get("status")) or "unknown",
        "error": _text(entry.get("error")),
        "snapshot": _text(entry.get("snapshot")),
        "safety_snapshot": _text(entry.get("safety_snapshot")),
        "displaced": [{"part": _text(part), "item": _text(item), "aside": pair[0], "restored": pair[1]}
                      for part, items in sorted(_dict(entry.get("displaced")).items())
                      for item, pair in sorted(_dict(items).items())
                      if isinstance(pair, list) and len(pair) == 2],
        "commit": _text(entry.get("commit")),
        "maintenance": _text(entry.get("maintenance")) or "unknown",
        "lift": lift_command(record, name, entry),
        "plan": [_text(line) for line in _list(entry.get("plan"))],
        "operations": operations,
        "checks": host_checks(entry),
    }


# Charts (geometry here; the HTML template only places it)


def nice_step(span: float, most: int = 8) -> float:
    """A round tick step (1, 2, 5 x 10^k seconds, or whole minutes) giving at most ``most`` ticks."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / step <= most:
            return step
    return 10 ** math.ceil(math.log10(span / most))


def tick_label(seconds: float) -> str:
    """``0 -> "0s"``, ``90 -> "1m 30s"``, ``120 -> "2m"``: whole seconds on an axis."""
    minutes, rest = divmod(int(seconds), 60)
    return " ".join(part for part in (f"{minutes}m" if minutes else "", f"{rest}s" if rest or not minutes else "") if part)


def axis(top: float, left: float, width: float) -> tuple[float, float, list[dict]]:
    """``(scale, top, ticks)`` for a time axis covering ``0..top`` seconds over ``width`` px."""
    step = nice_step(max(top, 1))
    top = step * max(1, math.ceil(max(top, 1) / step))
    scale = width / top
    ticks = [{"x": round(left + i * step * scale, 1), "label": tick_label(i * step)}
             for i in range(int(top / step) + 1)]
    return scale, top, ticks


CHART = {"width": 860, "label": 150, "right": 210, "row": 24, "bar": 14, "top": 8, "axis": 26}


def timeline_chart(spans: list[dict]) -> dict:
    """One bar per phase at its offset from the run's start; a phase with no end runs to the
    last moment recorded (drawn open)."""
    drawn = [s for s in spans if s["offset"] is not None]
    last = max([s["offset"] + (s["seconds"] or 0) for s in drawn], default=0)
    left, width = CHART["label"], CHART["width"] - CHART["label"] - CHART["right"]
    scale, _, ticks = axis(last, left, width)
    bars = []
    for index, span in enumerate(drawn):
        seconds = span["seconds"] if span["seconds"] is not None else max(last - span["offset"], 0)
        y = CHART["top"] + index * CHART["row"]
        bars.append({"name": span["name"], "x": round(left + span["offset"] * scale, 1), "y": y,
                     "width": round(max(seconds * scale, 1.5), 1), "height": CHART["bar"],
                     "text_y": y + CHART["bar"] - 3, "open": span["seconds"] is None,
                     "label": duration(span["seconds"]) if span["seconds"] is not None else "no end"})
    axis_y = CHART["top"] + len(drawn) * CHART["row"] + 4
    return {"width": CHART["width"], "height": axis_y + CHART["axis"], "left": left, "right": left + width,
            "axis_y": axis_y, "ticks": ticks, "bars": bars, "label_x": left - 8,
            "value_x": left + width + 8}


def rto_chart(figures: list[dict]) -> dict:
    """Per RTO bucket: a bar of the duration, a marker at the target, colored by status."""
    left, width = CHART["label"], CHART["width"] - CHART["label"] - CHART["right"]
    top = max([f["seconds"] or 0 for f in figures] + [f["target"] for f in figures])
    scale, _, ticks = axis(top, left, width)
    rows = []
    for index, item in enumerate(figures):
        y = CHART["top"] + index * CHART["row"]
        rows.append({
            "name": item["name"], "status": item["status"], "y": y, "height": CHART["bar"],
            "text_y": y + CHART["bar"] - 3,
            "width": None if item["seconds"] is None else round(max(item["seconds"] * scale, 1.5), 1),
            "target_x": round(left + item["target"] * scale, 1),
            "label": f"{figure_duration(item)} / {target_text(item['target'])}",
        })
    axis_y = CHART["top"] + len(rows) * CHART["row"] + 4
    return {"width": CHART["width"], "height": axis_y + CHART["axis"], "left": left, "right": left + width,
            "axis_y": axis_y, "ticks": ticks, "rows": rows, "label_x": left - 8, "value_x": left + width + 8}


# What the templates see


def method(record: dict, host: dict) -> str:
    """How a host was rolled back, in the post-mortem's words, from the operations it ran
    (what was planned but never reached is not a method); "" when it ran none."""
    if record.get("kind") == "verify":
        return "none: a verify run changes nothing"
    if not host["operations"]:
        return ""
    in_phase: dict[str, list[dict]] = {}
    for op in host["operations"]:
        in_phase.setdefault(op["phase"], []).append(op)
    parts = []
    ref, sha = _text(_dict(record.get("target")).get("commit")), host["commit"][:12]
    commit = (f"{sha} ({ref})" if sha and ref and not host["commit"].startswith(ref) else (sha or ref)) or "?"
    stack = in_phase.get("stack", [])
    if any(op["ok"] is False for op in stack):
        parts.append(f"git checkout to {commit} (failed)")
    elif any(op["changed"] == "yes" for op in stack):
        parts.append(f"git checkout to {commit} + docker compose up")
    elif stack and all(op["ok"] for op in stack):
        parts.append(f"stack already at {commit}")
    restores = in_phase.get("restore", [])
    if any(op["ok"] is False for op in restores):
        parts.append(f"database restore from snapshot {host['snapshot'] or '?'} (failed)")
    elif any(op["changed"] == "yes" for op in restores):
        parts.append(f"database restore from snapshot {host['snapshot'] or '?'}")
    elif restores and all(op["ok"] for op in restores):
        parts.append(f"snapshot {host['snapshot'] or '?'}: data already matched, nothing restored")
    if any(op["changed"] == "yes" for op in in_phase.get("caches", [])):
        parts.append("caches flushed")
    return " + ".join(parts) or "stopped before the stack or any data changed"


def context(record: dict) -> dict:
    """Everything the three templates show, computed once from a (possibly partial) record."""
    record = _dict(record)
    incident, target = _dict(record.get("incident")), _dict(record.get("target"))
    started, ended = parse_time(record.get("started_at")), parse_time(record.get("ended_at"))
    figures = [{**item, "target_text": target_text(item["target"]), "duration": figure_duration(item)}
               for item in rto(record)]
    spans = phase_spans(record)
    phases = [{"name": s["name"], "offset": "+" + duration(s["offset"]) if s["offset"] is not None else "?",
               "duration": duration(s["seconds"]) if s["seconds"] is not None else
               ("no end" if s["started_at"] else "not recorded"),
               "started_at": s["started_at"].strftime("%H:%M:%S.%f")[:-4] + "Z" if s["started_at"] else ""}
              for s in spans]
    hosts = [host_view(record, _text(name), _dict(entry)) for name, entry in sorted(_dict(record.get("hosts")).items())]
    for host in hosts:
        host["method"] = method(record, host)
    checks = [check for host in hosts for check in host["checks"]]
    status = _text(record.get("status")) or "unknown"
    return {
        "run": {
            "id": _text(record.get("run_id")) or "(no run id)",
            "kind": _text(record.get("kind")) or "run",
            "status": status,
            "who": _text(record.get("who")),
            "inventory": _text(record.get("inventory")),
            "command": _text(record.get("command")),
            "started_at": _text(record.get("started_at")),
            "ended_at": _text(record.get("ended_at")),
            "elapsed": duration(seconds_between(started, ended)) if started and ended else "",
            "snapshot": _text(target.get("snapshot")),
            "commit": _text(target.get("commit")),
            "tag": _text(record.get("tag")),
            "trigger": _text(incident.get("trigger")),
            "incident": {key: _text(incident.get(key)) for key in ("started_at", "detected_at", "decided_at")},
            "stopped": status != "succeeded",
            "why": failure_summary(record) if status != "succeeded" else "",
        },
        "figures": figures,
        "rto": {item["name"]: item for item in figures},
        "phases": phases,
        "hosts": hosts,
        "left_on": [host for host in hosts if host["maintenance"] == "on"],
        "maintenance_unknown": [host for host in hosts if host["maintenance"] not in ("on", "off")],
        "failed_checks": failed_checks(record),
        "failed_hosts": [host for host in hosts if host["status"] != "succeeded"],
        "failed_operations": [{"host": host["name"], **op} for host in hosts for op in host["operations"]
                              if op["ok"] is False],
        "unfinished_operations": [{"host": host["name"], **op} for host in hosts for op in host["operations"]
                                  if op["duration"] == "no end"],
        "checks_total": len(checks),
        "checks_failed": sum(check["ok"] is False for check in checks),
        "maintenance_seconds": maintenance_seconds(record),
        "timeline_chart": timeline_chart(spans),
        "rto_chart": rto_chart(figures),
    }


def maintenance_seconds(record: dict) -> str:
    """How long writes were blocked: maintenance on's start to maintenance off's end."""
    spans = raw_spans(record)
    on, off = _dict(spans.get("maintenance_on")), _dict(spans.get("maintenance_off"))
    return duration(seconds_between(on.get("started_at"), off.get("ended_at"))) if on and off.get("ended_at") else ""


# Rendering


def cell(value) -> str:
    """A value inside a Markdown table cell: one line, pipes escaped, no HTML tag (a ``<``
    before a letter is escaped; ``< 85%`` stays readable)."""
    return TAG_START.sub("&lt;", " ".join(_text(value).split())).replace("|", "\\|")


def code(value) -> str:
    """Inline Markdown code that survives backticks in the value."""
    value = " ".join(_text(value).split())
    if not value:
        return ""
    longest = max((len(part) for part in _backtick_runs(value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if "`" in value else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run in the lines."""
    longest = max((len(run) for line in lines for run in _backtick_runs(line)), default=0)
    return "`" * max(3, longest + 1)


def _backtick_runs(value: str) -> list[str]:
    runs, current = [], ""
    for char in value:
        if char == "`":
            current += char
        elif current:
            runs.append(current)
            current = ""
    return runs + ([current] if current else [])


def _template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FunctionLoader(_template),
    autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
ENVIRONMENT.filters.update(cell=cell, code=code, fence=fence)


def render(template: str, record: dict) -> str:
    return ENVIRONMENT.get_template(template).render(**context(record))


def render_markdown(record: dict) -> str:
    return render("report.md.j2", record)


def render_html(record: dict) -> str:
    return render("report.html.j2", record)


def render_postmortem(record: dict) -> str:
    return render("postmortem.md.j2", record)


RENDERERS = {"report.md": render_markdown, "report.html": render_html, "postmortem.md": render_postmortem}


def write_reports(record: dict, directory: Path, formats: tuple[str, ...] = ("md", "html")) -> list[Path]:
    """Render the reports into ``directory`` (beside the record) and return their paths.

    ``md`` writes ``report.md`` and ``postmortem.md``, ``html`` writes ``report.html``. Each
    file replaces the last atomically and is private to its owner, like the record.
    """
    directory = Path(directory)
    written = []
    for name in [name for kind in formats for name in REPORT_FILES[kind]]:
        path = directory / name
        write_private(path, RENDERERS[name](record))
        written.append(path)
    return written


# Finding a run


def recent_runs(runs_dir: Path, count: int = NEWEST_SHOWN) -> list[str]:
    """The newest run ids in ``runs_dir``, newest first (an id starts with its UTC time)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    ids = sorted((path.name for path in runs_dir.iterdir() if (path / "record.json").is_file()), reverse=True)
    return ids[:count]


def find_record(run: str, runs_dir: Path) -> Path:
    """The record.json for RUN: a record path, a run directory, a run id in ``runs_dir``, a
    unique prefix of one (``20261121T1300``), or ``latest``."""
    path = Path(run)
    if path.is_file():
        return path
    if path.is_dir() and (path / "record.json").is_file():
        return path / "record.json"
    if path.is_dir():
        raise RecordError(f"{path} is a directory without a record.json")
    runs_dir = Path(runs_dir)
    ids = recent_runs(runs_dir, count=10**6)
    if run == "latest" and ids:
        return runs_dir / ids[0] / "record.json"
    if "/" not in run and run not in (".", ".."):
        if (runs_dir / run / "record.json").is_file():
            return runs_dir / run / "record.json"
        matches = [run_id for run_id in ids if run_id.startswith(run)]
        if len(matches) == 1:
            return runs_dir / matches[0] / "record.json"
        if len(matches) > 1:
            raise RecordError(f"{run!r} matches {len(matches)} runs in {runs_dir}: {', '.join(matches[:NEWEST_SHOWN])}"
                              + (", ..." if len(matches) > NEWEST_SHOWN else ""))
    newest = ids[:NEWEST_SHOWN]
    known = (f"the newest: {', '.join(newest)}" if newest else "it holds no runs")
    raise RecordError(f"no run {run!r} in {runs_dir} ({known})")


def load_record(path_or_id, runs_dir) -> tuple[dict, Path]:
    """``(record, path of record.json)`` for a run id, run directory or record path."""
    path = find_record(str(path_or_id), Path(runs_dir))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"cannot read {path}: {error}")
    try:
        record = json.loads(text)
    except ValueError as error:
        raise RecordError(f"{path} is not valid JSON: {error}")
    if not isinstance(record, dict) or not ("run_id" in record or "hosts" in record):
        raise RecordError(f"{path} is not a run record (no run_id or hosts)")
    return record, path
