"""The dry run's shape of a rollback (pyinfra_deploys/rollback.window_plan): what is staged
before the maintenance window, and what the window holds, in order."""

from __future__ import annotations

from pyinfra_deploys.config import components_from
from pyinfra_deploys.plan import describe
from pyinfra_deploys.rollback import window_plan

COMPONENTS = {c.name: c for c in components_from({"layra_components": {
    "mysql": {"engine": "mysql", "databases": ["layra"]},
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd"]},
    "redis": {"engine": "redis", "rdb": True},
}})}
MANIFEST = {"files": {"mysql.layra.sql.zst": {"size": 3 * 2**20}, "milvus.layra_milvus_data.tar.zst": {"size": 2**20},
                      "milvus.layra_etcd_data.tar.zst": {"size": 2**20}, "redis.rdb.gz": {"size": 2048}}}
PARTS = {
    "mysql.layra": {"database": "layra", "file": "mysql.layra.sql.zst"},
    "milvus": {"volumes": {"layra_milvus_data": {"file": "milvus.layra_milvus_data.tar.zst"},
                           "layra_etcd_data": {"file": "milvus.layra_etcd_data.tar.zst"}}},
    "redis": {"file": "redis.rdb.gz"},
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


def test_an_engine_that_cannot_stage_says_its_restore_and_safety_copy_are_in_the_window():
    plan = planned("redis", stack=False)
    assert plan["staged"] == []
    assert plan["inside"][1] == "restore redis in place (2.0 KiB, its safety copy dumped first: grows with its data)"


def test_the_dry_run_prints_the_shape_on_one_line():
    line, = describe(planned("mysql.layra"))
    assert line == ("window: staged before it: mysql.layra (3.0 MiB); inside it: maintenance on -> stack -> swap "
                    "mysql.layra -> caches -> phase 4 -> maintenance off; after it: the displaced copies kept as the "
                    "safety snapshot")
