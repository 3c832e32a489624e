"""The volume-set engine's plan: which facts it reads, for a set at the snapshot and one that differs."""

from pyinfra.context import ctx_host

from facts.compose import Stack
from facts.volumes import MilvusCollections, VolumeSet
from pyinfra_deploys.engines import ENGINES

AT_SNAPSHOT = {"bytes": 4096, "files": 3, "sha256": "a" * 64}
CHANGED = {"bytes": 8192, "files": 4, "sha256": "b" * 64}
COMPONENT = {"name": "milvus", "engine": "volumes", "services": ["milvus-standalone"],
             "milvus": {"client_service": "backend"}}
DESCRIPTOR = {"services": ["milvus-standalone"], "milvus_collections": {"kb_chunks": 200},
              "volumes": {"layra_milvus_data": {"file": "milvus.layra_milvus_data.tar.zst",
                                                "fingerprint": AT_SNAPSHOT}}}
SHA256S = {"milvus.layra_milvus_data.tar.zst": "c" * 64}


class FakeHost:
    """Answers the two facts the plan may read, and keeps which it was asked for."""

    name = "sandbox-1"

    def __init__(self, live_fingerprint: dict):
        self.live, self.asked = live_fingerprint, []

    def get_fact(self, fact, **kwargs):
        self.asked.append(fact)
        if fact is VolumeSet:
            return {"volumes": {"layra_milvus_data": {"fingerprint": self.live, "services": ["milvus-standalone"]}}}
        if fact is MilvusCollections:
            return {"ok": True, "collections": {"kb_chunks": 197}}
        raise AssertionError(f"unexpected fact {fact.__name__}")


def planned(live: dict) -> tuple[dict, list]:
    fake = FakeHost(live)
    with ctx_host.use(fake):
        plan = ENGINES["volumes"].plan(Stack("/srv/layra"), COMPONENT, DESCRIPTOR, SHA256S)
    return plan, fake.asked


def test_a_volume_set_at_the_snapshot_is_planned_without_asking_milvus_for_row_counts():
    plan, asked = planned(AT_SNAPSHOT)
    assert asked == [VolumeSet]
    assert plan["changes"] is False
    assert "milvus_collections" not in plan


def test_a_volume_set_that_differs_shows_milvus_row_counts_current_and_snapshot():
    plan, asked = planned(CHANGED)
    assert asked == [VolumeSet, MilvusCollections]
    assert plan["changes"] is True
    assert plan["milvus_collections"] == {"kb_chunks": [197, 200]}
