"""
Benchmark 3 of issue 8, the no-op run: ``rollback.py`` on sandbox hosts already at the
target, with 1, 4 and 10 hosts (``--limit``), timed around the whole ``python -m pyinfra``
process. Targets: <= 5 s for one host, <= 1.5 x that for 10 hosts.

Two no-ops, alternating run by run: ``--data commit=v1.0.0`` (the stack) and ``--data
snapshot=<id>`` (every component's fingerprint read too), <id> a backup.py snapshot
(label ``noopbench``) taken first and rolled back to once; it is removed at the end (kept
if anything failed). A timed run that changes anything, or reaches other hosts than
asked, stops the script. Each no-op then runs once through
tests/reliability/counted_pyinfra.py: SSH round trips per host, and each fact read,
before pyinfra's execution stage and during it (goal: one round trip per fingerprint
fact per component). ``python -m pyinfra --version`` is timed as context.

    .venv/bin/python bench/noop.py [--runs 3] [--hosts 1,4,10]

Prints a table and the breakdown; writes bench/results/noop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (ROOT, STATE, Run, Sandbox, cpu_busy_seconds, deploy, machine, median, progress,  # noqa: E402
                     report, row, sandbox, timed)
from tests.e2e.conftest import RUNS  # noqa: E402  (where Sandbox.pyinfra's runs write their records)
from pyinfra_deploys.config import DEFAULTS  # noqa: E402

TARGET_COMMIT = "v1.0.0"
SNAPSHOT_LABEL = "noopbench"
ONE_HOST_TARGET_S = 5.0
SCALING_TARGET = 1.5  # the largest host count against one host
COUNTER = ROOT / "tests" / "reliability" / "counted_pyinfra.py"
REMOTE_KINDS = ("run", "put", "get")
CORES = os.cpu_count() or 1  # what costs a round trip; "connect" is counted apart

# Which fact a command reads, by a fragment of the command (first match wins), and the
# argument that tells two reads of the same fact apart (a database, a volume set...).
# A command none of these recognise is listed as "unrecognised" with its start.
FACTS = [
    ("lock.RollbackLock", r"layra-rollback\.lock", None),
    ("stack.StackRepo", r"rev-parse --verify --quiet HEAD", None),
    ("stack.StackTarget", r"target=\$\( git", r"'([^']+)\^\{commit\}'"),
    ("stack.StackTag", r"refs/tags/", None),
    ("stack.ImagesPresent", r"docker image ls -aq", None),
    ("compose.ComposeTargetConfig", r"git -C \S+ archive", r"archive '([^']+)\^\{commit\}'"),
    ("compose.ComposeServices", r"--- layra:desired ---", None),
    ("maintenance.MaintenanceState", r"--- layra:env_file ---", None),
    ("capacity.DiskFree", r"df -Pk", r"^p=(\S+) ;"),
    ("capacity.MemoryUsage", r"/proc/meminfo", None),
    ("http.FunctionalChecks", r"--- layra:login ---", None),
    ("http.HttpResponse", r"curl -sS --max-time", None),
    ("snapshots.SnapshotCatalog", r"printf 'partial %s", None),
    ("snapshots.SnapshotManifest", r"^cat -- \S+/manifest\.json", None),
    ("snapshots.SnapshotFiles", r"--- layra:sums ---", None),
    ("mysql.MysqlPing", r"m -admin ping", None),
    ("mysql.MysqlFingerprint", r"information_schema\.schemata", r"db='?([A-Za-z0-9_]+)"),
    ("mongo.MongoPing", r"layra-script: ping", None),
    ("mongo.MongoFingerprint", r"layra-script: fingerprint", r"LAYRA_DB=([A-Za-z0-9_]+)"),
    ("redis.RedisPing", r"redis-cli --no-raw ping", None),
    ("redis.RedisKeyCounts", r"--scan --pattern", None),
    ("redis.RedisFingerprint", r"--- layra:keys ---", None),
    ("qdrant.QdrantFingerprint", r"points/scroll", None),
    ("volumes.VolumeSet (sizes only)", r"with_fingerprint=no", r"\bset -- ([^;\n]+?) ;"),
    ("volumes.VolumeSet", r"with_fingerprint=yes", r"\bset -- ([^;\n]+?) ;"),
    ("volumes.MilvusCollections", r"MilvusClient", None),
]
FINGERPRINT_FACTS = {"mysql.MysqlFingerprint", "mongo.MongoFingerprint", "redis.RedisFingerprint",
                     "qdrant.QdrantFingerprint", "volumes.VolumeSet", "volumes.MilvusCollections"}
# pyinfra 3.10 wraps a fact whose binary it checks first: the fact's own command is inside.
REQUIRES_WRAPPER = re.compile(r"^if command -v \S+ >/dev/null 2>&1; then \( (.*) \); else echo '[^']*'; fi$", re.S)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per host count and no-op (default 3)")
    parser.add_argument("--hosts", type=host_counts, default=host_counts("1,4,10"),
                        help="host counts to time, comma separated, starting with 1 (default 1,4,10)")
    chosen = parser.parse_args()
    if chosen.runs < 1:
        parser.error("--runs must be at least 1")
    return chosen


def host_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of host counts: {text!r}") from None
    if not counts or counts[0] != 1 or counts[-1] > 10:
        raise argparse.ArgumentTypeError(f"host counts must start with 1 (the baseline) and be at most 10: {text!r}")
    return counts


def limited_to(names: list[str]) -> list[str]:
    """pyinfra 3 takes one ``--limit`` per host (a comma list would match no host name)."""
    return [argument for name in names for argument in ("--limit", name)]


def data_arguments(data: dict[str, str]) -> list[str]:
    return [argument for key, value in data.items() for argument in ("--data", f"{key}={value}")]


def connected_hosts(output: str) -> list[str]:
    # pyinfra pads "[name]" to the longest name in the inventory: "[sandbox-1]  Connected"
    return sorted(re.findall(r"^\s*\[([^\]\s]+)\] +Connected", output, re.M))


def checked_noop(run: Run, names: list[str], what: str) -> Run:
    """The run reached exactly ``names`` and changed nothing; stops the benchmark otherwise."""
    reached, totals = connected_hosts(run.output), run.totals()
    if reached != sorted(names):
        raise SystemExit(f"{what}: pyinfra connected to {reached}, not {sorted(names)}: --limit did not limit\n"
                         f"{run.output[-3000:]}")
    if totals["changed"] or totals["error"]:
        raise SystemExit(f"{what} is not a no-op: {totals['changed']} operations changed something, "
                         f"{totals['error']} failed\n{run.output[-4000:]}")
    return run


def startup_seconds(runs: int) -> float:
    """pyinfra's interpreter start and imports, before any inventory or host."""
    command = [sys.executable, "-m", "pyinfra", "--version"]
    return median([timed(lambda: subprocess.run(command, cwd=ROOT, capture_output=True, check=True))[0]
                   for _ in range(runs)])


def taken_snapshot(box: Sandbox, names: list[str]) -> str:
    run = deploy(box, "backup.py", *limited_to(names), data={"label": SNAPSHOT_LABEL})
    found = set(re.findall(rf"\b(\d{{8}}T\d{{6}}Z-{SNAPSHOT_LABEL})\b", run.output))
    if len(found) != 1:
        raise SystemExit(f"backup.py printed {len(found)} snapshot ids, expected one:\n{run.output[-3000:]}")
    return found.pop()


def removed_snapshot(box: Sandbox, names: list[str], snapshot_id: str) -> None:
    path = f"{DEFAULTS['layra_snapshot_root']}/{snapshot_id}"
    for candidate in box.hosts:
        if candidate.name in names:
            candidate.ssh(f"rm -rf -- {shlex.quote(path)}")


def timed_noop(box: Sandbox, names: list[str], data: dict[str, str], what: str) -> tuple[float, float]:
    """(seconds, core-seconds this machine was busy meanwhile) of one checked no-op."""
    busy = cpu_busy_seconds()
    seconds, run = timed(lambda: deploy(box, "rollback.py", *limited_to(names), data=data))
    busy = cpu_busy_seconds() - busy
    checked_noop(run, names, what)
    return seconds, busy


def idle_busy_rate(seconds: float = 5.0) -> float:
    """Cores this machine keeps busy with no run going (the hosts' healthchecks, dockerd)."""
    busy = cpu_busy_seconds()
    time.sleep(seconds)
    return (cpu_busy_seconds() - busy) / seconds


def counted_noop(names: list[str], data: dict[str, str], what: str) -> list[dict]:
    """The no-op through counted_pyinfra.py: its log, one entry per connection, command,
    upload, download, and the start of the execution stage (kind ``execute``)."""
    with tempfile.TemporaryDirectory(prefix="noop-bench-") as directory:
        log = Path(directory) / "commands.jsonl"
        result = subprocess.run(
            [sys.executable, str(COUNTER), str(log), "-y", "inventories/sandbox.py", "rollback.py",
             *limited_to(names), *data_arguments(data)],
            cwd=ROOT, capture_output=True, text=True, timeout=3600,
            # as Sandbox.pyinfra runs pyinfra
            env={**os.environ, "LAYRA_SANDBOX_DIR": str(STATE), "LAYRA_RUNS_DIR": str(RUNS), "COLUMNS": "200"},
        )
        run = Run(result.returncode, result.stdout + result.stderr)
        if not run.ok:
            raise SystemExit(f"{what} (counted) failed:\n{run.output[-4000:]}")
        checked_noop(run, names, f"{what} (counted)")
        return [json.loads(line) for line in log.read_text().splitlines()]


def fact_of(command: str) -> tuple[str, str]:
    """(fact, its telling argument) of a logged command."""
    unwrapped = REQUIRES_WRAPPER.match(command)
    inner = unwrapped.group(1) if unwrapped else command
    for fact, fragment, argument in FACTS:
        if re.search(fragment, inner):
            detail = re.search(argument, inner) if argument else None
            return fact, shortened(detail.group(1).replace("'", "").strip()) if detail else ""
    return "unrecognised", inner[:100]


def shortened(detail: str) -> str:
    """A commit as git abbreviates it; anything else as it is."""
    return detail[:12] if re.fullmatch(r"[0-9a-f]{40}", detail) else detail


def label(fact: str, detail: str) -> str:
    return f"{fact}({detail})" if detail else fact


def round_trips(entries: list[dict], names: list[str]) -> dict:
    """Per host: round trips, connections, and each fact read (planning / execution)."""
    hosts = {name: {"connections": 0, "round_trips": Counter(), "reads": {}} for name in names}
    executing = False
    for entry in entries:
        if entry["kind"] == "execute":
            executing = True
            continue
        found = hosts.get(entry["host"])
        if found is None:
            raise SystemExit(f"the counted run reached {entry['host']}, outside --limit {names}")
        if entry["kind"] == "connect":
            found["connections"] += 1
            continue
        found["round_trips"][entry["kind"]] += 1
        if entry["kind"] == "run":
            fact, detail = fact_of(entry["what"])
            read = found["reads"].setdefault(label(fact, detail), {
                "fact": fact, "detail": detail, "plan": 0, "execute": 0, "commands": Counter()})
            read["execute" if executing else "plan"] += 1
            read["commands"][entry["what"]] += 1
    return {name: summarised(found) for name, found in hosts.items()}


def summarised(found: dict) -> dict:
    reads = {}
    for key, read in found["reads"].items():  # in the order first read
        reads[key] = {"fact": read["fact"], "detail": read["detail"], "plan": read["plan"], "execute": read["execute"],
                      "total": read["plan"] + read["execute"],
                      # the same command more than once: the same fact with the same arguments
                      "identical_repeats": sum(count - 1 for count in read["commands"].values())}
    fingerprints = {key: read for key, read in reads.items() if read["fact"] in FINGERPRINT_FACTS}
    return {
        "connections": found["connections"],
        "round_trips": sum(found["round_trips"][kind] for kind in REMOTE_KINDS),
        **{kind: found["round_trips"][kind] for kind in REMOTE_KINDS},
        "reads": reads,
        "fingerprint_reads": {key: read["total"] for key, read in fingerprints.items()},
        "fingerprint_reads_beyond_one": sum(read["total"] - 1 for read in fingerprints.values()),
        "read_more_than_once": sorted(key for key, read in reads.items() if read["total"] > 1),
    }


def alike(per_host: dict) -> list[tuple[list[str], dict]]:
    """Hosts grouped by identical breakdowns (the sandbox alternates two host shapes)."""
    groups: list[tuple[list[str], dict]] = []
    for name, found in per_host.items():
        shape = {key: found[key] for key in ("connections", "round_trips", "reads")}
        for names, existing in groups:
            if existing == shape:
                names.append(name)
                break
        else:
            groups.append(([name], shape))
    return groups


def breakdown_lines(what: str, per_host: dict) -> list[str]:
    lines = [f"\nSSH round trips per host, {what} (tests/reliability/counted_pyinfra.py):"]
    for names, shape in alike(per_host):
        found = per_host[names[0]]
        lines.append(f"\n  {', '.join(names)}: {found['round_trips']} round trips "
                     f"({found['run']} commands, {found['put']} uploads, {found['get']} downloads), "
                     f"{found['connections']} connection(s)")
        lines.append(f"    {'fact read':<58} {'plan':>5} {'exec':>5} {'total':>6}")
        for key, read in shape["reads"].items():
            flag = "  <- read more than once" if read["total"] > 1 else ""
            lines.append(f"    {key:<58} {read['plan']:>5} {read['execute']:>5} {read['total']:>6}{flag}")
        fingerprints = ", ".join(f"{key} {count}" for key, count in found["fingerprint_reads"].items()) or "none"
        lines.append(f"    fingerprint round trips (target 1 each): {fingerprints}")
    return lines


def timing_rows(what: str, seconds: dict[int, list[float]]) -> list[dict]:
    one = median(seconds[1])
    rows = [row(f"no-op {what}, 1 host", one, None, one, f"<= {ONE_HOST_TARGET_S:g} s", one <= ONE_HOST_TARGET_S)]
    largest = max(seconds)
    for count in sorted(seconds)[1:]:
        many = median(seconds[count])
        scaling = many / one
        target, met = (f"<= {SCALING_TARGET:g}x", scaling <= SCALING_TARGET) if count == largest else ("-", None)
        rows.append(row(f"no-op {what}, {count} hosts (ratio to 1 host)", many, one, scaling, target, met))
    return rows


def at_commit(box: Sandbox, names: list[str]) -> None:
    progress(f"bringing {', '.join(names)} to {TARGET_COMMIT}")
    deploy(box, "rollback.py", *limited_to(names), data={"commit": TARGET_COMMIT})


def at_snapshot(box: Sandbox, names: list[str], snapshot_id: str) -> None:
    progress(f"rolling back to {snapshot_id} once, to be at the target")
    # No safety snapshot: the one just taken is the undo, and is kept if anything fails.
    run = deploy(box, "rollback.py", *limited_to(names), data={"snapshot": snapshot_id, "safety_snapshot": "skip"})
    if run.totals()["changed"]:
        restored = sorted(set(re.findall(r"\] plan: (\S+?):? .*(?:restore|recover|stop together)", run.output)))
        progress(f"note: rolling back to the snapshot just taken changed {run.totals()['changed']} operations "
                 f"(restored: {', '.join(restored) or '?'}): the live data differed from what backup.py recorded")


def timed_noops(box: Sandbox, names: list[str], noops: dict, counts: list[int], runs: int) -> tuple[dict, dict]:
    """no-op -> host count -> seconds of each run, and the machine's busy core-seconds
    during each; every no-op and count in turn, run by run."""
    seconds = {what: {count: [] for count in counts} for what in noops}
    busy = {what: {count: [] for count in counts} for what in noops}
    for run in range(runs):
        for what, data in noops.items():
            for count in counts:
                description = f"rollback.py --data {what}=... on {count} host(s), run {run + 1}/{runs}"
                took, used = timed_noop(box, names[:count], data, description)
                seconds[what][count].append(took)
                busy[what][count].append(used)
                progress(f"{description}: {took:.1f} s, the machine's {CORES} cores {used / took / CORES:.0%} busy")
    return seconds, busy


def cpu_rows(what: str, seconds: dict[int, list[float]], busy: dict[int, list[float]], idle_rate: float) -> list[dict]:
    """Context for the scaling target: the sandbox's hosts share this machine's cores, so
    n hosts' no-op cannot end before n times one host's CPU work is done on the cores
    the idle hosts leave free."""
    largest = max(seconds)
    per_host = {count: max(median(busy[count]) - idle_rate * median(seconds[count]), 0) / count
                for count in (1, largest)}
    free = max(CORES - idle_rate, 0.1)
    floor = per_host[largest] * largest / free
    one = median(seconds[1])
    return [
        row(f"no-op {what}: CPU per host, 1 host (core-s), context", per_host[1], None, per_host[1], "-", None),
        row(f"no-op {what}: CPU per host, {largest} hosts (core-s), context", per_host[largest], None,
            per_host[largest], "-", None),
        row(f"no-op {what}, {largest} hosts: CPU floor on {free:.1f} free cores / 1 host", floor, one,
            floor / one, "-", None),
    ]


def counted_noops(names: list[str], noops: dict) -> dict:
    """no-op -> host -> its round trips and fact reads; the breakdown printed."""
    counted = {}
    for what, data in noops.items():
        progress(f"counting SSH round trips: rollback.py --data {what}=... on {len(names)} hosts")
        counted[what] = round_trips(counted_noop(names, data, f"rollback.py --data {what}=..."), names)
        print("\n".join(breakdown_lines(f"rollback.py --data {what}={data[what]} (no-op)", counted[what])))
    return counted


def main():
    chosen = options()
    box = sandbox()
    needed = chosen.hosts[-1]
    if len(box.hosts) < needed:
        raise SystemExit(f"bench/noop.py needs {needed} sandbox hosts, the sandbox has {len(box.hosts)}: "
                         f"SANDBOX_HOSTS={needed} make sandbox-up")
    names = [candidate.name for candidate in box.hosts[:needed]]
    info = machine(box)
    progress(f"pyinfra start-up: python -m pyinfra --version, {chosen.runs} times")
    startup = startup_seconds(chosen.runs)

    at_commit(box, names)
    progress(f"snapshot of {len(names)} hosts (backup.py, label {SNAPSHOT_LABEL})")
    snapshot_id = taken_snapshot(box, names)
    noops = {"snapshot": {"snapshot": snapshot_id}, "commit": {"commit": TARGET_COMMIT}}
    try:
        at_snapshot(box, names, snapshot_id)
        progress("the machine's load with no run going (5 s)")
        idle_rate = idle_busy_rate()
        seconds, busy = timed_noops(box, names, noops, chosen.hosts, chosen.runs)
        counted = counted_noops(names, noops)
    except BaseException:
        progress(f"stopped: snapshot {snapshot_id} is kept on {', '.join(names)} "
                 f"(under {DEFAULTS['layra_snapshot_root']})")
        raise
    removed_snapshot(box, names, snapshot_id)
    progress(f"removed snapshot {snapshot_id}; the hosts are at {TARGET_COMMIT} with the data they had")

    snapshot_hosts = counted["snapshot"].values()
    most_trips = max(found["round_trips"] for found in snapshot_hosts)
    beyond_one = max(found["fingerprint_reads_beyond_one"] for found in snapshot_hosts)
    rows = [
        *timing_rows("(snapshot)", seconds["snapshot"]),
        *cpu_rows("(snapshot)", seconds["snapshot"], busy["snapshot"], idle_rate),
        *timing_rows("(commit only)", seconds["commit"]),
        *cpu_rows("(commit only)", seconds["commit"], busy["commit"], idle_rate),
        row("SSH round trips per host, snapshot no-op (most of any host)", most_trips, None, most_trips,
            "-", None, unit=""),
        row("fingerprint reads beyond one per component (worst host)", beyond_one, None, beyond_one,
            "0", beyond_one == 0, unit=""),
        row("pyinfra start-up (python -m pyinfra --version), context", startup, None, startup, "-", None),
    ]
    repeated = {what: {name: found["read_more_than_once"] for name, found in per_host.items()}
                for what, per_host in counted.items()}
    report("noop", "Benchmark 3: the no-op run (rollback.py at the target state)", rows, {
        "runs": chosen.runs, "host_counts": chosen.hosts, "hosts": names, "snapshot": snapshot_id,
        "commit": TARGET_COMMIT, "startup_s": round(startup, 3),
        "seconds": {what: {str(count): [round(value, 3) for value in values] for count, values in by_count.items()}
                    for what, by_count in seconds.items()},
        "cores": CORES, "idle_busy_cores": round(idle_rate, 3),
        "busy_core_seconds": {what: {str(count): [round(value, 3) for value in values]
                                     for count, values in by_count.items()} for what, by_count in busy.items()},
        "round_trips": counted, "read_more_than_once": repeated,
    }, info)


if __name__ == "__main__":
    main()
