"""
The run record: what a rollback (or verify) run did, written on the control machine as
``<runs dir>/<run id>/record.json`` while the run executes and completed when it ends.

pyinfra calls us back around every operation on every host (``BaseStateCallback``); the
deploy says which phase each of its operations belongs to (``RUN.phase(...)``). The file
is rewritten after every event, so a run that dies midway still leaves what it reached.
At exit the record is completed, the reports are rendered, and a host left in
maintenance mode is named with the command that lifts it.
"""

from __future__ import annotations

import atexit
import getpass
import json
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

from pyinfra import host as current_host
from pyinfra import logger
from pyinfra.api.state import BaseStateCallback

from operations.checks import RESULTS

from .lock import LOCKS
from .report import write_reports
from .runs import (
    PHASES,
    command_line,
    inventory_argument,
    private_dir,
    runs_dir,
    stamp,
    utc_now,
    write_private,
)


class Run(BaseStateCallback):
    """One run's record. Created by the first deploy that asks for it (``RUN.start``)."""

    def __init__(self):
        self.record: dict | None = None
        self.path: Path | None = None
        self.state = None
        self.phase_of: dict[str, str] = {}        # operation hash -> phase
        self.changes: dict[str, bool] = {}          # host -> its plan changes something
        self.pending: list[tuple] = []   # finished operations whose result pyinfra has yet to complete
        self.lift: dict[str, str] = {}              # host -> the command that lifts its maintenance
        self.finished = False

    # Setting up, while pyinfra prepares the deploy (once per host)

    def start(self, state, kind: str, target: dict, incident: dict | None = None):
        """Begin the record for this process's run; later calls (other hosts) only add to it."""
        if self.record is not None:
            return
        now = utc_now()
        # the State itself, not pyinfra's context proxy: it must outlive the context (atexit)
        self.state = state._get_module() if hasattr(state, "_get_module") else state
        run_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{kind}"
        self.record = {
            "run_id": run_id,
            "kind": kind,
            "status": "running",
            "who": f"{getpass.getuser()}@{socket.gethostname()}",
            "inventory": inventory_argument(),
            "command": command_line(),
            "started_at": None,
            "ended_at": None,
            "incident": {"started_at": None, "detected_at": None, "decided_at": None, "trigger": "manual",
                         **(incident or {})},
            "target": target,
            "tag": None,
            "hosts": {},
            "phases": {},
        }
        self.path = runs_dir() / run_id / "record.json"
        state.add_callback_handler(self)
        atexit.register(self.finish)

    @property
    def run_id(self) -> str:
        return self.record["run_id"] if self.record else ""

    @property
    def executing(self) -> bool:
        return bool(self.record and self.record["started_at"])

    def host_entry(self, host) -> dict:
        hosts = self.record["hosts"]
        if host.name not in hosts:
            hosts[host.name] = {
                "groups": sorted(str(group) for group in getattr(host, "groups", ())),
                "status": "running", "error": None, "snapshot": None, "commit": None,
                "safety_snapshot": None, "maintenance": "off", "maintenance_lift": None,
                "plan": [], "operations": [], "checks": [],
            }
        return hosts[host.name]

    def note(self, host, **values):
        """Facts the deploy knows about a host (its snapshot, commit, plan lines...)."""
        if self.record is not None:
            self.host_entry(host).update(values)

    @contextmanager
    def phase(self, name: str):
        """Operations this host registers inside the block belong to phase ``name``.

        pyinfra prepares every host's deploy at the same time: only the host's own new
        operations (``host.op_hash_order``) count, never one another host registers
        meanwhile (once, the lock's release, the run's last operation, landed in the
        safety snapshot's phase of a host still taking it)."""
        order = current_host.op_hash_order
        before = len(order)
        try:
            yield
        finally:
            for op_hash in order[before:]:
                self.phase_of.setdefault(op_hash, name)

    def any_changes(self) -> bool:
        """Whether some host's plan changes something (known to every host at execution)."""
        return any(self.changes.values())

    # pyinfra's callbacks, while it executes

    def operation_start(self, state, op_hash):
        if self.record is not None and not self.record["started_at"]:
            self.record["started_at"] = stamp(utc_now())

    def operation_host_start(self, state, host, op_hash):
        # pyinfra runs every operation on every host: one this host's deploy did not
        # register (a dump of a part it does not hold) is skipped there, not run
        if self.record is None or op_hash not in state.ops[host]:
            return
        names = state.get_op_meta(op_hash).names
        self.host_entry(host)["operations"].append({
            "hash": op_hash, "name": ", ".join(sorted(names)), "phase": self.phase_of.get(op_hash),
            "started_at": stamp(utc_now()), "ended_at": None, "changed": None, "ok": None, "error": None,
        })
        self.save()

    def operation_host_success(self, state, host, op_hash, retry_count=0):
        self.operation_done(state, host, op_hash, ok=True)

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        self.operation_done(state, host, op_hash, ok=False)

    def host_connect_error(self, state, host, error):
        if self.record is not None:
            self.host_entry(host).update(status="unreachable", error=f"could not connect: {error}")
            self.save()

    def operation_done(self, state, host, op_hash, ok: bool):
        if self.record is None:
            return
        entry = self.host_entry(host)
        ops = [op for op in entry["operations"] if op["hash"] == op_hash and op["ended_at"] is None]
        if not ops:
            return
        op = ops[-1]
        op["ended_at"] = stamp(utc_now())
        op["ok"] = ok
        if not ok:
            entry.update(status="failed", error=f"{op['name']}: failed")
            if op["phase"] == "maintenance_on":
                # a failed switch may have half happened (the nginx drop-in is written first)
                entry.update(maintenance="on", maintenance_lift=self.lift.get(host.name))
        # pyinfra completes the operation's result only after this callback: read it later
        self.pending.append((host, op_hash, op))
        self.save()

    def fill_results(self):
        """Whether each finished operation changed anything, and for a failed one the last
        line it wrote to stderr (what failed, in its words)."""
        for host, op_hash, op in list(self.pending):
            meta = self.state.get_op_data_for_host(host, op_hash).operation_meta
            if not meta.is_complete():
                continue
            self.pending.remove((host, op_hash, op))
            entry = self.host_entry(host)
            op["changed"] = bool(meta.did_change()) if op["ok"] else None
            if not op["ok"]:
                lines = [line.strip() for line in meta.stderr_lines if line.strip()]
                op["error"] = (lines[-1] if lines else "failed")[:300]
                if entry["error"] == f"{op['name']}: failed":
                    entry["error"] = f"{op['name']}: {op['error']}"
            elif op["phase"] == "maintenance_on" and op["changed"]:
                entry.update(maintenance="on", maintenance_lift=self.lift.get(host.name))
            elif op["phase"] == "maintenance_off":   # its one operation: the switch off
                entry.update(maintenance="off", maintenance_lift=None)

    # The record on disk

    def phases(self) -> dict:
        spans: dict[str, dict] = {}
        for entry in self.record["hosts"].values():
            for op in entry["operations"]:
                if not op["phase"] or not op["started_at"]:
                    continue
                span = spans.setdefault(op["phase"], {"started_at": op["started_at"], "ended_at": op["ended_at"]})
                span["started_at"] = min(span["started_at"], op["started_at"])
                if op["ended_at"]:
                    span["ended_at"] = max(span["ended_at"] or op["ended_at"], op["ended_at"])
        return {name: spans[name] for name in PHASES if name in spans}

    def save(self):
        if self.record is None or not self.record["started_at"]:
            return  # a dry run, or nothing executed yet: no record
        self.fill_results()
        self.record["phases"] = self.phases()
        private_dir(self.path.parent)
        write_private(self.path, json.dumps(self.record, indent=2, sort_keys=False) + "\n")

    def finish(self):
        """At exit: the final status per host and for the run, reports, and loud warnings."""
        if self.finished or self.record is None or not self.record["started_at"]:
            return
        self.finished = True
        failed = {host.name for host in (self.state.failed_hosts if self.state is not None else ())}
        for name, entry in self.record["hosts"].items():
            entry["checks"] = [vars(check) for check in RESULTS.get(name, [])]
            if entry["status"] == "running":
                entry["status"] = "failed" if name in failed else "succeeded"
        statuses = {entry["status"] for entry in self.record["hosts"].values()}
        self.record["status"] = "succeeded" if statuses == {"succeeded"} else "failed"
        self.record["ended_at"] = stamp(utc_now())
        self.save()
        try:
            written = write_reports(self.record, self.path.parent)
        except Exception as error:  # noqa: BLE001 - the record stands without its reports
            written = []
            logger.warning(f"run {self.run_id}: the report could not be rendered: {error}")
        print_summary(self.record, self.path, written)
        for line in LOCKS.warnings(self.run_id):
            print(f"!!! {line}", file=sys.stderr)


def print_summary(record: dict, path: Path, reports: list[Path]):
    out = sys.stderr
    print(f"\n--> Run {record['run_id']} {record['status']}: record {path}", file=out)
    for report in reports:
        print(f"    report: {report}", file=out)
    for name, entry in sorted(record["hosts"].items()):
        if entry["status"] != "succeeded":
            print(f"    {name}: {entry['status']}" + (f": {entry['error']}" if entry["error"] else ""), file=out)
    left_on = {name: entry for name, entry in record["hosts"].items() if entry["maintenance"] == "on"}
    for name, entry in sorted(left_on.items()):
        print(f"\n!!! MAINTENANCE MODE IS STILL ON on {name}: writes are answered 503.", file=out)
        print(f"!!! Lift it once the host is sound: {entry['maintenance_lift']}", file=out)


RUN = Run()
