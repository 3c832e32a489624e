"""The volume-set engine's plan: which facts it reads, for a set at the snapshot and one that differs."""

from pyinfra.context import ctx_host

from facts.compose import Stack
from facts.volumes import MilvusCollections, VolumeSet
from pyinfra_deploys.engines import ENGINES
from pyinfra_deploys.engines.volumes import VolumesComponent

AT_SNAPSHOT = {"bytes": 4096, "files": 3, "sha256": "a" * 64}
CHANGED = {"bytes": 8192, "files": 4, "sha256": "b" * 64}
COMPONENT = VolumesComponent.from_data("milvus", {"services": ["milvus-standalone"],
                                                 "milvus": {"client_service": "backend"}})
DESCRIPTOR = {"services": ["milvus-standalone"], "milvus_collections": {"kb_chunks": 200},
              "volumes": {"layra_milvus_data": {"file": "milvus.layra_milvus_data.tar.zst",
                                                "fingerprint": AT_SNAPSHOT}}}
SHA256S = {"milvus.layra_milvus_data.tar.zst": "c" * 64}


class FakeHost:
    """Answers the two facts the plan may read, and keeps which it was asked for."""

    name = "sandbox-1"

    def __init__(self, live_fingerprint: dict, marker: dict | None = None, milvus: dict | None = None):
        self.live, self.marker, self.asked = live_fingerprint, marker, []
        self.milvus = milvus or {"ok": True, "collections": {"kb_chunks": 197}}

    def get_fact(self, fact, **kwargs):
        self.asked.append(fact)
        if fact is VolumeSet:
            return {"volumes": {"layra_milvus_data": {"fingerprint": self.live, "services": ["milvus-standalone"],
                                                      **({"restored": self.marker} if self.marker else {})}}}
        if fact is MilvusCollections:
            return self.milvus
        raise AssertionError(f"unexpected fact {fact.__name__}")


def planned(live: dict, marker: dict | None = None) -> tuple[dict, list]:
    fake = FakeHost(live, marker)
    with ctx_host.use(fake):
        plan = ENGINES["volumes"].plan(Stack("/srv/layra"), COMPONENT, "milvus", DESCRIPTOR, SHA256S)
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


def test_a_set_archived_at_the_snapshots_data_and_only_started_since_is_planned_unchanged():
    # a safety snapshot stopped the set while it matched, archived it and started it: etcd
    # wrote as it started; the marker says the data is still the archived one
    marker = {"archive_sha256": "d" * 64, "archived": AT_SNAPSHOT, "settled": CHANGED}
    plan, _ = planned(CHANGED, marker)
    assert plan["changes"] is False


def test_a_set_changed_after_it_settled_is_restored_whatever_its_marker_says():
    marker = {"archive_sha256": "c" * 64, "archived": AT_SNAPSHOT, "settled": CHANGED}
    plan, _ = planned({**CHANGED, "files": 5}, marker)
    assert plan["changes"] is True


RESTORED = {"archive_sha256": "c" * 64, "archived": AT_SNAPSHOT, "settled": CHANGED}


def phase_4(milvus: dict, marker: dict | None = RESTORED):
    fake = FakeHost(CHANGED, marker, milvus)
    probe = ENGINES["volumes"].integrity(Stack("/srv/layra"), COMPONENT, DESCRIPTOR, SHA256S)
    with ctx_host.use(fake):
        return probe.read({})


def test_phase_4_says_a_set_matched_through_its_marker_and_milvus_serves_the_snapshots_rows():
    check = phase_4({"ok": True, "collections": {"kb_chunks": 200}})
    assert check.ok
    assert check.observed == ("1 volume at the snapshot; layra_milvus_data restored from the snapshot's archive, "
                              "unchanged since it settled: 4 files; milvus kb_chunks 200 rows")
    assert check.expected == ("the snapshot's: 1 volume, 3 files, or its archive as restored; "
                              "milvus kb_chunks 200 rows")


def test_phase_4_fails_when_milvus_serves_other_rows_though_the_files_are_the_snapshots():
    check = phase_4({"ok": True, "collections": {"kb_chunks": 197}})
    assert not check.ok
    assert check.observed.endswith("; milvus kb_chunks 197 rows")


def test_phase_4_fails_naming_milvus_answer_when_it_cannot_be_asked():
    check = phase_4({"ok": False, "error": "MilvusException: collection not loaded"})
    assert not check.ok
    assert check.observed.endswith("; milvus rows not read: MilvusException: collection not loaded")


def test_a_backup_keeps_which_collections_were_counted_from_statistics_and_why_milvus_did_not_answer():
    engine = ENGINES["volumes"]
    with ctx_host.use(FakeHost(AT_SNAPSHOT, None, {"ok": True, "collections": {"a": 1}, "not_loaded": ["a"]})):
        assert engine.row_counts(Stack("/srv/layra"), COMPONENT) == {"milvus_collections": {"a": 1},
                                                                     "milvus_not_loaded": ["a"]}
    with ctx_host.use(FakeHost(AT_SNAPSHOT, None, {"ok": False, "error": "no pymilvus"})):
        assert engine.row_counts(Stack("/srv/layra"), COMPONENT) == {"milvus_error": "no pymilvus"}
