"""
The maintenance window of a whole-stack rollback, as the data grows (issue 21): one
``rollback.py`` restoring every component of a sandbox host, with its safety snapshot,
against the runbook done by hand in the same run, at several sizes of data.

    .venv/bin/python bench/window.py [--scales 1 4] [--runs 1] [--quick] [--host sandbox-1]

Scale 1 is the whole-stack benchmark's default sizes (``bench/stack.py``): MySQL +200 MB,
Milvus volume +200 MB, 50,000 MongoDB documents, 5,000 Qdrant points; scale 4 is four
times each. --quick runs scales 0.25 and 1 (the same fourfold growth, in minutes).
Scales run smallest first (growing the data again only adds to Qdrant's points). Per
scale the host's data is grown (``stack.grown``), one snapshot taken, and run by run
every component changed (``stack.changed``) and put back:

- ours: ``rollback.py --data snapshot=<id>``, with its safety snapshot (the default: the
  design stages MySQL and MongoDB before the window, swaps inside it, and dumps what the
  swap displaced after verification);
- by hand, the runbook: writes stopped (``MAINTENANCE_MODE=true`` in the env file, the
  backend recreated with ``docker compose up -d --wait backend``, nginx reloaded), each
  component restored with the raw tools one after the other (``stack.hand_steps``), writes
  allowed again (the same with ``false``); each step clocked on the host, the downtime is
  their sum. That a write answers 503 in between, and not after, is checked (untimed).

From our run's record (``pyinfra_deploys.report``): the window, maintenance on's start to
maintenance off's end; the time to verified, the run's start (its first operation:
pyinfra's start, connecting and the plan come before it) to the end of verify phase 3
(the durable safety snapshot comes after it); and where the window's seconds went, phase
by phase.

Targets: window at scale 1 <= 20 s; window(scale 4) / window(scale 1) <= 1.25; window /
by-hand downtime <= 0.25 at scale 4; time to verified <= 1.0 x the by-hand downtime at
scale 1. At the end the host is rolled back to a snapshot taken before the data was
grown, and what was grown (the aside copies too) and every snapshot taken is removed,
also when a run fails. Writes bench/results/window.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from datetime import datetime, timezone

from harness import (
    deploy,
    host_named,
    machine,
    median,
    progress,
    ratio,
    report,
    row,
    sandbox,
    seconds_on_host,
    sql,
    timed,
)
from stack import BLOB, DAMAGE, changed, grown, hand_steps, restore_groups, volume_path
from stack import ROOT as SNAPSHOTS

from pyinfra_deploys.report import raw_spans, run_start, seconds_between
from tests.e2e.test_engines import MONGO, in_backend

BASE = {"mysql_mb": 200, "volume_mb": 200, "documents": 50_000, "points": 5_000}
WINDOW_PHASES = ("maintenance_on", "safety_in_window", "stack", "restore", "caches", "verify_integrity",
                 "maintenance_off")
VERIFY_PHASES = ("verify_infrastructure", "verify_connectivity", "verify_functionality")
QUICK_SCALES = [0.25, 1.0]
# The runbook's write quiesce by hand (sandbox/README.md): the env file's flag, the backend
# recreated with it and waited for, nginx reloaded (it resolves the new container).
WRITES = ("sed -i 's/^MAINTENANCE_MODE=.*/MAINTENANCE_MODE={value}/' .env && "
          "docker compose up -d --wait backend 2>&1 && docker compose exec -T nginx nginx -s reload 2>&1")
WRITE_PROBE = ("curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' "
               "-d '{\"name\": \"bench\"}' http://127.0.0.1:8090/api/v1/knowledge-bases")


# Pure: sizes and figures from a run record


def sizes(scale: float) -> dict[str, int]:
    """What ``stack.grown`` adds at ``scale`` (1: MySQL +200 MB, Milvus +200 MB, 50,000
    documents, 5,000 points)."""
    return {name: max(1, round(value * scale)) for name, value in BASE.items()}


def scale_label(scale: float) -> str:
    return f"{scale:g}"


def window_span(record: dict) -> tuple[datetime | None, datetime | None]:
    """Maintenance on's start and maintenance off's end; without maintenance (a host that
    has none), the first and last phase of the window."""
    spans = raw_spans(record)
    present = [spans[name] for name in WINDOW_PHASES if name in spans]
    if "maintenance_on" in spans and "maintenance_off" in spans:
        return spans["maintenance_on"]["started_at"], spans["maintenance_off"]["ended_at"]
    starts = [span["started_at"] for span in present if span["started_at"]]
    ends = [span["ended_at"] for span in present if span["ended_at"]]
    return min(starts, default=None), max(ends, default=None)


def window_seconds(record: dict) -> float | None:
    return seconds_between(*window_span(record))


def verified_at(record: dict) -> datetime | None:
    """The end of verify phase 3, else of the last verify phase that ended."""
    spans = raw_spans(record)
    if spans.get("verify_functionality", {}).get("ended_at"):
        return spans["verify_functionality"]["ended_at"]
    return max((spans[name]["ended_at"] for name in VERIFY_PHASES if spans.get(name, {}).get("ended_at")),
               default=None)


def to_verified_seconds(record: dict, since: datetime | None = None) -> float | None:
    """The run's start (or ``since``) to verified."""
    return seconds_between(since or run_start(record), verified_at(record))


def window_parts(record: dict) -> dict[str, float]:
    """Seconds of each phase inside the window, in the window's order, and ``between
    phases``: the rest of the window (pyinfra going from one operation to the next)."""
    spans = raw_spans(record)
    parts = {name: seconds_between(spans[name]["started_at"], spans[name]["ended_at"]) or 0.0
             for name in WINDOW_PHASES if name in spans}
    window = window_seconds(record)
    if window is not None:
        parts["between phases"] = window - sum(parts.values())
    return {name: round(seconds, 2) for name, seconds in parts.items()}


def phase_length(record: dict, name: str) -> float | None:
    span = raw_spans(record).get(name)
    return seconds_between(span["started_at"], span["ended_at"]) if span else None


def medians_of(samples: list[dict]) -> dict[str, float]:
    names = list(dict.fromkeys(name for sample in samples for name in sample))
    return {name: round(median([sample.get(name, 0.0) for sample in samples]), 2) for name in names}


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def target_rows(results: list[dict]) -> list[dict]:
    """The issue's four targets from the per-scale medians: the window at scale 1 (else the
    smallest), its growth from the smallest scale to the largest, the largest scale's
    window against its by-hand downtime, and the time to verified against the by-hand
    downtime at scale 1 (else the smallest)."""
    by_scale = {item["scale"]: item for item in results}
    low, high = by_scale[min(by_scale)], by_scale[max(by_scale)]
    one = by_scale.get(1.0) or low
    rows = [row(f"   scale {scale_label(item['scale'])}: by-hand downtime", item["by_hand_downtime_s"], None,
                item["by_hand_downtime_s"], "-", None) for item in results]
    rows += [row(f"   scale {scale_label(item['scale'])}: pyinfra's start to verified / by hand",
                 item["to_verified_from_launch_s"], item["by_hand_downtime_s"],
                 ratio(item["to_verified_from_launch_s"], item["by_hand_downtime_s"]), "-", None)
             for item in results]
    rows.append(row(f"window: scale {scale_label(one['scale'])} (maintenance on -> off)", one["window_s"], None,
                    one["window_s"], "<= 20 s", one["window_s"] <= 20))
    if high is not low:
        growth = ratio(high["window_s"], low["window_s"])
        rows.append(row(f"window: scale {scale_label(high['scale'])} / scale {scale_label(low['scale'])}",
                        high["window_s"], low["window_s"], growth, "<= 1.25", growth <= 1.25))
    share = ratio(high["window_s"], high["by_hand_downtime_s"])
    rows.append(row(f"window / by-hand downtime, scale {scale_label(high['scale'])}", high["window_s"],
                    high["by_hand_downtime_s"], share, "<= 0.25", share <= 0.25))
    verified = ratio(one["to_verified_s"], one["by_hand_downtime_s"])
    rows.append(row(f"time to verified / by-hand downtime, scale {scale_label(one['scale'])}", one["to_verified_s"],
                    one["by_hand_downtime_s"], verified, "<= 1.0", verified <= 1.0))
    return rows


# On the sandbox


def snapshot_taken(box, host, label: str) -> str:
    run = deploy(box, "backup.py", "--limit", host.name, data={"label": label})
    return re.search(rf"snapshot (\S+-{re.escape(label)})\b", run.output).group(1)


def dump_sizes(host, snapshot_id: str) -> dict[str, float]:
    """MB of the snapshot's files, per component."""
    manifest = json.loads(host.ssh(f"cat {SNAPSHOTS}/{snapshot_id}/manifest.json"))
    files = manifest["files"]
    found: dict[str, float] = {}
    for part in manifest["parts"].values():
        names = ([part["file"]] if part.get("file") else []) + [v["file"] for v in (part.get("volumes") or {}).values()]
        found[part["component"]] = found.get(part["component"], 0.0) + sum(
            int(files.get(name, {}).get("size") or 0) for name in names) / 1e6
    return {name: round(mb, 1) for name, mb in found.items()}


def writes_answer(host) -> str:
    return host.ssh(WRITE_PROBE, check=False)


def by_hand(host, steps: dict[str, str]) -> dict[str, float]:
    """The runbook, clocked step by step on the host: writes stopped, each component, writes allowed."""
    def clocked(command: str) -> float:
        return seconds_on_host(host, f"cd /srv/layra && set -o pipefail && {command}")

    seconds = {"writes stopped": clocked(WRITES.format(value="true"))}
    answer = writes_answer(host)
    if answer != "503":
        raise SystemExit(f"{host.name}: writes not stopped by hand: a POST answered {answer!r}, not 503")
    for name, command in steps.items():
        seconds[name] = clocked(command)
    seconds["writes allowed"] = clocked(WRITES.format(value="false"))
    answer = writes_answer(host)
    if answer == "503":
        raise SystemExit(f"{host.name}: writes still answer 503 after being allowed again by hand")
    return seconds


def ours(box, host, snapshot_id: str) -> tuple[dict, dict]:
    """One rollback with its safety snapshot: (figures, record); the safety snapshot is removed."""
    launched = datetime.now(timezone.utc)
    wall, run = timed(lambda: deploy(box, "rollback.py", "--limit", host.name, data={"snapshot": snapshot_id}))
    record = run.record()
    safety = record.get("hosts", {}).get(host.name, {}).get("safety_snapshot")
    kept = bool(safety) and host.ssh(f"test -f {SNAPSHOTS}/{safety}/manifest.json && echo yes", check=False) == "yes"
    if safety:
        host.ssh(f"rm -rf {SNAPSHOTS}/{shlex.quote(safety)} {SNAPSHOTS}/{shlex.quote(safety)}.partial")
    figures = {
        "window_s": window_seconds(record),
        "to_verified_s": to_verified_seconds(record),
        "to_verified_from_launch_s": to_verified_seconds(record, since=launched),
        "process_s": wall,
        "stage_s": phase_length(record, "stage"),
        "safety_snapshot_s": phase_length(record, "safety_snapshot"),
        "window_phases": window_parts(record),
        "restore_by_component": restore_groups(run.output),
        "safety_snapshot_kept": kept,
        "run_id": record.get("run_id"),
    }
    if figures["window_s"] is None or figures["to_verified_s"] is None:
        raise SystemExit(f"run {record.get('run_id')}: its record has no window or no verify phase: "
                         f"{sorted(raw_spans(record))}")
    return figures, record


def measured_scale(box, host, scale: float, runs: int, taken: list[str]) -> dict:
    size = sizes(scale)
    grown(host, size["mysql_mb"], size["volume_mb"], size["documents"], size["points"])
    progress(f"scale {scale_label(scale)}: one snapshot of everything")
    snapshot_id = snapshot_taken(box, host, f"windowbench-x{scale_label(scale)}")
    taken.append(snapshot_id)
    steps = hand_steps(host, snapshot_id)
    samples = []
    for number in range(1, runs + 1):
        changed(host)
        progress(f"scale {scale_label(scale)}, run {number}/{runs}: rollback.py with its safety snapshot")
        figures, _ = ours(box, host, snapshot_id)
        changed(host)
        progress(f"scale {scale_label(scale)}, run {number}/{runs}: the runbook by hand")
        hand = by_hand(host, steps)
        figures["by_hand"] = {name: round(seconds, 2) for name, seconds in hand.items()}
        figures["by_hand_downtime_s"] = sum(hand.values())
        samples.append(figures)
        print(f"   window {figures['window_s']:.1f}s, to verified {figures['to_verified_s']:.1f}s "
              f"(from pyinfra's start {figures['to_verified_from_launch_s']:.1f}s), whole run {figures['process_s']:.1f}s; "
              f"by hand {figures['by_hand_downtime_s']:.1f}s: "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in hand.items()), flush=True)
    snapshot_mb = dump_sizes(host, snapshot_id)
    host.ssh(f"rm -rf {SNAPSHOTS}/{snapshot_id}")
    taken.remove(snapshot_id)

    def med(key: str) -> float:
        return round(median([sample[key] for sample in samples]), 2)

    return {
        "scale": scale, **{key: med(key) for key in ("window_s", "to_verified_s", "by_hand_downtime_s")},
        "mysql_mb": size["mysql_mb"], "volume_mb": size["volume_mb"],
        "documents": size["documents"], "points": size["points"], "snapshot_mb": snapshot_mb,
        **{key: med(key) for key in ("to_verified_from_launch_s", "process_s", "stage_s", "safety_snapshot_s")},
        "window_phases": medians_of([sample["window_phases"] for sample in samples]),
        "restore_by_component": medians_of([sample["restore_by_component"] for sample in samples]),
        "by_hand": medians_of([sample["by_hand"] for sample in samples]),
        "samples": [{key: (rounded(value) if isinstance(value, float) else value) for key, value in sample.items()}
                    for sample in samples],
    }


def cleaned_up(box, host, before: str | None, taken: list[str]) -> None:
    """The host as before: maintenance off, the data at the snapshot taken before growing
    it, the grown data's aside copies gone, every snapshot of this run removed."""
    progress("cleaning up: maintenance off, the host back to the snapshot taken before, snapshots removed")
    problems = []
    lifted = box.pyinfra("maintenance.py", "--limit", host.name, "--data", "maintenance=off")
    if not lifted.ok:
        problems.append(f"maintenance off failed:\n{lifted.output[-2000:]}")
    back = before and box.pyinfra("rollback.py", "--limit", host.name, "--data", f"snapshot={before}",
                                  "--data", "safety_snapshot=skip", timeout=3600)
    if not (back and back.ok):
        problems.append("the rollback to the snapshot taken before failed: the grown data removed by itself; "
                        "Qdrant's points from id 100000 stay (the sandbox's stand-in deletes no points)"
                        + (f"\n{back.output[-2000:]}" if back else ""))
        for action in (lambda: sql(host, "DROP TABLE IF EXISTS bench_rows", "layra"),
                       lambda: in_backend(host, MONGO + "db.bench.drop()"),
                       lambda: host.ssh(f"rm -f {volume_path(host)}/{BLOB} {volume_path(host)}/{DAMAGE}")):
            try:
                action()
            except (AssertionError, OSError) as error:
                problems.append(str(error))
    # what the restores moved aside: the displaced copies of the grown data
    for action in (lambda: sql(host, "DROP TABLE IF EXISTS layra__pre_restore.bench_rows, layra__restore.bench_rows", ""),
                   lambda: in_backend(host, "import pymongo; c = pymongo.MongoClient('mongodb', 27017); "
                                            "c['layra']['__pre_restore__bench'].drop(); c['layra']['__restore__bench'].drop()"),
                   lambda: host.ssh(f"p={shlex.quote(volume_path(host))}.pre-restore; rm -f \"$p/{BLOB}\" \"$p/{DAMAGE}\"")):
        try:
            action()
        except (AssertionError, OSError) as error:
            problems.append(str(error))
    for snapshot_id in [*taken, *([before] if before else [])]:
        host.ssh(f"rm -rf {SNAPSHOTS}/{shlex.quote(snapshot_id)}", check=False)
    if problems:
        print("CLEAN-UP INCOMPLETE on " + host.name + ":\n" + "\n".join(problems), flush=True)


def where_window_went(results: list[dict]) -> str:
    lines = ["where the window's seconds go (median s per phase):"]
    for item in results:
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in item["window_phases"].items())
        lines.append(f"   scale {scale_label(item['scale'])}: window {item['window_s']:.1f} = {parts}")
        restores = ", ".join(f"{name} {seconds:.1f}" for name, seconds in item["restore_by_component"].items())
        if restores:
            lines.append(f"      its restore phase, each component (side by side): {restores}")
        hand = ", ".join(f"{name} {seconds:.1f}" for name, seconds in item["by_hand"].items())
        lines.append(f"      by hand {item['by_hand_downtime_s']:.1f} = {hand}")
        lines.append(f"      outside the window: stage {item['stage_s'] or 0:.1f}, safety snapshot after verify "
                     f"{item['safety_snapshot_s'] or 0:.1f}; whole run {item['process_s']:.1f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring (and README, Performance) for what each side runs.")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0],
                        help="sizes of data, 1 = MySQL +200 MB, Milvus +200 MB, 50,000 documents, 5,000 points "
                             "(default: 1 4)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each side per scale; medians (default 1)")
    parser.add_argument("--quick", action="store_true", help=f"scales {' and '.join(map(scale_label, QUICK_SCALES))}")
    parser.add_argument("--host", default="sandbox-1", help="sandbox host (default sandbox-1, all five engines)")
    options = parser.parse_args()
    scales = sorted(set(QUICK_SCALES if options.quick else options.scales))

    box = sandbox()
    host = host_named(box, options.host)
    info = machine(box)
    deploy(box, "rollback.py", "--limit", host.name, data={"commit": "v1.0.0"})
    before, taken, results = None, [], []
    try:
        progress("a snapshot of the host as it is, to put it back afterwards")
        before = snapshot_taken(box, host, "windowbench-before")
        for scale in scales:
            results.append(measured_scale(box, host, scale, options.runs, taken))
    finally:
        cleaned_up(box, host, before, taken)

    print("\n" + where_window_went(results), flush=True)
    rows = target_rows(results)
    runs = [{key: item[key] for key in ("scale", "window_s", "to_verified_s", "by_hand_downtime_s", "mysql_mb",
                                        "volume_mb")} | item for item in results]
    report("window", f"The maintenance window on {host.name} as the data grows (scales "
                     f"{', '.join(map(scale_label, scales))}), vs the runbook by hand; medians of {options.runs} run(s)",
           rows, {"runs": runs, "host": host.name, "runs_per_scale": options.runs, "quick": options.quick}, info)


if __name__ == "__main__":
    main()
