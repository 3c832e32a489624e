"""The rollback's safety snapshot made of what it displaced (pyinfra_deploys/safety.py):
what the report says the displaced copies hold that the restored data does not."""

from __future__ import annotations

from pyinfra_deploys import report
from pyinfra_deploys.safety import items_differing


def test_the_tables_whose_rows_differ_are_counted_displaced_against_restored():
    displaced = {"tables": {"knowledge_bases": {"rows": 12, "checksum": 1}, "users": {"rows": 4, "checksum": 2},
                            "kb_shares": {"rows": 3, "checksum": 3}}}
    restored = {"tables": {"knowledge_bases": {"rows": 10, "checksum": 4}, "users": {"rows": 4, "checksum": 2}}}
    assert items_differing(displaced, restored) == {"kb_shares": [3, 0], "knowledge_bases": [12, 10]}


def test_collections_are_counted_by_their_documents():
    assert items_differing({"collections": {"conversations": {"count": 130}}},
                           {"collections": {"conversations": {"count": 120}}}) == {"conversations": [130, 120]}


def test_the_report_lists_what_each_host_kept_aside_with_the_difference():
    record = {"run_id": "20261207T101009Z-rollback", "kind": "rollback", "status": "succeeded",
              "hosts": {"sandbox-1": {"status": "succeeded", "safety_snapshot": "20261207T101009Z-safety-before-rollback",
                                      "displaced": {"mysql.layra": {"knowledge_bases": [12, 10]}}}}}
    text = report.render_markdown(record)
    assert "`mysql.layra` `knowledge_bases`: 12 in the displaced copy, 10 restored (+2)" in text


def test_redis_databases_are_counted_by_their_keys():
    assert items_differing({"databases": {"0": {"dbsize": 13}, "1": {"dbsize": 0}}},
                           {"databases": {"0": {"dbsize": 12}, "1": {"dbsize": 1}}}) == {"db0": [13, 12], "db1": [0, 1]}


# Two hosts whose plans differ: pyinfra orders operations by their call site (the line
# numbers of the stack), so one call site shared by the parts of several components must
# not put them in one order on one host and in another on the other.
COMPONENTS = {
    "mysql": {"engine": "mysql", "databases": ["layra"]},
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd"]},
    "qdrant": {"engine": "volumes", "services": ["qdrant"]},
    "redis": {"engine": "redis", "rdb": True},
}
PARTS = {"milvus": {"volumes": {}}, "mysql.layra": {"database": "layra"}, "qdrant": {"volumes": {}},
         "redis": {"file": "redis.rdb.gz"}}


def op_order_of(monkeypatch, plans: dict[str, dict]) -> list:
    """The operation order pyinfra builds for hosts whose safety snapshots keep the parts
    ``plans`` names (``{host: {"changed": [...], "earlier": [...]}}``), as the pyinfra CLI
    orders them (from their call sites); no host is reached."""
    import pyinfra
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_host, ctx_state

    from pyinfra_deploys.config import components_from, stack_from
    from pyinfra_deploys.safety import SafetySnapshot

    monkeypatch.setattr(pyinfra, "is_cli", True)
    data = {"layra_stack_dir": "/srv/layra", "layra_components": COMPONENTS}
    inventory = Inventory(([(name, data) for name in plans], {}))
    state = State(inventory, Config(), check_for_changes=False)
    state.set_stage(StateStage.Prepare)
    components = {c.name: c for c in components_from(data)}
    with ctx_state.use(state):
        for host in inventory:
            state.activate_host(host)
            with ctx_host.use(host):
                part = lambda name: (components[name.split(".")[0]], name, PARTS[name])  # noqa: E731
                safety = SafetySnapshot.__new__(SafetySnapshot)
                safety.stack, safety.root, safety.id = stack_from(host.data), "/var/backups/layra", "X-safety"
                safety.directory, safety.steps, safety.done, safety.metadata = "/var/backups/layra/X.partial", [], False, {}
                safety.earlier = [part(name) for name in plans[host.name].get("earlier", [])]
                safety.completed([part(name) for name in plans[host.name]["changed"]])
        return state.get_op_order()


def test_hosts_that_keep_different_parts_get_one_operation_order(monkeypatch):
    assert op_order_of(monkeypatch, {"sandbox-1": {"changed": ["milvus", "mysql.layra"]},
                        "sandbox-2": {"changed": ["mysql.layra", "qdrant", "redis"]}})


def test_a_host_that_keeps_an_earlier_runs_copy_first_gets_one_operation_order_with_the_others(monkeypatch):
    assert op_order_of(monkeypatch, {"sandbox-1": {"changed": ["milvus", "mysql.layra"]},
                        "sandbox-2": {"changed": ["milvus", "qdrant"], "earlier": ["mysql.layra"]}})
