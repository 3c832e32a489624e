"""
MySQL and volume data on one sandbox host: backup, fingerprint and restore, ours against
the raw tools run by hand, in the same run (benchmarks 1, 4 and 5 of the README's
Performance section).

    .venv/bin/python bench/mysql.py [--size-mb 1024] [--runs 3] [--host sandbox-1] [--keep]

It seeds a database ``bench`` of about --size-mb (a dump of that size; 1000 rows of about
1 KB per MB) on the host, once, and a file of --size-mb / 2 in the Milvus volume, then
alternates, run by run:

- backup: ``backup.py`` holding only that database, vs ``mariadb-dump | gzip`` by hand
  through ``docker compose exec`` (the runbook's command); throughput ratio and size;
- fingerprint: our MySQL fingerprint (schema hash, row counts, ``CHECKSUM TABLE``) and our
  volume fingerprint (every entry's metadata, no content read), as fractions of the dump
  each sits next to (the same ``mariadb-dump`` / ``tar`` piped to the same compressor,
  without fingerprints), both clocked on the host: the connection a pyinfra run already
  holds costs neither side a new SSH set-up;
- restore: ``rollback.py --data snapshot=<ours> --data safety_snapshot=skip`` vs
  ``mysql < dump`` by hand into the live database (a plain dump, nothing to decompress).
  The safety snapshot a default rollback takes first is a backup (measured above); once,
  the default rollback is timed too, to show what it adds.

Each restore starts from the same damage (1000 rows deleted), so neither side is a no-op.
Our side is timed around the whole ``python -m pyinfra`` process, start-up included; the
hand side is clocked on the host. Where our restore's time went, phase by phase, comes
from its run record. Writes bench/results/mysql.json; --keep leaves the seeded data.
"""

from __future__ import annotations

import argparse
import re
import shlex

from harness import (HAND_MYSQL, deploy, host_named, machine, median, progress, ratio, report, row, sandbox,
                     seconds_on_host, sql, time_went_line, timed, where_time_went)

from facts.compose import Stack
from facts.mysql import fingerprint_command
from facts.volumes import VolumeSet, inspect_command

DATABASE, TABLE = "bench", "bench_rows"
HAND_DIR = "/var/backups/layra-bench-hand"
VOLUME_SERVICES = ["milvus-standalone", "milvus-etcd"]
BLOB = "layra-bench.blob"
COMPONENTS = {"mysql": {"engine": "mysql", "service": "mysql", "user": "root",
                        "password_key": "MYSQL_ROOT_PASSWORD", "databases": [DATABASE]}}
DUMP_OPTIONS = "--single-transaction --routines --triggers --events --hex-blob --no-tablespaces"
# ~1 KB of hex per row: compresses about 2:1, like text columns do
BODY = "CONCAT_WS(' ', " + ", ".join(f"SHA2(CONCAT(seq, '-{i}'), 512)" for i in range(7)) + ")"


def seeded(host, megabytes: int) -> None:
    rows = megabytes * 1000
    if sql(host, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{DATABASE}' "
                 f"AND table_name = '{TABLE}'") == "1" and sql(host, f"SELECT COUNT(*) FROM {TABLE}", DATABASE) == str(rows):
        progress(f"{host.name}: {DATABASE}.{TABLE} already holds {rows:,} rows")
        return
    progress(f"{host.name}: seeding {rows:,} rows (~{megabytes} MB of dump) into {DATABASE}.{TABLE}")
    sql(host, f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE}")
    sql(host, f"CREATE TABLE {TABLE} (id INT PRIMARY KEY, name VARCHAR(64), body TEXT, n DOUBLE, "
              "created DATETIME)", DATABASE)
    step = 100_000
    for first in range(1, rows + 1, step):
        last = min(rows, first + step - 1)
        sql(host, f"INSERT INTO {TABLE} SELECT seq, CONCAT('row-', seq), {BODY}, seq / 7, "
                  f"'2026-01-01' + INTERVAL seq SECOND FROM seq_{first}_to_{last}", DATABASE)
        progress(f"  {last:,} / {rows:,} rows")


def volume_path(host) -> str:
    return host.ssh("docker volume inspect -f '{{.Mountpoint}}' layra_milvus_data")


def damaged(host) -> None:
    sql(host, f"DELETE FROM {TABLE} WHERE id <= 1000", DATABASE)


def on_host(host, command, shell: str = "sh") -> float:
    """Seconds ``command`` (a StringCommand, run by ``shell`` as its fact does) takes on the host."""
    return seconds_on_host(host, f"{shell} -c {shlex.quote(command.get_raw_value())}")


def hand(host, command: str) -> float:
    """Seconds a command typed by hand in the stack's directory takes on the host."""
    return seconds_on_host(host, f"cd /srv/layra && set -o pipefail && {command}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring (and README, Performance) for what each side runs.")
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the seeded database's dump (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side; medians are reported (default 3)")
    parser.add_argument("--host", default="sandbox-1", help="sandbox host (default sandbox-1)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database and volume file afterwards")
    options = parser.parse_args()

    box = sandbox()
    host = host_named(box, options.host)
    info = machine(box)
    seeded(host, options.size_mb)
    blob = f"{volume_path(host)}/{BLOB}"
    # half random, half zeros: compresses about 2:1
    host.ssh(f"[ -f {blob} ] || {{ head -c {options.size_mb // 4}M /dev/urandom; "
             f"head -c {options.size_mb // 4}M /dev/zero; }} > {blob}")
    host.ssh(f"umask 077; mkdir -p {HAND_DIR}")
    stack = Stack("/srv/layra")
    data = {"layra_components": COMPONENTS}
    dump = f"{HAND_MYSQL} mariadb-dump -uroot {DUMP_OPTIONS} {DATABASE} </dev/null"
    times: dict[str, list[float]] = {key: [] for key in (
        "ours_backup", "hand_backup", "plain_dump", "mysql_fingerprint", "volume_archive", "volume_fingerprint",
        "ours_restore", "hand_restore")}
    sizes: dict[str, int] = {}
    snapshot_ids, records = [], []   # records: our restores' run records
    for run in range(1, options.runs + 1):
        progress(f"run {run}/{options.runs}: backup.py")
        seconds, out = timed(lambda: deploy(box, "backup.py", "--limit", host.name,
                                            data={**data, "label": f"bench{run}"}))
        times["ours_backup"].append(seconds)
        snapshot_id = re.search(r"snapshot (\S+-bench\d+)", out.output).group(1)
        snapshot_ids.append(snapshot_id)
        ours_file = host.ssh(f"ls /var/backups/layra/{snapshot_id}/mysql.{DATABASE}.sql.*")
        sizes["ours"] = int(host.ssh(f"stat -c %s {ours_file}"))

        progress(f"run {run}/{options.runs}: mariadb-dump | gzip by hand")
        times["hand_backup"].append(hand(host, f"{dump} | gzip -c > {HAND_DIR}/{DATABASE}.sql.gz"))
        sizes["hand"] = int(host.ssh(f"stat -c %s {HAND_DIR}/{DATABASE}.sql.gz"))

        progress(f"run {run}/{options.runs}: fingerprints and the dumps they sit next to")
        times["plain_dump"].append(hand(host, f"{dump} | zstd -q -T0 -c > {HAND_DIR}/{DATABASE}.sql.zst"))
        times["mysql_fingerprint"].append(on_host(host, fingerprint_command(
            stack, DATABASE, "mysql", "root", "MYSQL_ROOT_PASSWORD")))
        times["volume_archive"].append(hand(host, f"tar -C {shlex.quote(volume_path(host))} -cf - . "
                                                  f"| zstd -q -T0 -c > {HAND_DIR}/milvus.tar.zst"))
        times["volume_fingerprint"].append(on_host(host, inspect_command(stack, VOLUME_SERVICES, True),
                                                          VolumeSet.shell_executable))

        progress(f"run {run}/{options.runs}: rollback.py (safety snapshot skipped)")
        damaged(host)
        seconds, restore = timed(lambda: deploy(box, "rollback.py", "--limit", host.name,
                                             data={**data, "snapshot": snapshot_id, "safety_snapshot": "skip"}))
        times["ours_restore"].append(seconds)
        records.append(restore.record())

        progress(f"run {run}/{options.runs}: mysql < dump by hand")
        host.ssh(f"[ -f {HAND_DIR}/{DATABASE}.sql ] || zstd -q -dc {HAND_DIR}/{DATABASE}.sql.zst > {HAND_DIR}/{DATABASE}.sql")
        damaged(host)
        times["hand_restore"].append(hand(host, f"{HAND_MYSQL} mariadb -uroot {DATABASE} < {HAND_DIR}/{DATABASE}.sql"))
        print("   " + ", ".join(f"{key} {values[-1]:.1f}s" for key, values in times.items()), flush=True)

    progress("once: rollback.py as run by default (with its safety snapshot)")
    damaged(host)
    with_safety, run = timed(lambda: deploy(box, "rollback.py", "--limit", host.name,
                                            data={**data, "snapshot": snapshot_ids[-1]}))
    snapshot_ids += sorted(set(re.findall(r"\d{8}T\d{6}Z-safety-before-rollback", run.output)))

    m = {key: median(values) for key, values in times.items()}
    went = where_time_went(times["ours_restore"], records)
    print(time_went_line(went), flush=True)
    dump_mb = options.size_mb
    rows = [
        row(f"1. restore {dump_mb} MB: rollback.py vs mysql < dump", m["ours_restore"], m["hand_restore"],
            ratio(m["ours_restore"], m["hand_restore"]), "<= 1.15", ratio(m["ours_restore"], m["hand_restore"]) <= 1.15),
        row("   rollback.py by default (+ safety snapshot), once", with_safety, m["hand_restore"],
            ratio(with_safety, m["hand_restore"]), "-", None),
        row("4. backup: throughput backup.py / mysqldump|gzip", m["ours_backup"], m["hand_backup"],
            ratio(m["hand_backup"], m["ours_backup"]), ">= 0.9", ratio(m["hand_backup"], m["ours_backup"]) >= 0.9),
        row("4. backup: snapshot size / mysqldump|gzip size (MB)", sizes["ours"] / 1e6, sizes["hand"] / 1e6,
            sizes["ours"] / sizes["hand"], "<= 1.0", sizes["ours"] <= sizes["hand"], unit="M"),
        row("5. MySQL fingerprint / its dump", m["mysql_fingerprint"], m["plain_dump"],
            ratio(m["mysql_fingerprint"], m["plain_dump"]), "<= 0.2",
            ratio(m["mysql_fingerprint"], m["plain_dump"]) <= 0.2),
        row("5. volume fingerprint / its archive", m["volume_fingerprint"], m["volume_archive"],
            ratio(m["volume_fingerprint"], m["volume_archive"]), "<= 0.2",
            ratio(m["volume_fingerprint"], m["volume_archive"]) <= 0.2),
    ]
    if not options.keep:
        progress("cleaning up: the bench database, the volume file, the hand dumps and our snapshots")
        sql(host, f"DROP DATABASE IF EXISTS {DATABASE}; DROP DATABASE IF EXISTS {DATABASE}__pre_restore")
        host.ssh(f"rm -rf {HAND_DIR} {blob} " + " ".join(f"/var/backups/layra/{i}" for i in snapshot_ids))
    report("mysql", f"MySQL ({dump_mb} MB dump) and volume data on {host.name}, medians of {options.runs} runs",
           rows, {"size_mb": dump_mb, "runs": options.runs, "host": host.name,
                  "seconds": times, "median_seconds": m, "bytes": sizes,
                  "default_rollback_seconds": with_safety, "restore_where_time_went": went}, info)


if __name__ == "__main__":
    main()
