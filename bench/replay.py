"""
The binlog replay of a point-in-time rollback at scale: the MySQL engine's
``shadow_replayed`` (``mariadb-binlog -R --database --rewrite-db`` through the server,
applied with ``sql_log_bin=0``) against the same replay typed by hand, on the same events.

    .venv/bin/python bench/replay.py [--rows 1000000] [--batch 10000] [--runs 3]

On sandbox-1's MariaDB (ROW binlog, FULL row images), in a database of its own
(``replaybench``): a table is created, the binlog position noted, --rows rows inserted in
transactions of --batch rows, the position noted again. Then, run by run, alternating which
side goes first, the shadow ``replaybench__restore`` is recreated empty and the range
replayed onto it:

- ours: ``pyinfra inventories/sandbox.py bench/replay_deploy.py --limit sandbox-1``, the
  operation alone timed in pyinfra's execution stage (bench/replay_deploy.py);
- by hand, inside the container: ``mariadb-binlog -R --database=replaybench
  --rewrite-db='replaybench->replaybench__restore' --start-position --stop-position FILE |
  mariadb``, clocked on the host.

Each run must leave --rows rows in the shadow. Rows per second are compared (target: ours
>= 0.9 x by hand). Both databases are dropped at the end. Writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import re
import shlex

from harness import (
    HAND_MYSQL,
    deploy,
    host_named,
    machine,
    median,
    progress,
    report,
    row,
    sandbox,
    seconds_on_host,
)

DATABASE = "replaybench"
SHADOW = DATABASE + "__restore"
HOST = "sandbox-1"


def sql(host, statement: str) -> str:
    return host.stack(f"{HAND_MYSQL} mariadb -uroot -N -B -e {shlex.quote(statement)} </dev/null")


def position(host) -> tuple[str, int]:
    file, pos = sql(host, "SHOW MASTER STATUS").split("\t")[:2]
    return file, int(pos)


def empty_shadow(host):
    sql(host, f"DROP DATABASE IF EXISTS {SHADOW}; CREATE DATABASE {SHADOW}; "
              f"CREATE TABLE {SHADOW}.items (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(64) NOT NULL)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    box = sandbox()
    host = host_named(box, HOST)
    info = machine(box)
    try:
        progress(f"{HOST}: {options.rows:,} rows into {DATABASE}.items, {options.batch:,} per transaction")
        sql(host, f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE}; "
                  f"CREATE TABLE {DATABASE}.items (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(64) NOT NULL)")
        start = position(host)
        # one session, one transaction per statement (autocommit)
        sql(host, f"USE {DATABASE}; " + " ".join(
            f"INSERT INTO items SELECT seq, seq * 7, MD5(seq) FROM seq_{first + 1}_to_{min(first + options.batch, options.rows)};"
            for first in range(0, options.rows, options.batch)))
        stop = position(host)
        assert start[0] == stop[0], "the binlog rotated during the load: run again with fewer --rows"
        progress(f"the range: {start[0]}:{start[1]} -> {stop[1]} ({(stop[1] - start[1]) / 2**20:.1f} MiB of binlog)")
        ours, by_hand = [], []
        hand = (f"cd /srv/layra && {HAND_MYSQL} sh -c "
                + shlex.quote(f"mariadb-binlog -R -u root --database={DATABASE} "
                              f"--rewrite-db='{DATABASE}->{SHADOW}' --start-position={start[1]} "
                              f"--stop-position={stop[1]} {start[0]} | mariadb -u root"))
        for run in range(options.runs):
            for side in (("ours", "hand") if run % 2 == 0 else ("hand", "ours")):
                empty_shadow(host)
                if side == "ours":
                    result = deploy(box, "bench/replay_deploy.py", "--limit", HOST, data={
                        "bench_database": DATABASE, "bench_file": start[0], "bench_start": start[1],
                        "bench_stop": stop[1]})
                    assert result.ok, result.output[-3000:]
                    ours.append(float(re.search(r"bench: replay took ([\d.]+) s", result.output)[1]))
                else:
                    by_hand.append(seconds_on_host(host, hand))
                count = int(sql(host, f"SELECT COUNT(*) FROM {SHADOW}.items"))
                assert count == options.rows, f"{side}: {count} rows replayed, want {options.rows}"
            progress(f"run {run + 1}/{options.runs}: ours {ours[-1]:.2f} s, by hand {by_hand[-1]:.2f} s")
    finally:
        sql(host, f"DROP DATABASE IF EXISTS {DATABASE}; DROP DATABASE IF EXISTS {SHADOW}")
    ours_rate, hand_rate = options.rows / median(ours), options.rows / median(by_hand)
    rows = [row(f"replay of {options.rows:,} rows: rows/s ours / by hand", ours_rate, hand_rate,
                ours_rate / hand_rate, ">= 0.9", ours_rate / hand_rate >= 0.9, unit=" rows/s")]
    report("replay", f"The binlog replay of a point-in-time rollback on {HOST} ({options.rows:,} rows), "
                     f"vs mariadb-binlog | mariadb by hand; medians of {options.runs} run(s)",
           rows, {"ours_s": ours, "by_hand_s": by_hand, "rows": options.rows}, info)


if __name__ == "__main__":
    main()
