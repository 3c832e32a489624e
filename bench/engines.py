"""
What each engine adds to a backup and to a rollback on the sandbox (`make sandbox-up`).

For each component of sandbox-1 (sandbox-2 for Redis as state), times `backup.py` and
`rollback.py --data snapshot=...` holding only that component (host data
`layra_components`), against the same runs holding none (the stack alone): the
difference is what the engine adds. The rollback restores for real: each component's
data is changed first, so the restore is not a noop. Medians of --runs runs.

    .venv/bin/python bench/engines.py [--runs 2]

Prints a table and writes bench/results/engines.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inventories.sandbox import _components, _redis_as_state  # noqa: E402
from tests.e2e.conftest import Sandbox  # noqa: E402
from tests.e2e import test_engines, test_snapshot_restore  # noqa: E402

CASES = {  # component -> (host index, its settings, how to change its data)
    "mysql": (0, _components["mysql"], test_snapshot_restore.damage),
    "mongodb": (0, _components["mongodb"], lambda host: test_engines.in_backend(
        host, test_engines.MONGO + "db.bench.insert_one({'x': 1})")),
    "redis (rdb)": (1, _redis_as_state["redis"], lambda host: test_snapshot_restore.redis_cli(
        host, "SET", "bench:key", "1")),
    "qdrant (api)": (0, _components["qdrant"], lambda host: test_engines.in_backend(
        host, test_engines.QDRANT + "q('PUT', '/collections/kb_vectors/points?wait=true', "
                                    "{'points': [{'id': 9002, 'vector': [0.5] * 8, 'payload': {}}]})")),
    "qdrant (volume)": (1, _redis_as_state["qdrant"], lambda host: test_engines.in_backend(
        host, test_engines.QDRANT + "q('PUT', '/collections/kb_vectors/points?wait=true', "
                                    "{'points': [{'id': 9002, 'vector': [0.5] * 8, 'payload': {}}]})")),
    "milvus + etcd (volumes)": (0, _components["milvus"], lambda host: test_engines.etcd(
        host, "put", "layra/bench", "1")),
}


def timed(sandbox: Sandbox, deploy: str, host: str, components: dict, *data: str) -> tuple[float, str]:
    args = ["--limit", host, "--data", f"layra_components={json.dumps(components)}"]
    for item in data:
        args += ["--data", item]
    start = time.monotonic()
    run = sandbox.pyinfra(deploy, *args)
    elapsed = time.monotonic() - start
    if not run.ok:
        raise SystemExit(f"{deploy} failed:\n{run.output[-3000:]}")
    return elapsed, run.output


def snapshot_of(output: str) -> str:
    for word in output.split():
        if word.endswith("-bench") and word[:8].isdigit():
            return word
    raise SystemExit("no snapshot id in the backup's output")


def measure(sandbox: Sandbox, host_index: int, components: dict, change) -> tuple[float, float]:
    host = sandbox.hosts[host_index]
    backup, output = timed(sandbox, "backup.py", host.name, components, "label=bench")
    if change:
        change(host)
    rollback, _ = timed(sandbox, "rollback.py", host.name, components, f"snapshot={snapshot_of(output)}")
    return backup, rollback


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    runs = parser.parse_args().runs
    sandbox = Sandbox()
    sandbox.at_good_release()
    baseline = {i: [measure(sandbox, i, {}, None) for _ in range(runs)] for i in (0, 1)}
    base = {i: tuple(statistics.median(r[k] for r in baseline[i]) for k in (0, 1)) for i in baseline}
    rows = {}
    for name, (index, settings, change) in CASES.items():
        results = [measure(sandbox, index, {name.split()[0]: settings}, change) for _ in range(runs)]
        backup, rollback = (statistics.median(r[k] for r in results) for k in (0, 1))
        rows[name] = {"backup_s": round(backup, 1), "backup_added_s": round(backup - base[index][0], 1),
                      "rollback_s": round(rollback, 1), "rollback_added_s": round(rollback - base[index][1], 1)}
    print(f"baseline (stack only): backup {base[0][0]:.1f} s, rollback {base[0][1]:.1f} s (medians of {runs})")
    print(f"{'component':<26}{'backup':>10}{'adds':>8}{'rollback':>10}{'adds':>8}")
    for name, row in rows.items():
        print(f"{name:<26}{row['backup_s']:>9.1f}s{row['backup_added_s']:>7.1f}s"
              f"{row['rollback_s']:>9.1f}s{row['rollback_added_s']:>7.1f}s")
    out = ROOT / "bench" / "results" / "engines.json"
    out.write_text(json.dumps({"runs": runs, "baseline": {"backup_s": round(base[0][0], 1),
                                                          "rollback_s": round(base[0][1], 1)},
                               "components": rows}, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
