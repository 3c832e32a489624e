"""
`make test`: every test, in two lanes side by side, each driving its own two of the
sandbox's four hosts (tests/e2e/conftest.py).

The test files are taken longest first from one queue by two lanes; each file runs whole
in a pytest process of its own (its module fixtures set one scene on its lane's hosts),
with ``LAYRA_TEST_LANE`` naming the lane. The unit tier, which needs no host, is one more
item of the queue. pytest-xdist cannot be used: pyinfra's gevent patches the queue its
workers wait on (they die with ``LoopExit``).

Each file's output is printed as it finishes; the last lines add up every file's pytest
summary, as one pytest run would print it, and the exit status is pytest's: 0 when every
file passed, else the first failing status (5, no test collected, included).

    .venv/bin/python tests/lanes.py [pytest options...]
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANES = 2
# Seconds each took in a full run on the 2-core machine: the longest start first.
EXPECTED = {
    "tests/reliability/test_faults.py": 514, "tests/e2e/test_rollback_run.py": 278,
    "tests/e2e/test_rehearsal.py": 238, "tests/e2e/test_watch.py": 224, "tests/e2e/test_point_in_time.py": 221,
    "tests/e2e/test_snapshot_restore.py": 221, "tests/e2e/test_engines.py": 190, "tests/e2e/test_stack_rollback.py": 177,
    "tests/reliability/test_secrets.py": 112, "unit": 106, "tests/e2e/test_hostile_names.py": 93,
    "tests/reliability/test_bad_input.py": 32,
}
SUMMARY = re.compile(r"^=+ (.*) in [\d.]+s(?: \(.*\))? =+$")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)")


def sandbox_files() -> list[str]:
    found = sorted(str(path.relative_to(ROOT)) for folder in ("tests/e2e", "tests/reliability")
                   for path in (ROOT / folder).glob("test_*.py"))
    return sorted(found, key=lambda name: -EXPECTED.get(name, 30))


def items() -> list[tuple[str, list[str]]]:
    """(name, pytest arguments) of every item of the queue, the longest first."""
    work = [(name, [name]) for name in sandbox_files()]
    work.append(("unit", ["-m", "not e2e", "--ignore=tests/e2e", "--ignore=tests/reliability"]))
    return sorted(work, key=lambda item: -EXPECTED.get(item[0], 30))


def run_lane(lane: int, work: queue.Queue, results: list, options: list[str], printed: threading.Lock):
    while True:
        try:
            name, arguments = work.get_nowait()
        except queue.Empty:
            return
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *options, *arguments],
                             cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "LAYRA_TEST_LANE": str(lane)})
        took = time.monotonic() - started
        results.append((name, run.returncode, run.stdout + run.stderr, took))
        with printed:
            print(f"\n----- lane {lane}: {name}: exit {run.returncode} in {took:.0f}s -----", flush=True)
            print((run.stdout + run.stderr).rstrip(), flush=True)


def totals(outputs: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for output in outputs:
        for line in output.splitlines()[::-1]:
            match = SUMMARY.match(line.strip())
            if match:
                for number, word in COUNT.findall(match.group(1)):
                    word = {"error": "errors", "warning": "warnings"}.get(word, word)
                    found[word] = found.get(word, 0) + int(number)
                break
    return found


def main() -> int:
    options = sys.argv[1:]
    work: queue.Queue = queue.Queue()
    for item in items():
        work.put(item)
    results: list = []
    printed = threading.Lock()
    started = time.monotonic()
    lanes = [threading.Thread(target=run_lane, args=(lane, work, results, options, printed)) for lane in range(LANES)]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    took = time.monotonic() - started
    print("\n----- files, slowest first -----")
    for name, code, _, seconds in sorted(results, key=lambda result: -result[3]):
        print(f"{seconds:7.0f}s  exit {code}  {name}")
    counts = totals([output for _, _, output, _ in results])
    failing = [code for _, code, _, _ in sorted(results) if code != 0]
    order = ("failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "errors", "warnings")
    words = ", ".join(f"{counts[word]} {word}" for word in order if counts.get(word)) or "no tests ran"
    print(f"{'=' * 20} {words} in {took:.2f}s ({LANES} lanes) {'=' * 20}")
    return failing[0] if failing else 0


if __name__ == "__main__":
    sys.exit(main())
