"""
`layra-rollback rehearse`: a rollback rehearsed on staging with a production snapshot,
each step timed, the rollback judged against the runbook's RTO targets.

    layra-rollback rehearse --staging inventories/staging.py --source inventories/prod.py \\
        --snapshot 20261121T120000Z-pre-release [--release v1.1.0 --watch-window 300]

Each step is a pyinfra run in a subprocess, as an operator would type it (its output
shown as it comes and kept beside the report):

1. copy      ``pyinfra -y STAGING rehearse.py --data snapshot=ID --data source=SOURCE``
             (the only step that touches the source inventory, and it only reads it)
2. restore   ``pyinfra -y STAGING rollback.py --data snapshot=ID``: staging at the snapshot
3. release   ``pyinfra -y STAGING migrate.py --data commit=RELEASE [--data watch_window=W]``,
             with --release only: the guarded release under test. Exit 0: the release held.
             Otherwise its run record (kind ``migrate``) says ``"rollback_run": "<run id>"``
             when it rolled itself back (that run is then the rollback under test), and
             nothing when it failed otherwise
4. rollback  ``pyinfra -y STAGING rollback.py --data snapshot=ID``: the rollback under test,
             unless the release already rolled itself back

Then the report, ``<runs>/<UTC time>-rehearsal/rehearsal.md`` and ``rehearsal.json``
(directory 0700, files 0600, beside each step's log): the inventories and hosts, the
snapshot, each step's start, duration and outcome, and per rollback run its phases and
RTO buckets (``report.rto``) against the targets. It passes when every step is ok, every
rollback run verified, and each one's execution met its target. Exit 0 on pass, 1 on fail.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import click

from facts.snapshots import SNAPSHOT_ID_RULE, valid_snapshot_id
from facts.stack import REF_RULE, valid_ref

from .. import report
from ..pyinfra_run import PROJECT, host_lines, pyinfra_env, pyinfra_error
from ..runs import RUN_LINE, stamp, utc_now, write_private
from ..snapshot_copy import address
from .snapshots import inventory_hosts

RUN_ID = re.compile(r"^(\d{8}T\d{6}Z)-[A-Za-z0-9._-]+$")
ID_TIME = "%Y%m%dT%H%M%SZ"
STEPS = ("copy", "restore", "release", "rollback")
TITLES = {"restore": "Restore of staging to the snapshot", "rollback": "Rollback under test"}
READ_ONLY = "{hosts}: read only — fingerprints/snapshots not written"


@dataclass
class Finished:
    """What a pyinfra subprocess left: its exit status and everything it printed."""

    returncode: int
    output: str


# Running pyinfra


def entry_file(name: str) -> str:
    """A deploy entry file of this project, relative when run from the project (as typed)."""
    path = PROJECT / name
    return name if Path.cwd().resolve() == PROJECT else str(path)


def pyinfra_command(staging: str, deploy: str, **data) -> list[str]:
    """``["pyinfra", "-y", STAGING, DEPLOY, "--data", "key=value", ...]``, as an operator types it."""
    command = ["pyinfra", "-y", staging, entry_file(deploy)]
    for key, value in data.items():
        if value is not None:
            command += ["--data", f"{key}={value}"]
    return command


def stream_pyinfra(command: list[str], env: dict, log: Path) -> Finished:
    """Run ``command`` (``pyinfra ...``) with this interpreter, its output echoed to stderr
    as it comes and written to ``log`` (0600)."""
    argv = [sys.executable, "-m", "pyinfra", *command[1:]]
    lines = []
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1)
        try:
            for line in process.stdout:
                click.echo(line, nl=False, err=True)
                out.write(line)
                lines.append(line)
        finally:
            process.stdout.close()
            returncode = process.wait()
    return Finished(returncode, "".join(lines))


def step_env(runs_dir: Path) -> dict:
    """The subprocesses' environment: this project importable, run records in ``runs_dir``."""
    return pyinfra_env(LAYRA_RUNS_DIR=str(runs_dir))


# Run records the steps leave


def load_json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_record(output: str, runs_dir: Path, kind: str, since: datetime) -> tuple[dict | None, Path | None]:
    """The run record a step wrote: the one its output names (``--> Run ID ...: record PATH``),
    else the newest of ``kind`` in ``runs_dir`` started no earlier than the step."""
    for match in reversed(list(RUN_LINE.finditer(output))):
        record = load_json(Path(match.group(3)))
        if record is not None:
            return record, Path(match.group(3))
    floor = since.strftime(ID_TIME)
    for path in sorted(Path(runs_dir).glob("*/record.json"), reverse=True):
        found = RUN_ID.match(path.parent.name)
        if not found or found.group(1) < floor:
            continue
        record = load_json(path)
        if record is not None and record.get("kind") == kind:
            return record, path
    return None, None


def release_outcome(returncode: int, record: dict | None) -> tuple[str, str | None]:
    """``(outcome, rollback run id)`` of the release step, by migrate.py's contract:
    ``held`` (exit 0), ``rolled back`` (it rolled itself back in run ``rollback_run``),
    ``failed`` (anything else)."""
    if returncode == 0:
        return "held", None
    rollback_run = (record or {}).get("rollback_run")
    if isinstance(rollback_run, str) and RUN_ID.match(rollback_run):
        return "rolled back", rollback_run
    return "failed", None


def rollback_summary(step: str, record: dict, path: Path | None, under_test: bool) -> dict:
    """What the report shows of one rollback run, from its record (``report``'s helpers):

    .. code:: python

        {"step": "rollback", "under_test": True, "run_id": "...", "status": "succeeded",
         "record": ".../record.json", "verified": True, "checks": 14, "checks_failed": 0,
         "changed": True, "left_on": [{"host": "sandbox-2", "lift": "pyinfra ..."}],
         "phases": [{"name": "stack", "offset": 1.2, "seconds": 10.5}, ...],
         "rto": [{"name": "execution", "seconds": 42.0, "target": 300, "status": "met", ...}, ...]}
    """
    checks = [check for entry in record.get("hosts", {}).values() for check in report.host_checks(entry)]
    failed = report.failed_checks(record)
    changed = any(op.get("changed") for entry in record.get("hosts", {}).values()
                  for op in entry.get("operations", []))
    return {
        "step": step,
        "under_test": under_test,
        "run_id": record.get("run_id"),
        "status": record.get("status"),
        "record": str(path) if path else None,
        "verified": record.get("status") == "succeeded" and bool(checks) and not failed,
        "checks": len(checks),
        "checks_failed": len(failed),
        "changed": changed,
        "left_on": [{"host": name, "lift": report.lift_command(record, name, entry)}
                    for name, entry in sorted(record.get("hosts", {}).items()) if entry.get("maintenance") == "on"],
        "phases": [{"name": span["name"], "offset": span["offset"], "seconds": span["seconds"]}
                   for span in report.phase_spans(record)],
        "rto": report.rto(record),
    }


def execution_of(run: dict) -> dict:
    return next(item for item in run["rto"] if item["name"] == "execution")


def verdict(steps: list[dict], runs: list[dict]) -> list[str]:
    """Why the rehearsal fails; empty when it passes: every step that ran ok, a rollback
    under test, and every rollback run verified with its execution within the target."""
    reasons = [f"{step['name']}: {step['outcome']}" + (f" ({step['note']})" if step.get("note") else "")
               for step in steps if step["ok"] is False]
    if not any(run["under_test"] for run in runs) and not reasons:
        reasons.append("no rollback under test ran")
    for run in runs:
        name = f"{run['step']} run {run['run_id']}"
        if not run["verified"]:
            reasons.append(f"{name} not verified ({run['status']}, {run['checks_failed']} of {run['checks']} "
                           "checks failed)")
        execution = execution_of(run)
        if execution["status"] != "met":
            reasons.append(f"{name}: execution {report.figure_duration(execution)}, target "
                           f"{report.target_text(execution['target'])}: {execution['status']}"
                           + (f" ({execution['note']})" if execution.get("note") else ""))
    return reasons


# The rehearsal


@dataclass
class Plan:
    staging: str
    source: str
    snapshot: str
    release: str | None
    watch_window: int | None
    runs_dir: Path
    staging_hosts: list[str]
    source_hosts: list[str]


def new_step(name: str, command: list[str] | None = None, note: str | None = None) -> dict:
    return {"name": name, "command": " ".join(command) if command else None, "started_at": None, "ended_at": None,
            "seconds": None, "returncode": None, "outcome": "skipped", "ok": None, "note": note, "run_id": None,
            "log": None}


class Rehearsal:
    """One rehearsal: its steps run in order, each timed, until one fails."""

    def __init__(self, plan: Plan, directory: Path, runner=None, echo=None):
        self.plan, self.directory = plan, directory
        # runner(command, env, log) -> Finished runs one pyinfra command (tests pass a fake)
        self.runner = runner or stream_pyinfra
        self.echo = echo or (lambda text: click.echo(text, err=True))
        self.env = step_env(plan.runs_dir)
        self.steps: dict[str, dict] = {}
        self.runs: list[dict] = []     # the rollback runs, as rollback_summary()

    def step(self, name: str, command: list[str]) -> tuple[dict, Finished | None, datetime]:
        """Run one step's pyinfra command; ``(step, what it left, when it began)``."""
        step = self.steps[name] = new_step(name, command)
        number = STEPS.index(name) + 1
        self.echo(f"==> [{number}/{len(STEPS)}] {name}: {step['command']}")
        begin = utc_now()
        step.update(started_at=stamp(begin), log=str(self.directory / f"{number}-{name}.log"))
        try:
            finished = self.runner(command, self.env, Path(step["log"]))
        except KeyboardInterrupt:
            finished = None
        end = utc_now()
        step.update(ended_at=stamp(end), seconds=round((end - begin).total_seconds(), 2))
        if finished is None:
            step.update(outcome="interrupted", ok=False)
        else:
            step.update(returncode=finished.returncode, outcome="ok" if finished.returncode == 0 else "failed",
                        ok=finished.returncode == 0)
            if finished.returncode != 0:
                step["note"] = pyinfra_error(SimpleNamespace(stdout=finished.output, stderr="",
                                                             returncode=finished.returncode))[:500]
        return step, finished, begin

    def done(self, step: dict):
        self.echo(f"<== {step['name']}: {step['outcome']} in {report.duration(step['seconds'])}"
                  + (f": {step['note']}" if step["note"] and step["outcome"] != "ok" else ""))

    def rollback_step(self, name: str, under_test: bool) -> bool:
        """Run rollback.py to the snapshot as step ``name``; whether it succeeded."""
        step, finished, begin = self.step(name, pyinfra_command(self.plan.staging, "rollback.py",
                                                                snapshot=self.plan.snapshot))
        if finished is not None:
            record, path = run_record(finished.output, self.plan.runs_dir, "rollback", begin)
            if record is None:
                step.update(ok=False, outcome="failed", note=f"{step['note'] or 'pyinfra ended'}; no run record found")
            else:
                step["run_id"] = record.get("run_id")
                if record.get("status") != "succeeded" and step["ok"]:
                    step.update(ok=False, outcome="failed", note=f"run {record.get('run_id')} {record.get('status')}")
                self.runs.append(rollback_summary(name, record, path, under_test))
        self.done(step)
        return bool(step["ok"])

    def release_step(self) -> str:
        """Ship the release under test with migrate.py; its outcome (``release_outcome``)."""
        plan = self.plan
        step, finished, begin = self.step("release", pyinfra_command(
            plan.staging, "migrate.py", commit=plan.release, watch_window=plan.watch_window))
        if finished is not None:
            record, _ = run_record(finished.output, plan.runs_dir, "migrate", begin)
            outcome, rolled_back_in = release_outcome(finished.returncode, record)
            step.update(outcome=outcome, ok=outcome != "failed", run_id=(record or {}).get("run_id"))
            if rolled_back_in:
                path = plan.runs_dir / rolled_back_in / "record.json"
                rolled_back = load_json(path)
                if rolled_back is None:
                    step.update(ok=False, note=f"its rollback run {rolled_back_in} has no record in {plan.runs_dir}")
                else:
                    step["note"] = f"the release rolled itself back in run {rolled_back_in}"
                    self.runs.append(rollback_summary("release", rolled_back, path, under_test=True))
        self.done(step)
        return step["outcome"]

    def run_steps(self):
        """copy, restore, release (with --release), rollback: a failed step stops the rest,
        but a release that failed without rolling itself back is still rolled back."""
        copy, finished, _ = self.step("copy", pyinfra_command(self.plan.staging, "rehearse.py",
                                                              snapshot=self.plan.snapshot, source=self.plan.source))
        if copy["ok"]:
            copy["note"] = copy_note(finished.output)
        self.done(copy)
        if not copy["ok"] or not self.rollback_step("restore", under_test=False):
            return
        if self.plan.release:
            outcome = self.release_step()
            if outcome in ("rolled back", "interrupted"):
                return
        self.rollback_step("rollback", under_test=True)

    def run(self) -> dict:
        """Run the steps; the rehearsal record (``rehearsal.json``'s content)."""
        started = utc_now()
        self.run_steps()
        for name in STEPS:
            if name not in self.steps:
                self.steps[name] = new_step(name, note=self.skipped_because(name))
        steps = [self.steps[name] for name in STEPS]
        reasons = verdict(steps, self.runs)
        ended, plan = utc_now(), self.plan
        return {
            "rehearsal_id": self.directory.name,
            "kind": "rehearsal",
            "status": "failed" if reasons else "passed",
            "who": f"{getpass.getuser()}@{socket.gethostname()}",
            # as typed: `layra-rollback rehearse ...`, or this module run by itself
            "command": " ".join(["layra-rollback", *(["rehearse"] if sys.argv[1:2] != ["rehearse"] else []),
                                 *sys.argv[1:]]),
            "started_at": stamp(started),
            "ended_at": stamp(ended),
            "seconds": round((ended - started).total_seconds(), 2),
            "snapshot": plan.snapshot,
            "release": plan.release,
            "watch_window": plan.watch_window,
            "source": {"inventory": plan.source, "hosts": plan.source_hosts, "read_only": True},
            "staging": {"inventory": plan.staging, "hosts": plan.staging_hosts},
            "runs_dir": str(plan.runs_dir),
            "steps": steps,
            "rollback_runs": self.runs,
            "reasons": reasons,
        }

    def skipped_because(self, name: str) -> str:
        if name == "release" and not self.plan.release:
            return "no --release: nothing shipped between restore and rollback"
        if name == "rollback" and any(run["under_test"] for run in self.runs):
            return "the release rolled itself back: that run is the rollback under test"
        return "an earlier step failed"


def copy_note(output: str) -> str:
    """What the copy did per staging host, in its own words."""
    lines = host_lines(output, r"^(from \S+ \(|snapshot \S+: \d+ files|snapshot \S+ is already here)")
    return "; ".join(f"{name}: {message}" for name, message in lines)[:600]


# The report


def context(rehearsal: dict) -> dict:
    """What rehearsal.md.j2 shows, computed from a rehearsal record."""
    steps = [{**step, "number": STEPS.index(step["name"]) + 1,
              "duration": report.duration(step["seconds"]) if step["seconds"] is not None else "-",
              "start": (step["started_at"] or "")[11:22] + ("Z" if step["started_at"] else "")}
             for step in rehearsal["steps"]]
    runs = []
    for run in rehearsal["rollback_runs"]:
        title = "Rollback under test" + (" (the release rolled itself back)" if run["step"] == "release" else "") \
            if run["under_test"] else TITLES[run["step"]]
        figures = [{**item, "duration": report.figure_duration(item), "target_text": report.target_text(item["target"])}
                   for item in run["rto"]]
        phases = [{"name": phase["name"],
                   "offset": "+" + report.duration(phase["offset"]) if phase["offset"] is not None else "?",
                   "duration": report.duration(phase["seconds"]) if phase["seconds"] is not None else "no end"}
                  for phase in run["phases"]]
        record = Path(run["record"]) if run["record"] else None
        runs.append({**run, "title": title, "figures": figures, "timeline": phases,
                     "execution": next(f for f in figures if f["name"] == "execution"),
                     "report": str(record.parent / "report.md") if record else ""})
    started, ended = report.parse_time(rehearsal["started_at"]), report.parse_time(rehearsal["ended_at"])
    return {
        "rehearsal": rehearsal,
        "passed": rehearsal["status"] == "passed",
        "elapsed": report.duration(report.seconds_between(started, ended)),
        "steps": steps,
        "runs": runs,
        "read_only": READ_ONLY.format(hosts=", ".join(rehearsal["source"]["hosts"])
                                      or rehearsal["source"]["inventory"]),
        "execution_target": report.target_text(report.TARGETS["execution"]),
    }


def render_markdown(rehearsal: dict) -> str:
    return report.ENVIRONMENT.get_template("rehearsal.md.j2").render(**context(rehearsal))


def write_rehearsal(rehearsal: dict, directory: Path) -> Path:
    """``rehearsal.json`` and ``rehearsal.md`` in ``directory``; the Markdown's path."""
    write_private(directory / "rehearsal.json", json.dumps(rehearsal, indent=2) + "\n")
    markdown = directory / "rehearsal.md"
    write_private(markdown, render_markdown(rehearsal))
    return markdown


def rehearsal_dir(runs_dir: Path, now: datetime) -> Path:
    """``<runs>/<UTC time>-rehearsal/``, created 0700."""
    runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory = runs_dir / f"{now.astimezone(timezone.utc).strftime(ID_TIME)}-rehearsal"
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        raise click.ClickException(f"{directory} exists: another rehearsal started this second; try again")
    return directory


# Checks before anything runs


def shared_hosts(staging: list[dict], source: list[dict]) -> list[str]:
    """Staging hosts that are also source hosts, by name or by SSH address."""
    by_address = {address(host["name"], host.get("data") or {}): host["name"] for host in source}
    names = {host["name"] for host in source}
    shared = []
    for host in staging:
        where = address(host["name"], host.get("data") or {})
        if host["name"] in names or where in by_address:
            shared.append(f"{host['name']} (also {by_address.get(where, host['name'])} at {where[0]}:{where[1]})")
    return shared


def checked_plan(staging: str, source: str, snapshot: str, release: str | None, watch_window: int | None,
                 runs_dir: Path) -> Plan:
    if not valid_snapshot_id(snapshot):
        raise click.BadParameter(f"{snapshot!r} is not a snapshot id: it must be {SNAPSHOT_ID_RULE} "
                                 "(`latest` is not taken: name it)", param_hint="--snapshot")
    if release is not None and not valid_ref(release):
        raise click.BadParameter(f"{release!r} is not a git ref: it must be {REF_RULE}", param_hint="--release")
    if watch_window is not None and release is None:
        raise click.BadParameter("only with --release (it is the release's watch window)", param_hint="--watch-window")
    if release is not None and not (PROJECT / "migrate.py").is_file():
        raise click.UsageError(f"--release needs migrate.py (the guarded release), not found in {PROJECT}")
    if Path(staging).resolve() == Path(source).resolve():
        raise click.UsageError("--staging and --source are the same inventory: a rehearsal never writes to production")
    staging_hosts, source_hosts = inventory_hosts(staging), inventory_hosts(source)
    if not staging_hosts:
        raise click.UsageError(f"{staging} has no hosts")
    shared = shared_hosts(staging_hosts, source_hosts)
    if shared:
        raise click.UsageError(f"staging host {', '.join(shared)} of {source}: a rehearsal rolls staging back, "
                               "so staging and production must not share a host")
    return Plan(staging, source, snapshot, release, watch_window, runs_dir.resolve(),
                [host["name"] for host in staging_hosts], [host["name"] for host in source_hosts])


@click.command("rehearse")
@click.option("--staging", required=True, metavar="INVENTORY", type=click.Path(exists=True, dir_okay=False),
              help="The staging inventory: where the snapshot is restored, the release shipped and rolled back.")
@click.option("--source", required=True, metavar="INVENTORY", type=click.Path(exists=True, dir_okay=False),
              help="The production inventory the snapshot is copied from (only read).")
@click.option("--snapshot", required=True, metavar="ID", help="The production snapshot to rehearse with.")
@click.option("--release", default=None, metavar="COMMIT",
              help="A release to ship on staging between restore and rollback (migrate.py, guarded).")
@click.option("--watch-window", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="How long migrate.py watches the release's trigger rules (default: migrate.py's).")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), envvar="LAYRA_RUNS_DIR",
              default="runs", show_default=True, help="Where runs are recorded (env LAYRA_RUNS_DIR).")
def rehearse(staging, source, snapshot, release, watch_window, runs_dir):
    """Rehearse a rollback on staging with a production snapshot; report against the RTO.

    \b
    Each step is a pyinfra run on STAGING, timed:
      1 copy      rehearse.py: the snapshot from SOURCE's host(s), checksums
                  checked as read and on arrival (SOURCE is only read)
      2 restore   rollback.py --data snapshot=ID: staging at the snapshot
      3 release   migrate.py --data commit=COMMIT (with --release only)
      4 rollback  rollback.py --data snapshot=ID: the rollback under test
                  (unless the release rolled itself back: that run is)

    \b
    Writes <runs>/<UTC time>-rehearsal/rehearsal.md and rehearsal.json
    (each step's start, duration and outcome; per rollback run its phases
    and RTO buckets against the targets) and prints the Markdown's path.

    \b
    Exit codes:
      0  passed: every step ok, every rollback run verified, execution
         within its target
      1  failed (the report says why)
      2  bad arguments, or staging and source share a host
    """
    plan = checked_plan(staging, source, snapshot, release, watch_window, runs_dir)
    directory = rehearsal_dir(plan.runs_dir, utc_now())
    click.echo(f"==> rehearsal {directory.name}: snapshot {snapshot} from {source} "
               f"({', '.join(plan.source_hosts)}) to {staging} ({', '.join(plan.staging_hosts)})", err=True)
    click.echo(f"==> source {READ_ONLY.format(hosts=', '.join(plan.source_hosts))}", err=True)
    rehearsal = Rehearsal(plan, directory).run()
    path = write_rehearsal(rehearsal, directory)
    verdict_line = "PASS" if rehearsal["status"] == "passed" else "FAIL: " + "; ".join(rehearsal["reasons"])
    click.echo(f"==> rehearsal {verdict_line}", err=True)
    click.echo(str(path))
    sys.exit(0 if rehearsal["status"] == "passed" else 1)


if __name__ == "__main__":
    rehearse()
