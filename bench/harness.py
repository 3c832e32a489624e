"""
What every benchmark shares: the sandbox (hosts, SSH, pyinfra runs), timing, medians, the
machine it ran on, the results table and the JSON file under ``bench/results/``.

Every script measures our side and its baseline in the same run, alternating them run by
run so that a slow minute of the machine weighs on both, and prints medians and ratios.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

from tests.e2e.conftest import STATE, Run, Sandbox, SandboxHost, sql  # noqa: E402,F401  (the e2e harness)

# The hand side's client, for pipes (``sql`` runs one statement): the root password stays on
# the host, read there from the stack's env file and handed over in the client's environment.
HAND_MYSQL = ('MYSQL_PWD=$(sed -n "s/^MYSQL_ROOT_PASSWORD=//p" .env) '
              "docker compose exec -T -e MYSQL_PWD mysql")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(action) -> tuple[float, object]:
    start = time.monotonic()
    result = action()
    return time.monotonic() - start, result


def seconds_on_host(host, script: str) -> float:
    """Seconds ``script`` (bash) takes, clocked on the host: an SSH connection's set-up,
    which neither side pays inside a pyinfra run (one connection per host), stays out."""
    clocked = ("start=$(date +%s%N); ( " + script + "\n) >/dev/null; rc=$?; end=$(date +%s%N); "
               "echo $(( (end - start) / 1000 )); exit $rc")
    return int(host.ssh(f"bash -c {shlex.quote(clocked)}").splitlines()[-1]) / 1e6


def phase_seconds(record: dict) -> dict[str, float]:
    """Each phase of a run, in seconds, in the order it ran, from the run's record."""
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return {name: (at(phase["ended_at"]) - at(phase["started_at"])).total_seconds()
            for name, phase in record.get("phases", {}).items()}


def where_time_went(walls: list[float], records: list[dict]) -> dict[str, float]:
    """Median seconds per phase over runs, and ``outside phases``: the rest of the wall
    time (pyinfra's start, connecting, the plan, the run record and report)."""
    runs = [phase_seconds(record) for record in records]
    names = list(dict.fromkeys(name for phases in runs for name in phases))
    medians = {name: median([phases.get(name, 0.0) for phases in runs]) for name in names}
    medians["outside phases"] = median([wall - sum(phases.values()) for wall, phases in zip(walls, runs)])
    return {name: round(seconds, 2) for name, seconds in medians.items()}


def time_went_line(parts: dict[str, float]) -> str:
    return "   where our time went (median s): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in parts.items())


def cpu_busy_seconds() -> float:
    """CPU time this whole machine has spent busy since boot, summed over its cores
    (/proc/stat: every state but idle and iowait). The sandbox hosts run on this machine:
    their work, pyinfra's and dockerd's all count."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def sandbox() -> Sandbox:
    if not (STATE / "hosts.json").exists():
        raise SystemExit(f"no sandbox at {STATE}: run `make sandbox-up` (make bench does it)")
    return Sandbox()


def host_named(box: Sandbox, name: str) -> SandboxHost:
    for candidate in box.hosts:
        if candidate.name == name:
            return candidate
    raise SystemExit(f"no sandbox host {name!r} (have: {', '.join(h.name for h in box.hosts)}); "
                     f"SANDBOX_HOSTS=N make sandbox-up starts more")


def deploy(box: Sandbox, script: str, *args: str, data: dict | None = None, timeout: int = 3600) -> Run:
    """A pyinfra run that must succeed: ``--data key=value`` for each of ``data``."""
    arguments = list(args)
    for key, value in (data or {}).items():
        arguments += ["--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    run = box.pyinfra(script, *arguments, timeout=timeout)
    if not run.ok:
        raise SystemExit(f"pyinfra {script} {shlex.join(arguments)} failed:\n{run.output[-4000:]}")
    return run


def machine(box: Sandbox | None = None) -> dict:
    """What the numbers were measured on."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")), 0)
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(), "docker": docker,
        "hosts": "sandbox: Docker-in-Docker hosts on this machine, reached over SSH (sandbox/README.md)",
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def describe_machine(info: dict) -> str:
    return (f"{info['cpu'] or 'unknown CPU'}, {info['cores']} cores, {info['memory_gib']} GiB, "
            f"Linux {info['kernel']}, Docker {info['docker']}")


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("inf")


def row(measure: str, ours: float, baseline: float | None, value: float, target: str, met: bool | None,
        unit: str = "s") -> dict:
    """One line of the results table: ``value`` is the ratio (or figure) the target is about."""
    return {"measure": measure, "ours": round(ours, 3), "baseline": None if baseline is None else round(baseline, 3),
            "value": round(value, 3), "unit": unit, "target": target, "met": met}


def table(rows: list[dict]) -> str:
    header = f"{'measure':<58} {'ours':>9} {'baseline':>9} {'ratio':>7}  {'target':<10} met"
    lines = [header, "-" * len(header)]
    for item in rows:
        unit = item["unit"]
        baseline = "" if item["baseline"] is None else f"{item['baseline']:.1f}{unit}"
        met = {True: "yes", False: "NO", None: "-"}[item["met"]]
        lines.append(f"{item['measure']:<58} {item['ours']:>8.1f}{unit} {baseline:>9} "
                     f"{item['value']:>7.2f}  {item['target']:<10} {met}")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The same table for the README."""
    lines = ["| measure | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for item in rows:
        unit = item["unit"]
        baseline = "" if item["baseline"] is None else f"{item['baseline']:.1f} {unit}".strip()
        met = {True: "yes", False: "**no**", None: "-"}[item["met"]]
        measure = item["measure"].strip().replace("|", "\\|")
        lines.append(f"| {measure} | {item['ours']:.1f} {unit} | {baseline} | {item['value']:.2f} "
                     f"| {item['target']} | {met} |".replace("  ", " "))
    return "\n".join(lines)


def written(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def report(name: str, title: str, rows: list[dict], details: dict, info: dict) -> None:
    """Print the table and write ``bench/results/<name>.json``."""
    print(f"\n{title}\n{describe_machine(info)}\n")
    print(table(rows))
    path = written(name, {"benchmark": name, "title": title, "machine": info, "rows": rows, **details})
    print(f"\nwritten {path.relative_to(ROOT)}")
