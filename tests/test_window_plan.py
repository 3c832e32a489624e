"""The dry run's shape of a rollback (pyinfra_deploys/rollback.window_plan): what is staged
before the maintenance window, and what the window holds, in order; and the room staging
needs beside the live data (missing_room)."""

from __future__ import annotations

import json

from pyinfra_deploys.config import components_from
from pyinfra_deploys.plan import describe
from pyinfra_deploys.report import last_window
from pyinfra_deploys.rollback import last_took, missing_room, window_plan

COMPONENTS = {c.name: c for c in components_from({"layra_components": {
    "mysql": {"engine": "mysql", "databases": ["layra"]},
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd"]},
    "redis": {"engine": "redis", "rdb": True},
    "qdrant": {"engine": "qdrant"},
}})}
MANIFEST = {"files": {"mysql.layra.sql.zst": {"size": 3 * 2**20}, "milvus.layra_milvus_data.tar.zst": {"size": 2**20},
                      "milvus.layra_etcd_data.tar.zst": {"size": 2**20}, "redis.rdb.gz": {"size": 2048},
                      "qdrant.kb.snapshot": {"size": 4096}}}
PARTS = {
    "mysql.layra": {"database": "layra", "file": "mysql.layra.sql.zst"},
    "milvus": {"volumes": {"layra_milvus_data": {"file": "milvus.layra_milvus_data.tar.zst"},
                           "layra_etcd_data": {"file": "milvus.layra_etcd_data.tar.zst"}}},
    "redis": {"file": "redis.rdb.gz"},
    "qdrant.kb": {"file": "qdrant.kb.snapshot"},
}


def planned(*names: str, stack: bool = True) -> dict:
    changed = [(COMPONENTS[name.split(".")[0]], name, PARTS[name]) for name in names]
    return window_plan(changed, MANIFEST, stack, caches=True)


def test_what_grows_with_the_data_is_staged_before_the_window_and_only_swaps_are_inside():
    plan = planned("mysql.layra", "milvus")
    assert plan["staged"] == ["mysql.layra (3.0 MiB)", "milvus (2.0 MiB)"]
    assert plan["inside"] == ["maintenance on", "stack", "swap mysql.layra",
                              "swap milvus (stops and starts milvus-standalone, milvus-etcd: the window's floor)",
                              "caches", "phase 4", "maintenance off"]


def test_redis_is_staged_and_its_swap_says_it_waits_for_a_restart_that_grows_with_its_data():
    plan = planned("redis", stack=False)
    assert plan["staged"] == ["redis (2.0 KiB)"]
    assert plan["inside"][1] == ("swap redis (restarts redis, which saves its data on the way down and loads the "
                                 "snapshot's as it starts: both grow with its data, the window's floor)")


def test_an_engine_that_cannot_stage_says_its_restore_and_safety_copy_are_in_the_window():
    plan = planned("qdrant.kb", stack=False)
    assert plan["staged"] == []
    assert plan["inside"][1] == ("restore qdrant.kb in place (4.0 KiB, its safety copy dumped first: grows with its "
                                 "data)")


def test_the_dry_run_prints_the_shape_on_one_line():
    line, = describe(planned("mysql.layra"))
    assert line == ("window: staged before it: mysql.layra (3.0 MiB); inside it: maintenance on -> stack -> swap "
                    "mysql.layra -> caches -> phase 4 -> maintenance off; after it: the displaced copies kept as the "
                    "safety snapshot")


def test_staging_is_refused_naming_the_mib_missing_on_each_filesystem_short_of_room():
    mib = 2**20
    mounts = {"/var/lib/docker": {"bytes": 900 * mib, "free": 600 * mib, "parts": ["mysql.layra", "milvus"]},
              "/srv": {"bytes": 10 * mib, "free": 50 * mib, "parts": ["qdrant"]}}
    assert missing_room(mounts) == ("staging mysql.layra, milvus beside the live data needs about 900 MiB on "
                                    "/var/lib/docker, 600 MiB are free: 300 MiB missing; nothing was changed")


def test_staging_with_room_everywhere_is_not_refused():
    assert missing_room({"/": {"bytes": 1, "free": 2, "parts": ["milvus"]}}) is None


def record(run_id: str, status: str, phases: dict) -> str:
    spans = {name: {"started_at": start, "ended_at": end} for name, (start, end) in phases.items()}
    return json.dumps({"run_id": run_id, "kind": "rollback", "hosts": {"sandbox-1": {"status": status}},
                       "phases": spans})


def test_the_plan_names_what_the_hosts_last_succeeded_rollback_took(tmp_path):
    window = {"stage": ("2026-12-07T10:00:00Z", "2026-12-07T10:00:40Z"),
              "maintenance_on": ("2026-12-07T10:00:41Z", "2026-12-07T10:00:42Z"),
              "maintenance_off": ("2026-12-07T10:00:55Z", "2026-12-07T10:00:59Z")}
    for run_id, status in (("20261207T100000Z-rollback", "succeeded"), ("20261207T110000Z-rollback", "failed")):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "record.json").write_text(record(run_id, status, window))
    last = last_window(tmp_path, "sandbox-1")
    assert last == {"run_id": "20261207T100000Z-rollback", "staged_s": 40.0, "window_s": 18.0}
    assert last_window(tmp_path, "sandbox-2") is None
    plan = window_plan([(COMPONENTS["mysql"], "mysql.layra", PARTS["mysql.layra"])], MANIFEST, False, False, last)
    assert plan["summary"].endswith("; the last rollback here (20261207T100000Z-rollback) staged in 40.0s, "
                                    "its window lasted 18.0s")


def test_what_the_last_rollback_did_not_record_is_left_out():
    assert last_took({"run_id": "r", "staged_s": None, "window_s": 1.5}) == \
        "; the last rollback here (r) its window lasted 1.5s"
    assert last_took({"run_id": "r", "staged_s": None, "window_s": None}) == ""
    assert last_took(None) == ""
