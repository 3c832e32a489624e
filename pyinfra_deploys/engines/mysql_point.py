"""
MySQL's point-in-time rollback (``rollback.py --data snapshot=<id> --data until=<point>``):
the snapshot staged into the shadow database as for any rollback, then the binlog's row
events for the database replayed onto it from the snapshot's coordinates up to the point
(exclusive), then the swap. The writes before the point (the users' under the good
release) are kept; the migration's and everything after the point end in the displaced
copy, listed in the plan and exported as SQL into the safety snapshot.

The point: ``migration`` (the binlog position the last guarded release saved on the host
just before its stack came up), a UTC time ``YYYY-MM-DDTHH:MM:SSZ``, or a binlog
``<file>:<position>``. Refused, before anything changes, where the replay cannot be
trusted: no binlog, not ROW with FULL row images, the snapshot taken without coordinates,
binlog files purged since, the point before the snapshot or ahead of the server, a DDL
statement on the database in between.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from pyinfra import host

from facts import mysql as facts
from facts.text import counted

POSITION = re.compile(r"^(?P<file>[A-Za-z0-9._-]{1,200}):(?P<position>\d{1,18})\Z")
TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)Z\Z")
UNTIL_FORMS = "until=migration, until=<YYYY-MM-DDTHH:MM:SSZ> (UTC) or until=<binlog file>:<position>"
KEYS_SHOWN = 100


def parse_until(value) -> dict:
    """``{"kind": "migration"}``, ``{"kind": "time", "time": "YYYY-MM-DD HH:MM:SS"}`` or
    ``{"kind": "position", "file", "position"}``; ValueError naming the forms otherwise."""
    text = str(value).strip()
    if text == "migration":
        return {"kind": "migration", "text": text}
    if TIME.match(text):
        try:
            when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise ValueError(f"until={text!r} is not a real UTC time: give {UNTIL_FORMS}") from None
        return {"kind": "time", "text": text, "time": when.strftime("%Y-%m-%d %H:%M:%S"), "at": when}
    match = POSITION.match(text)
    if match:
        return {"kind": "position", "text": text, "file": match["file"], "position": int(match["position"])}
    raise ValueError(f"until={text!r} is not a point: give {UNTIL_FORMS}")


def release_point_path(stack, component) -> str:
    """Where the last guarded release saved the binlog point of ``component``'s server
    (``until=migration`` replays up to it): beside the rollback lock."""
    return f"{stack.dir}/.git/layra-release-point.{component.name}.json"


def window_point_path(stack, component) -> str:
    """Where a point-in-time rollback saves the binlog position as its window begins."""
    return f"{stack.dir}/.git/layra-window-point.{component.name}.json"


def target_path(stack, component, database: str) -> str:
    """Where a point-in-time rollback saves the fingerprint it replayed to."""
    return f"{stack.dir}/.git/layra-point-in-time.{component.name}.{database}"


def ordered(files: list[str], file: str, position: int) -> tuple[int, int]:
    return files.index(file), position


def plan(stack, component, descriptor: dict, until: dict, snapshot_dir: str, created: str | None) -> dict:
    """The replay of one MySQL part up to ``until``: ``{"replay", "after", "replayed",
    "displaced", "point", "label"}``, or ``{"error"}`` (with the snapshot-only rollback offered)."""
    database = descriptor["database"]
    login = dict(stack=stack, **component.client)

    def refused(why: str) -> dict:
        return {"error": f"mysql/{database}: until={until['text']} refused: {why}; nothing was changed "
                         f"(a rollback to the snapshot alone, without until=, is possible)"}

    if not descriptor.get("binlog_coordinates"):
        return refused("the snapshot has no binlog coordinates (the server kept no binlog when it was taken)")
    start = host.get_fact(facts.BinlogPoint, path=f"{snapshot_dir}/{descriptor['binlog_coordinates']}")
    if not start:
        return refused(f"the snapshot's {descriptor['binlog_coordinates']} is missing")
    flavor = host.get_fact(facts.MysqlVersions, **login)["flavor"]
    binlog = host.get_fact(facts.MysqlBinlog, flavor=flavor, **login)
    why = facts.replay_refusal(binlog)
    if why:
        return refused(why)
    files = binlog["files"]
    if start["file"] not in files:
        return refused(f"binlog file {start['file']} (the snapshot's coordinates) was purged: the server has "
                       f"{', '.join(files[:3]) or 'none'}{'...' if len(files) > 3 else ''}")
    now = ordered(files, binlog["file"], binlog["position"])
    stop = replay = after = None
    if until["kind"] == "time":
        if until["at"] > datetime.now(timezone.utc):
            return refused("the point is in the future")
        if created and until["text"] < created[:19] + "Z":
            return refused(f"the point is before the snapshot ({created})")
        span = files[files.index(start["file"]):]
        replay = {"files": span, "start": start["position"], "stop_time": until["time"]}
        after = {"files": span, "start_time": until["time"]}
        point = f"{until['text']}"
    else:
        stop = until if until["kind"] == "position" else host.get_fact(facts.BinlogPoint,
                                                                        path=release_point_path(stack, component))
        if stop is None:
            return refused("no guarded release saved a binlog point on this host (migrate.py saves one)")
        if stop["file"] not in files:
            return refused(f"binlog file {stop['file']} is not on the server (purged, or not this server's)")
        if ordered(files, stop["file"], stop["position"]) < ordered(files, start["file"], start["position"]):
            return refused(f"the point {stop['file']}:{stop['position']} is before the snapshot's "
                           f"{start['file']}:{start['position']}")
        if ordered(files, stop["file"], stop["position"]) > now:
            return refused(f"the point {stop['file']}:{stop['position']} is ahead of the server "
                           f"({binlog['file']}:{binlog['position']})")
        replay = {"files": files[files.index(start["file"]):files.index(stop["file"]) + 1],
                  "start": start["position"], "stop": stop["position"]}
        after = {"files": files[files.index(stop["file"]):], "start": stop["position"]}
        point = f"{stop['file']}:{stop['position']}" + (f" (the release's, {stop.get('at')})"
                                                        if until["kind"] == "migration" else "")
    keys = host.get_fact(facts.MysqlPrimaryKeys, stack=stack, database=database, **component.client)
    replayed = host.get_fact(facts.MysqlBinlogChanges, stack=stack, database=database, keys=keys, limit=0,
                             **replay, **component.client)
    if replayed["ddl"]:
        return refused(f"a DDL statement on {database} between the snapshot and the point ({replayed['ddl'][0]!r}): "
                       "row events cannot be replayed across it")
    displaced = host.get_fact(facts.MysqlBinlogChanges, stack=stack, database=database, keys=keys,
                              limit=KEYS_SHOWN, **after, **component.client)
    return {"replay": {**replay, "flavor": flavor}, "after": after, "replayed": replayed, "displaced": displaced,
            "point": f"{start['file']}:{start['position']} -> {point}",
            "label": f"{descriptor.get('snapshot_id', '')} until {point}".strip()}


def at_target(stack, component, descriptor: dict, label: str, live) -> bool:
    """Whether an earlier point-in-time rollback replayed the same snapshot to the same
    point and the live database is what it replayed (a rerun changes nothing then).
    ``live()`` reads the live fingerprint (a full read: only where such a target was saved)."""
    saved = host.get_fact(facts.ReplayTarget, path=target_path(stack, component, descriptor["database"]))
    return bool(saved) and saved["label"] == label and facts.same_data(live(), saved["fingerprint"])


def describe(replay: dict) -> list[str]:
    """The plan's lines: what is replayed, and what the point leaves in the displaced copy."""
    replayed, displaced = replay["replayed"], replay["displaced"]
    lines = [f"  replay the binlog {replay['point']}: {counted(replayed['transactions'], 'transaction')}"
             + "".join(f"; {table} +{ins} inserted, {upd} updated, {dele} deleted"
                       for table, (ins, upd, dele) in sorted(replayed["tables"].items()))]
    if not displaced["tables"]:
        return lines + ["  after the point: no writes (nothing moved aside beyond the rollback's own)"]
    lines.append(f"  after the point, not replayed (kept in the displaced copy and exported as SQL into the "
                 f"safety snapshot): {counted(displaced['transactions'], 'transaction')}")
    for table, (ins, upd, dele) in sorted(displaced["tables"].items()):
        keys = displaced["keys"].get(table, [])
        total = ins + upd + dele
        shown = ", ".join(f"{op} {key or '?'}" for op, key in keys)
        more = f" and {total - len(keys)} more" if total > len(keys) else ""
        lines.append(f"    {table}: {ins} inserted, {upd} updated, {dele} deleted: {shown}{more}")
    return lines
