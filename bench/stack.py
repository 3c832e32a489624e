"""
The whole stack rolled back: one ``rollback.py`` restoring every component of a sandbox
host (in parallel), against the runbook done by hand, one component after another with
the raw tools, from the same snapshot (benchmark 2 of the README's Performance section).

    .venv/bin/python bench/stack.py [--mysql-mb 200] [--volume-mb 200] [--runs 3] [--host sandbox-1]

It grows the host's data first (a table of --mysql-mb in MySQL, documents in MongoDB,
points in Qdrant, a file of --volume-mb in the Milvus volume), takes one snapshot, and
then, run by run, changes every component and restores it:

- ours: ``rollback.py --data snapshot=<id> --data safety_snapshot=skip`` (the safety
  snapshot is a backup; the runbook by hand takes its backup before it starts too);
- by hand, in the runbook's order, each timed: ``zstd -dc dump | mariadb``,
  ``mongorestore --archive --gzip --drop``, the Milvus services stopped, their volumes
  emptied and extracted from the archives, started and waited for, the Qdrant snapshot
  uploaded with ``priority=snapshot``, and the cache keys deleted; each step clocked on
  the host (ours: the whole ``python -m pyinfra`` process).

Where our time went, phase by phase (maintenance on, restore, verify...), comes from the
run records.

Targets: ours <= 0.6 x the sum of the hand steps, and <= 1.2 x the slowest hand step.
MongoDB and Qdrant are stand-ins on the sandbox (see sandbox/README.md).
Writes bench/results/stack.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex

from harness import (HAND_MYSQL, deploy, host_named, machine, median, phase_seconds, progress, ratio, report,
                     row, sandbox, seconds_on_host, sql, time_went_line, timed, where_time_went)

from facts.compose import Stack
from facts.mongo import mongo_tool
from inventories.sandbox import _components
from tests.e2e.test_engines import MONGO, QDRANT, in_backend
from tests.e2e.conftest import redis_cli

ROOT = "/var/backups/layra"
BLOB, DAMAGE = "layra-bench.blob", "layra-bench.damage"
MILVUS_SET = _components["milvus"]["services"]
CACHE_PATTERNS = _components["redis"]["flush_patterns"]


def grown(host, mysql_mb: int, volume_mb: int, documents: int, points: int) -> None:
    """Each component holds enough data for its restore to be more than start-up costs."""
    rows = mysql_mb * 1000
    progress(f"{host.name}: {rows:,} rows in layra.bench_rows, {documents:,} MongoDB documents, "
             f"{points:,} Qdrant points, {volume_mb} MB in the Milvus volume")
    body = "CONCAT_WS(' ', " + ", ".join(f"SHA2(CONCAT(seq, '-{i}'), 512)" for i in range(7)) + ")"
    sql(host, "DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows (id INT PRIMARY KEY, body TEXT)", "layra")
    for first in range(1, rows + 1, 100_000):
        sql(host, f"INSERT INTO bench_rows SELECT seq, {body} FROM seq_{first}_to_{min(rows, first + 99_999)}",
            "layra")
    in_backend(host, MONGO + f"db.bench.drop(); db.bench.insert_many([{{'_id': i, 'text': 'document %d' % i * 20}} "
                             f"for i in range({documents})])")
    in_backend(host, QDRANT + "import random; rnd = random.Random(7)\n"
                              f"for start in range(100000, 100000 + {points}, 500):\n"
                              "    q('PUT', '/collections/kb_vectors/points?wait=true', {'points': [\n"
                              "        {'id': i, 'vector': [rnd.random() for _ in range(8)], 'payload': {'n': i}}\n"
                              f"        for i in range(start, min(100000 + {points}, start + 500))]}})")
    blob = f"{volume_path(host)}/{BLOB}"
    host.ssh(f"{{ head -c {volume_mb // 2}M /dev/urandom; head -c {volume_mb // 2}M /dev/zero; }} > {blob}")


def volume_path(host, volume: str = "layra_milvus_data") -> str:
    return host.ssh(f"docker volume inspect -f '{{{{.Mountpoint}}}}' {shlex.quote(volume)}")


def restore_groups(output: str) -> dict[str, float]:
    """Each component's restore, in seconds, as the parallel restore logs it when done
    (``[sandbox-1] mysql/layra: done in 12.3s``): the components ran side by side."""
    return {name: float(seconds) for name, seconds in
            re.findall(r"^\s*\[[^\]]+\]\s+(\S[^\n]*?): done in ([0-9.]+)s$", output, re.M)}


def changed(host) -> None:
    """A change in every component, as a bad release would leave."""
    sql(host, "DELETE FROM bench_rows WHERE id <= 100", "layra")
    in_backend(host, MONGO + "db.bench.insert_one({'_id': -1, 'text': 'written by the bad release'})")
    in_backend(host, QDRANT + "q('PUT', '/collections/kb_vectors/points?wait=true', "
                              "{'points': [{'id': 9001, 'vector': [0.5] * 8, 'payload': {}}]})")
    host.ssh(f"date > {volume_path(host)}/{DAMAGE}")
    redis_cli(host, "-n", "2", "SET", "kb:cache:list", "stale")


def hand_steps(host, snapshot_id: str) -> dict[str, str]:
    """component -> the shell the runbook has an operator type, from the snapshot's files."""
    directory = f"{ROOT}/{snapshot_id}"
    parts = json.loads(host.ssh(f"cat {directory}/manifest.json"))["parts"]
    stack = Stack("/srv/layra")
    by_component = {part["component"]: part for part in parts.values()}
    mysql, mongo, milvus = by_component["mysql"], by_component["mongodb"], by_component["milvus"]
    qdrant = by_component["qdrant"]
    restore_mongo = mongo_tool(stack, "mongodb", "root", "MONGODB_ROOT_PASSWORD", "admin", "mongorestore",
                               "--archive", "--gzip", "--drop").get_raw_value()
    services = " ".join(MILVUS_SET)
    extracts = " && ".join(
        f"find {volume_path(host, name)} -mindepth 1 -delete && "
        f"zstd -q -dc {directory}/{volume['file']} | tar -xpf - -C {volume_path(host, name)}"
        for name, volume in milvus["volumes"].items())
    # each pattern in its logical database ({db, pattern}; a plain pattern is database 0's)
    flushes = " && ".join(
        "docker compose exec -T -e REDISCLI_AUTH redis sh -c " + shlex.quote(
            f"redis-cli -n {db} --scan --pattern {shlex.quote(pattern)} | xargs -r redis-cli -n {db} del >/dev/null")
        for db, pattern in ((entry.get("db", 0), entry["pattern"]) if isinstance(entry, dict) else (0, entry)
                            for entry in CACHE_PATTERNS))
    return {
        "mysql": f"zstd -q -dc {directory}/{mysql['file']} | {HAND_MYSQL} mariadb -uroot layra",
        "mongodb": f"{restore_mongo} < {directory}/{mongo['file']} >/dev/null 2>&1",
        "milvus (volumes)": f"docker compose stop {services} && {extracts} && docker compose up -d --wait {services}",
        "qdrant": ("set -a && . ./.env && set +a && curl -sf -X POST -H @<(printf 'api-key: %s' \"$QDRANT_API_KEY\") "
                   "'http://127.0.0.1:6333/collections/kb_vectors/snapshots/upload?priority=snapshot' "
                   f"-F snapshot=@{directory}/{qdrant['file']} >/dev/null"),
        "redis (caches)": 'REDISCLI_AUTH=$(sed -n "s/^REDIS_PASSWORD=//p" .env) && export REDISCLI_AUTH && ' + flushes,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring (and README, Performance) for what each side runs.")
    parser.add_argument("--mysql-mb", type=int, default=200, help="MySQL table added, in MB of dump (default 200)")
    parser.add_argument("--volume-mb", type=int, default=200, help="file added to the Milvus volume (default 200)")
    parser.add_argument("--documents", type=int, default=50_000, help="MongoDB documents added (default 50000)")
    parser.add_argument("--points", type=int, default=5_000, help="Qdrant points added (default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side; medians are reported (default 3)")
    parser.add_argument("--host", default="sandbox-1", help="sandbox host (default sandbox-1, all five engines)")
    options = parser.parse_args()

    box = sandbox()
    host = host_named(box, options.host)
    info = machine(box)
    deploy(box, "rollback.py", "--limit", host.name, data={"commit": "v1.0.0"})
    progress("a snapshot of the host as it is, to put it back afterwards")
    before = re.search(r"snapshot (\S+-stackbench-before)", deploy(
        box, "backup.py", "--limit", host.name, data={"label": "stackbench-before"}).output).group(1)
    grown(host, options.mysql_mb, options.volume_mb, options.documents, options.points)
    progress("one snapshot of everything: backup.py")
    run = deploy(box, "backup.py", "--limit", host.name, data={"label": "stackbench"})
    snapshot_id = re.search(r"snapshot (\S+-stackbench)", run.output).group(1)
    steps = hand_steps(host, snapshot_id)

    ours, records, groups, by_hand = [], [], [], {name: [] for name in steps}
    for number in range(1, options.runs + 1):
        changed(host)
        progress(f"run {number}/{options.runs}: rollback.py restoring every component")
        seconds, run = timed(lambda: deploy(box, "rollback.py", "--limit", host.name,
                                            data={"snapshot": snapshot_id, "safety_snapshot": "skip"}))
        ours.append(seconds)
        records.append(run.record())
        groups.append(restore_groups(run.output))
        changed(host)
        for name, command in steps.items():
            progress(f"run {number}/{options.runs}: by hand: {name}")
            seconds = seconds_on_host(host, f"cd /srv/layra && set -o pipefail && {command}")
            by_hand[name].append(seconds)
        print("   ours {:.1f}s (restore phase {:.1f}s); by hand {}".format(ours[-1], phase_seconds(records[-1])["restore"], ", ".join(
            f"{name} {values[-1]:.1f}s" for name, values in by_hand.items())), flush=True)

    progress("cleaning up: the host back to the snapshot taken before, both snapshots removed")
    deploy(box, "rollback.py", "--limit", host.name, data={"snapshot": before, "safety_snapshot": "skip"})
    # the restore moved the table the snapshot did not have aside, with the replaced data
    sql(host, "DROP TABLE IF EXISTS layra__pre_restore.bench_rows")
    host.ssh(f"rm -rf {ROOT}/{snapshot_id} {ROOT}/{before}")

    step_medians = {name: median(values) for name, values in by_hand.items()}
    total, slowest = sum(step_medians.values()), max(step_medians.values())
    slowest_name = max(step_medians, key=step_medians.get)
    went = where_time_went(ours, records)
    print(time_went_line(went), flush=True)
    restore_times = {name: round(median([found.get(name, 0.0) for found in groups]), 2)
                     for name in dict.fromkeys(name for found in groups for name in found)}
    print("   its restore phase, each component (median s, side by side): "
          + ", ".join(f"{name} {seconds:.1f}" for name, seconds in restore_times.items()), flush=True)
    m, phase = median(ours), went["restore"]
    rows = [row(f"   by hand: {name}", seconds, None, seconds, "-", None) for name, seconds in step_medians.items()]
    rows += [
        row("2. whole stack: rollback.py / sum of hand steps", m, total, ratio(m, total), "<= 0.6", ratio(m, total) <= 0.6),
        row(f"2. whole stack: rollback.py / slowest ({slowest_name})", m, slowest, ratio(m, slowest), "<= 1.2",
            ratio(m, slowest) <= 1.2),
        # the same, for the restore phase alone (no stop-writes, stack check or verify 1-4)
        row("   its restore phase (parallel) / sum of hand steps", phase, total, ratio(phase, total), "-", None),
        row("   its restore phase (parallel) / slowest hand step", phase, slowest, ratio(phase, slowest), "-", None),
    ]
    report("stack", f"Whole-stack rollback on {host.name} vs the runbook by hand, medians of {options.runs} runs",
           rows, {"runs": options.runs, "host": host.name, "sizes": vars(options), "ours_seconds": ours,
                  "restore_phase_seconds": [phase_seconds(record)["restore"] for record in records],
                  "where_time_went": went, "restore_by_component": restore_times,
                  "restore_by_component_runs": groups, "by_hand_seconds": by_hand}, info)


if __name__ == "__main__":
    main()
