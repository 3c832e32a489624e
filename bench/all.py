"""
Every benchmark, one after another on the sandbox, then one table of every ratio and its
target (``make bench``; ``make bench-quick`` passes --quick).

    .venv/bin/python bench/all.py [--quick]

--quick: smaller data (MySQL 100 MB instead of 1 GB) and fewer runs; the same ratios.
The no-op benchmark needs 10 sandbox hosts: the hosts it has to start for it are stopped
again afterwards. Writes bench/results/summary.json (and each script its own JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from harness import RESULTS, ROOT, STATE, describe_machine, machine, markdown, progress, table, written

FULL = {
    "mysql": ["--size-mb", "1024", "--runs", "3"],
    "stack": ["--runs", "3"],
    "window": ["--scales", "1", "4", "--runs", "1"],
    "redis_flush": ["--keys", "200000", "--runs", "3"],
    "replay": ["--rows", "1000000", "--batch", "10000", "--runs", "3"],
    "noop": ["--runs", "3", "--hosts", "1,4,10"],
}
QUICK = {
    "mysql": ["--size-mb", "100", "--runs", "2"],
    "stack": ["--mysql-mb", "50", "--volume-mb", "50", "--documents", "10000", "--points", "1000", "--runs", "2"],
    "window": ["--quick"],
    "redis_flush": ["--keys", "200000", "--runs", "2"],
    "replay": ["--rows", "300000", "--runs", "2"],
    "noop": ["--runs", "2", "--hosts", "1,4,10"],
}
NOOP_HOSTS = 10


def running_hosts() -> set[str]:
    out = subprocess.run(["docker", "ps", "--filter", "name=^layra-sandbox-[0-9]+$", "--format", "{{.Names}}"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def hosts_up(count: int) -> None:
    subprocess.run(["bash", str(ROOT / "sandbox" / "up.sh")], check=True,
                   env={**os.environ, "SANDBOX_HOSTS": str(count)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer runs (a few minutes' less)")
    parser.add_argument("--table-only", action="store_true",
                        help="run nothing: print the table of the results bench/results/ holds")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    options = parser.parse_args()
    plan = QUICK if options.quick else FULL
    started = time.monotonic()
    for name, arguments in ({} if options.table_only else plan).items():
        before = running_hosts()
        if name == "noop":
            progress(f"starting {NOOP_HOSTS} sandbox hosts for the no-op benchmark")
            hosts_up(NOOP_HOSTS)
        progress(f"bench/{name}.py {' '.join(arguments)}")
        try:
            subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *arguments], check=True)
        finally:
            extra = sorted(running_hosts() - before)
            if extra:
                progress(f"stopping the hosts started for it: {', '.join(extra)}")
                # time for each host's dockerd to stop its containers and exit cleanly
                subprocess.run(["docker", "stop", "-t", "60", *extra], check=True, stdout=subprocess.DEVNULL)

    rows, info = [], machine()
    for name in plan:
        result = json.loads((RESULTS / f"{name}.json").read_text())
        rows += [item for item in result["rows"] if item["met"] is not None]
    runs = ", ".join(f"{name}: {json.loads((RESULTS / f'{name}.json').read_text())['machine']['when']}" for name in plan)
    print(f"\nEvery target ({'as last measured' if options.table_only else 'quick run' if options.quick else 'full run'}, "
          f"{time.monotonic() - started:.0f} s; measured {runs})\n{describe_machine(info)}\n")
    print(markdown(rows) if options.markdown else table(rows))
    met = sum(1 for item in rows if item["met"])
    print(f"\n{met} of {len(rows)} targets met")
    if options.table_only:
        return
    written("summary", {"quick": options.quick, "machine": info, "rows": rows,
                        "sandbox_state": str(STATE), "met": met, "targets": len(rows)})


if __name__ == "__main__":
    main()
