"""
MySQL dump and restore through backup.py / rollback.py against the same work done by hand
(`mysqldump | gzip` and `gunzip | mysql` through `docker compose exec`), on one sandbox host,
in the same run. Prints medians and ratios; writes bench/results/mysql_restore.json.

    .venv/bin/python bench/mysql_restore.py [--rows 100000] [--runs 3] [--host sandbox-1]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from e2e.conftest import Sandbox  # noqa: E402  (the e2e harness: hosts, ssh, pyinfra runs)

MYSQL = 'MYSQL_PWD=$(sed -n "s/^MYSQL_ROOT_PASSWORD=//p" .env) docker compose exec -T -e MYSQL_PWD mysql'


def timed(action) -> tuple[float, object]:
    start = time.monotonic()
    result = action()
    return time.monotonic() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--host", default="sandbox-1")
    options = parser.parse_args()

    sandbox = Sandbox.__new__(Sandbox)
    Sandbox.__init__(sandbox)
    host = next(h for h in sandbox.hosts if h.name == options.host)
    print(f"seeding {options.rows:,} rows into layra.bench_rows on {host.name} ...", flush=True)
    host.stack(f"{MYSQL} mariadb -uroot layra -e \"DROP TABLE IF EXISTS bench_rows; "
               "CREATE TABLE bench_rows (id INT PRIMARY KEY, name VARCHAR(64), body TEXT, n DOUBLE); "
               "INSERT INTO bench_rows SELECT seq, CONCAT('row-', seq), REPEAT(MD5(seq), 4), seq / 7 "
               f"FROM seq_1_to_{options.rows}\" </dev/null")

    results = {"ours_dump": [], "hand_dump": [], "ours_restore": [], "hand_restore": []}
    sizes = {}
    for run in range(options.runs):
        seconds, out = timed(lambda: sandbox.pyinfra("backup.py", "--limit", host.name, "--data", f"label=bench{run}"))
        assert out.ok, out.output
        snapshot_id = re.search(r"snapshot (\S+-bench\d+)", out.output).group(1)
        results["ours_dump"].append(seconds)
        sizes["ours"] = int(host.ssh(f"stat -c %s /var/backups/layra/{snapshot_id}/mysql.layra.sql.gz"))

        seconds, _ = timed(lambda: host.stack(
            f"{MYSQL} mariadb-dump -uroot --single-transaction --routines --triggers --events layra </dev/null"
            " | gzip -c > /tmp/hand.sql.gz"))
        results["hand_dump"].append(seconds)
        sizes["hand"] = int(host.ssh("stat -c %s /tmp/hand.sql.gz"))

        host.stack(f"{MYSQL} mariadb -uroot layra -e 'DELETE FROM bench_rows WHERE id % 2 = 0' </dev/null")
        seconds, out = timed(lambda: sandbox.pyinfra("rollback.py", "--limit", host.name,
                                                     "--data", f"snapshot={snapshot_id}"))
        assert out.ok, out.output
        results["ours_restore"].append(seconds)

        host.stack(f"{MYSQL} mariadb -uroot layra -e 'DELETE FROM bench_rows WHERE id % 2 = 0' </dev/null")
        seconds, _ = timed(lambda: host.stack(f"gunzip -c /tmp/hand.sql.gz | {MYSQL} mariadb -uroot layra"))
        results["hand_restore"].append(seconds)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in results.items()), flush=True)

    host.stack(f"{MYSQL} mariadb -uroot layra -e 'DROP TABLE bench_rows' </dev/null; rm -f /tmp/hand.sql.gz")
    median = {key: statistics.median(values) for key, values in results.items()}
    summary = {
        "rows": options.rows, "runs": options.runs, "host": host.name,
        "median_seconds": median,
        "dump_bytes": sizes,
        "dump_time_ratio": median["ours_dump"] / median["hand_dump"],
        "dump_size_ratio": sizes["ours"] / sizes["hand"],
        "restore_time_ratio": median["ours_restore"] / median["hand_restore"],
    }
    print(f"\n{'':24}{'ours':>10}{'by hand':>10}{'ratio':>8}")
    print(f"{'dump (s, median)':24}{median['ours_dump']:>10.1f}{median['hand_dump']:>10.1f}{summary['dump_time_ratio']:>8.2f}")
    print(f"{'dump size (MiB)':24}{sizes['ours'] / 2**20:>10.2f}{sizes['hand'] / 2**20:>10.2f}{summary['dump_size_ratio']:>8.2f}")
    print(f"{'restore (s, median)':24}{median['ours_restore']:>10.1f}{median['hand_restore']:>10.1f}"
          f"{summary['restore_time_ratio']:>8.2f}")
    print("ours = the whole pyinfra run (connect, facts, checks, verify); by hand = the bare tool")
    out = ROOT / "bench" / "results" / "mysql_restore.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
