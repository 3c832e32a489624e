"""
A Redis cache flush at scale: the Redis engine's flush (``operations.redis.caches_flushed``,
what a rollback's caches phase runs) removing --keys matching keys from one logical
database, against the same flush typed by hand, and a check, from the server's own
command counters, that it stays ``SCAN`` + ``UNLINK`` in batches: no ``KEYS`` (which
blocks the server) and no round trip per key.

    .venv/bin/python bench/redis_flush.py [--keys 200000] [--keep-keys 50000] [--runs 3] [--batch 500]

On sandbox-2's Redis (database 5 only: the stack's own data lives in 0 to 2), it loads
--keys keys ``bench:session:<n>`` and --keep-keys keys ``bench:keep:<n>`` that must
survive (``redis-cli --pipe``), then, run by run, alternating which side goes first,
loads the session keys again and flushes ``bench:session:*`` with:

- ours: ``pyinfra inventories/sandbox.py bench/redis_flush_deploy.py --limit sandbox-2``
  with the component ``{service: redis, password_key: REDIS_PASSWORD, flush_patterns:
  [{db: 5, pattern: "bench:session:*"}]}``, timed around the whole ``python -m pyinfra``
  process (start-up and connection included); the operation alone is timed too, by the
  deploy, in pyinfra's execution stage (run with -y, pyinfra calls the operation there:
  the key count it reads first, ``facts.redis.RedisKeyCounts``, a SCAN pass of its own,
  is inside); that count's command is also clocked alone on the host, before the run;
- by hand, inside the container: ``redis-cli -n 5 --scan --pattern 'bench:session:*' |
  xargs -n 500 redis-cli -n 5 unlink``, timed around the ssh command from here (as ours)
  and clocked on the host;
- once, context: the naive loop, one ``redis-cli del`` per key (``xargs -n 1``), on a
  sample of --naive-sample keys, its time extrapolated to --keys (labelled so).

Before each flush ``CONFIG RESETSTAT``, after it ``INFO commandstats``: the script fails
unless ours made 0 ``KEYS`` calls and ceil(keys / batch) ``UNLINK`` calls (a few more only
if SCAN returned a key twice), no session key is left and every keep key is still there.
Every ``bench:*`` key of database 5 is removed at the end, also when a run fails. The
server's command counters are reset by the script (``CONFIG RESETSTAT``).
Writes bench/results/redis_flush.json.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex

from harness import deploy, host_named, machine, median, progress, ratio, report, row, sandbox, seconds_on_host, timed

from facts.compose import Stack
from facts.redis import RedisKeyCounts
from tests.e2e.conftest import redis_cli

DB = 5
SESSION, KEEP, NAIVE = "bench:session:", "bench:keep:", "bench:naive:"
PATTERN = SESSION + "*"
COMPONENT = {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD",
             "flush_patterns": [{"db": DB, "pattern": PATTERN}], "rdb": False}
DEPLOY = "bench/redis_flush_deploy.py"
# A session's worth of value (what a cache holds is not what a flush costs: key count is)
VALUE = "s" * 64
# The password stays on the host: read from the env file into the client's environment
AUTH = 'REDISCLI_AUTH=$(sed -n "s/^REDIS_PASSWORD=//p" .env) && export REDISCLI_AUTH && '
IN_REDIS = "docker compose exec -T -e REDISCLI_AUTH redis "


def in_container(shell: str) -> str:
    """Host shell (run in the stack's directory) running ``shell`` inside the Redis container."""
    return AUTH + IN_REDIS + "sh -c " + shlex.quote(shell)


def redis(host, *args: str) -> str:
    return redis_cli(host, "-n", str(DB), *args)


def loaded(host, prefix: str, count: int) -> None:
    """``count`` keys ``<prefix><n>`` in database 5, in one ``redis-cli --pipe`` (the RESP
    protocol is written on the host by awk)."""
    program = ('BEGIN { printf "*2\\r\\n$6\\r\\nSELECT\\r\\n$%d\\r\\n%s\\r\\n", length(db), db; '
               'for (i = 0; i < n; i++) { k = p i; '
               'printf "*3\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\n%s\\r\\n$%d\\r\\n%s\\r\\n", length(k), k, length(v), v } }')
    out = host.stack(f"{AUTH}awk -v db={DB} -v n={count} -v p={shlex.quote(prefix)} -v v={VALUE} "
                     f"{shlex.quote(program)} | {IN_REDIS}redis-cli -n {DB} --pipe")
    found = re.search(r"errors: (\d+), replies: (\d+)", out)
    if not found or int(found.group(1)) or int(found.group(2)) != count + 1:
        raise SystemExit(f"loading {count:,} keys {prefix}<n> failed:\n{out}")


def counted(host, prefix: str) -> int:
    """Keys of database 5 whose name starts with ``prefix`` (SCAN, after the measures)."""
    return int(host.stack(in_container(f"redis-cli -n {DB} --scan --pattern {shlex.quote(prefix + '*')} | wc -l")))


def removed(host, prefix: str = "bench:") -> None:
    host.stack(in_container(f"redis-cli -n {DB} --scan --pattern {shlex.quote(prefix + '*')} "
                            f"| xargs -r -n 500 redis-cli -n {DB} unlink >/dev/null"))


def reset_stats(host) -> None:
    if redis(host, "CONFIG", "RESETSTAT").strip() != "OK":
        raise SystemExit(f"{host.name}: CONFIG RESETSTAT refused")


def command_calls(host) -> dict[str, int]:
    """``INFO commandstats``: calls per command since the last ``CONFIG RESETSTAT``
    (``config`` and ``info`` count the reset and this read)."""
    calls = {}
    for line in redis(host, "INFO", "commandstats").splitlines():
        found = re.match(r"cmdstat_([^:]+):calls=(\d+)", line.strip())
        if found:
            calls[found.group(1)] = int(found.group(2))
    return calls


def checked(host, side: str, keys: int, keep_keys: int) -> dict:
    """After a flush: no session key left, every keep key still there."""
    left, kept = counted(host, SESSION), counted(host, KEEP)
    if left or kept != keep_keys:
        raise SystemExit(f"{side}: {left:,} of {keys:,} session keys left, {kept:,} of {keep_keys:,} keep keys there")
    return {"session_keys_left": left, "keep_keys_left": kept}


def count_seconds(host) -> float:
    """The key count ``caches_flushed`` reads before it flushes (its fact's own command),
    clocked on the host."""
    command = RedisKeyCounts().command(Stack("/srv/layra"), [PATTERN], service=COMPONENT["service"],
                                       password_key=COMPONENT["password_key"], db=DB)
    return seconds_on_host(host, f"bash -c {shlex.quote(command.get_raw_value())}")


def ours(box, host, keys: int, batch: int, keep_keys: int) -> dict:
    counting = count_seconds(host)
    reset_stats(host)
    seconds, run = timed(lambda: deploy(box, DEPLOY, "--limit", host.name,
                                        data={"layra_components": {"redis": COMPONENT}, "bench_batch": batch}))
    calls = command_calls(host)
    operation = re.search(r"bench: flush operations took ([0-9.]+) s", run.output)
    matched = re.search(r"([0-9,]+) keys? match " + re.escape(PATTERN), run.output)
    if not operation or not matched or int(matched.group(1).replace(",", "")) != keys:
        raise SystemExit(f"ours: the flush did not run on {keys:,} keys:\n{run.output[-3000:]}")
    expected = math.ceil(keys / batch)
    unlinks, keys_calls = calls.get("unlink", 0), calls.get("keys", 0)
    # SCAN may return a key twice (a rehash during the scan): a batch more, never one per key
    if keys_calls or not expected <= unlinks <= expected + max(1, expected // 100):
        raise SystemExit(f"ours: KEYS called {keys_calls} times, UNLINK {unlinks} times (expected {expected}): "
                         f"every command counted: {calls}")
    return {"seconds": seconds, "operation_seconds": float(operation.group(1)), "count_seconds": counting,
            "calls": calls,
            **checked(host, "ours", keys, keep_keys)}


def by_hand(host, keys: int, batch: int, keep_keys: int) -> dict:
    command = in_container(f"redis-cli -n {DB} --scan --pattern {shlex.quote(PATTERN)} "
                           f"| xargs -n {batch} redis-cli -n {DB} unlink >/dev/null")
    reset_stats(host)
    seconds, on_host = timed(lambda: seconds_on_host(host, f"cd /srv/layra && {command}"))
    return {"seconds": seconds, "seconds_on_host": on_host, "calls": command_calls(host),
            **checked(host, "by hand", keys, keep_keys)}


def naive(host, sample: int) -> dict:
    """One ``redis-cli del`` per key (a process, a connection and a round trip each)."""
    loaded(host, NAIVE, sample)
    reset_stats(host)
    command = in_container(f"redis-cli -n {DB} --scan --pattern {shlex.quote(NAIVE + '*')} "
                           f"| xargs -n 1 redis-cli -n {DB} del >/dev/null")
    seconds = seconds_on_host(host, f"cd /srv/layra && {command}")
    calls = command_calls(host)
    left = counted(host, NAIVE)
    if left or calls.get("del", 0) != sample:
        raise SystemExit(f"naive loop: {left} keys left, {calls.get('del', 0)} DEL calls for {sample} keys")
    return {"sample": sample, "seconds_on_host": seconds, "calls": calls}


def others(calls: dict[str, int]) -> dict[str, int]:
    """Commands neither side's flush sends (the reset and read of the counters, health checks...)."""
    return {name: count for name, count in calls.items() if name not in ("scan", "unlink", "keys", "del")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring (and README, Performance) for what each side runs.")
    parser.add_argument("--keys", type=int, default=200_000, help="matching keys flushed per run (default 200000)")
    parser.add_argument("--keep-keys", type=int, default=50_000,
                        help="keys beside them that must survive (default 50000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side; medians are reported (default 3)")
    parser.add_argument("--batch", type=int, default=500, help="keys per UNLINK, both sides (default 500, ours' default)")
    parser.add_argument("--naive-sample", type=int, default=2_000,
                        help="keys deleted one redis-cli call each, extrapolated (default 2000; 0: skip)")
    parser.add_argument("--host", default="sandbox-2", help="sandbox host (default sandbox-2)")
    options = parser.parse_args()

    box = sandbox()
    host = host_named(box, options.host)
    info = machine(box)
    redis_version = re.search(r"redis_version:(\S+)", redis(host, "INFO", "server")).group(1)
    memory = dict(zip(*[iter(redis(host, "CONFIG", "GET", "maxmemory*").split())] * 2))
    runs: list[dict] = []
    naive_result = None
    try:
        removed(host)   # what a failed earlier run may have left
        progress(f"{host.name}: redis {redis_version}, database {DB}: {options.keep_keys:,} keys {KEEP}<n> to keep")
        loaded(host, KEEP, options.keep_keys)
        for number in range(1, options.runs + 1):
            results = {}
            # alternating which side goes first: a slow minute of the machine weighs on both
            for side in (("ours", "by hand") if number % 2 else ("by hand", "ours")):
                loaded(host, SESSION, options.keys)
                progress(f"run {number}/{options.runs}: {side}: flushing {options.keys:,} keys {PATTERN}")
                results[side] = (ours(box, host, options.keys, options.batch, options.keep_keys) if side == "ours"
                                 else by_hand(host, options.keys, options.batch, options.keep_keys))
            mine, hand = results["ours"], results["by hand"]
            print(f"   ours {mine['seconds']:.2f}s (the operation {mine['operation_seconds']:.2f}s, its key count "
                  f"alone {mine['count_seconds']:.2f}s; "
                  f"SCAN {mine['calls'].get('scan', 0):,}, UNLINK {mine['calls'].get('unlink', 0)}, "
                  f"KEYS {mine['calls'].get('keys', 0)}); by hand {hand['seconds']:.2f}s "
                  f"(on the host {hand['seconds_on_host']:.2f}s; SCAN {hand['calls'].get('scan', 0):,}, "
                  f"UNLINK {hand['calls'].get('unlink', 0)})", flush=True)
            runs.append(results)
        if options.naive_sample:
            progress(f"context: the naive loop, one redis-cli del per key, on {options.naive_sample:,} keys")
            naive_result = naive(host, options.naive_sample)
    finally:
        progress(f"cleaning up: every bench:* key of database {DB}")
        removed(host)
        left = counted(host, "bench:")
        if left:
            raise SystemExit(f"{left} bench:* keys are still in database {DB} of {host.name}")

    keys, expected = options.keys, math.ceil(options.keys / options.batch)
    m = {name: median([run["ours"][name] for run in runs])
         for name in ("seconds", "operation_seconds", "count_seconds")}
    h = {name: median([run["by hand"][name] for run in runs]) for name in ("seconds", "seconds_on_host")}
    calls = {side: {name: median([run[side]["calls"].get(name, 0) for run in runs])
                    for name in ("scan", "unlink", "keys", "del")} for side in ("ours", "by hand")}
    print(f"   keys removed per run: {keys:,} ({options.keep_keys:,} kept); ours {keys / m['seconds']:,.0f} keys/s "
          f"end to end, {keys / m['operation_seconds']:,.0f} keys/s in the operation; by hand "
          f"{keys / h['seconds_on_host']:,.0f} keys/s", flush=True)
    rows = [
        row(f"Redis flush {keys:,} keys: pyinfra run / by hand (ssh)", m["seconds"], h["seconds"],
            ratio(m["seconds"], h["seconds"]), "-", None),
        row("   the operation alone (count + flush) / by hand, on host", m["operation_seconds"],
            h["seconds_on_host"], ratio(m["operation_seconds"], h["seconds_on_host"]), "-", None),
        row("   its key count alone (a SCAN pass) / by hand, on host", m["count_seconds"], h["seconds_on_host"],
            ratio(m["count_seconds"], h["seconds_on_host"]), "-", None),
        row(f"Redis flush {keys:,} keys: UNLINK calls (batches of {options.batch})", calls["ours"]["unlink"], None,
            calls["ours"]["unlink"], f"= {expected}", calls["ours"]["unlink"] == expected, unit=""),
        row(f"Redis flush {keys:,} keys: KEYS calls", calls["ours"]["keys"], None, calls["ours"]["keys"], "0",
            calls["ours"]["keys"] == 0, unit=""),
        row("   SCAN calls: ours / by hand", calls["ours"]["scan"], calls["by hand"]["scan"],
            ratio(calls["ours"]["scan"], calls["by hand"]["scan"]), "-", None, unit=""),
    ]
    details = {"runs": options.runs, "host": host.name, "db": DB, "sizes": vars(options), "redis": redis_version,
               "maxmemory": memory, "unlink_expected": expected, "median_calls": calls,
               "keys_per_second": {"ours": round(keys / m["seconds"]), "ours_operation": round(
                   keys / m["operation_seconds"]), "by_hand_on_host": round(keys / h["seconds_on_host"])},
               "per_run": [{side: {**result, "calls": {"scan": result["calls"].get("scan", 0),
                                                       "unlink": result["calls"].get("unlink", 0),
                                                       "keys": result["calls"].get("keys", 0),
                                                       "del": result["calls"].get("del", 0),
                                                       "other": others(result["calls"])}}
                            for side, result in run.items()} for run in runs]}
    if naive_result:
        extrapolated = naive_result["seconds_on_host"] * keys / naive_result["sample"]
        rows.append(row(f"   naive DEL per key ({naive_result['sample']:,} x{keys / naive_result['sample']:g}, "
                        "extrapolated) / by hand", extrapolated, h["seconds_on_host"],
                        ratio(extrapolated, h["seconds_on_host"]), "-", None))
        details["naive"] = {**naive_result, "extrapolated_seconds": round(extrapolated, 2),
                            "calls": {"del": naive_result["calls"].get("del", 0),
                                      "scan": naive_result["calls"].get("scan", 0),
                                      "other": others(naive_result["calls"])}}
    report("redis_flush", f"Redis cache flush of {keys:,} keys on {host.name} (database {DB}) vs by hand, "
                          f"medians of {options.runs} runs", rows, details, info)


if __name__ == "__main__":
    main()
