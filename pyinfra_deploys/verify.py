"""
The verify deploy: the runbook's four verification phases, each check with its observed
value, as a table per host at the end and as JSON (``--data verify_out=FILE``).

    pyinfra inventories/prod.py verify.py                           # phases 1-3
    pyinfra inventories/prod.py verify.py --data snapshot=latest    # + phase 4 against it
    pyinfra inventories/prod.py verify.py --data snapshot=<id> --data verify_out=verify.json

Phase 4 compares each component's live fingerprint with the one a snapshot recorded
(the snapshot the operator names, or ``latest``).
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path

from pyinfra import host, state
from pyinfra.api import deploy

from operations import checks

from .config import (
    DEFAULTS,
    components_from,
    functional_checks_from,
    snapshot_root,
    stack_from,
    verify_settings,
    with_env_settings,
)
from .engines import Component, engine_of
from .record import RUN
from .snapshot import chosen_snapshot, load_manifest, restorable_parts


def service_verified(stack, components: list[Component], functional: dict | None):
    """Register phases 1-3 (3 where functional checks are configured)."""
    settings = verify_settings(host.data)
    with RUN.phase("verify_infrastructure"):
        checks.infrastructure(
            name="Verify phase 1: infrastructure",
            stack=stack,
            disk_paths=settings["disk_paths"],
            min_disk_free_pct=settings["min_disk_free_pct"],
            max_memory_used_pct=settings["max_memory_used_pct"],
        )
    with RUN.phase("verify_connectivity"):
        checks.connectivity(
            name="Verify phase 2: connectivity",
            stack=stack,
            health_url=settings["health_url"],
            probes=[engine_of(component).ping(stack, component) for component in components],
        )
    with RUN.phase("verify_functionality"):
        if functional:
            checks.functionality(name="Verify phase 3: functionality", stack=stack, **functional)


def integrity_verified(stack, probes: list):
    """Register phase 4 where there is something to compare with (one probe per part)."""
    with RUN.phase("verify_integrity"):
        if probes:
            checks.integrity(name="Verify phase 4: integrity", stack=stack, probes=probes)


def integrity_probes(stack, components: list[Component], wanted: str) -> list:
    """Phase 4's probes against the snapshot ``wanted`` (an id or ``latest``)."""
    root = snapshot_root(host.data)
    snapshot_id = chosen_snapshot(root, str(wanted))
    manifest = load_manifest(root, snapshot_id)
    sha256s = {name: entry["sha256"] for name, entry in manifest["files"].items()}
    RUN.note(host, snapshot=snapshot_id)
    return [engine_of(component).integrity(stack, component, part, sha256s)
            for component, _, part in restorable_parts(manifest, components)]


def table(results: dict) -> list[str]:
    """Every host's checks as aligned rows, failures marked."""
    rows = [("HOST", "PHASE", "CHECK", "OBSERVED", "EXPECTED", "RESULT")]
    for name, found in sorted(results.items()):
        for check in found:
            rows.append((name, str(check.phase), check.name, check.observed[:60], check.expected[:40],
                         "ok" if check.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def print_results(out_file: str | None):
    if not checks.RESULTS:
        return
    print("\n" + "\n".join(table(checks.RESULTS)), file=sys.stderr)
    if out_file:
        data = {name: [vars(check) for check in found] for name, found in sorted(checks.RESULTS.items())}
        Path(out_file).write_text(json.dumps({"hosts": data}, indent=2) + "\n")
        print(f"verify: results as JSON in {out_file}", file=sys.stderr)


_REGISTERED: set[str] = set()   # the table is printed once per run, not once per host


@deploy("Verify the Layra stack", data_defaults=DEFAULTS)
def verify():
    stack = stack_from(host.data)
    components = components_from(host.data)
    functional = functional_checks_from(host.data)
    wanted = host.data.get("snapshot")
    components = with_env_settings(stack, components)
    RUN.start(state, "verify", target={"snapshot": wanted, "commit": None})
    if RUN.run_id not in _REGISTERED:
        _REGISTERED.add(RUN.run_id)
        atexit.register(print_results, host.data.get("verify_out"))
    service_verified(stack, components, functional)
    integrity_verified(stack, integrity_probes(stack, components, wanted) if wanted else [])
