"""The volume-set engine's plan: which facts it reads, for a set at the snapshot and one that differs."""

from pyinfra.context import ctx_host

from facts.compose import Stack
from facts.volumes import MilvusCollections, VolumeSet, same_rows, set_match
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


# Milvus writes its volumes for as long as it runs: they never settle at a fingerprint.
TIED = {"archive_sha256": "c" * 64, "settled": {"bytes": 1, "files": 1, "sha256": "e" * 64}}
WANTED = {"layra_milvus_data": (AT_SNAPSHOT, "c" * 64)}


def volume(marker: dict | None) -> dict:
    return {"layra_milvus_data": {"fingerprint": CHANGED, **({"restored": marker} if marker else {})}}


def test_a_set_restored_from_the_snapshot_whose_server_serves_its_data_is_at_the_snapshot():
    assert set_match(volume(TIED), WANTED, served=True) == {"layra_milvus_data": "served"}


def test_a_set_restored_from_the_snapshot_whose_server_serves_other_data_is_not():
    assert set_match(volume(TIED), WANTED, served=False) == {"layra_milvus_data": None}


def test_a_server_serving_the_snapshots_rows_does_not_vouch_for_volumes_restored_from_elsewhere():
    other = {**TIED, "archive_sha256": "f" * 64}
    assert set_match(volume(other), WANTED, served=True) == {"layra_milvus_data": None}
    assert set_match(volume(None), WANTED, served=True) == {"layra_milvus_data": None}


def test_milvus_serves_the_snapshots_rows_only_when_it_answered_with_the_same_counts():
    assert same_rows({"ok": True, "collections": {"kb_chunks": 200}}, {"kb_chunks": 200}) is True
    assert same_rows({"ok": True, "collections": {"kb_chunks": 200, "new": 1}}, {"kb_chunks": 200}) is False
    assert same_rows({"ok": False, "error": "down"}, {"kb_chunks": 200}) is False
    assert same_rows({"ok": True, "collections": {}}, None) is None


def test_a_milvus_set_restored_from_the_snapshot_and_serving_its_rows_is_planned_unchanged_saying_why():
    fake = FakeHost(CHANGED, TIED, {"ok": True, "collections": {"kb_chunks": 200}})
    with ctx_host.use(fake):
        plan = ENGINES["volumes"].plan(Stack("/srv/layra"), COMPONENT, "milvus", DESCRIPTOR, SHA256S)
    assert plan["changes"] is False
    assert ENGINES["volumes"].describe(plan) == [
        "milvus (milvus-standalone): no change: restored from (or archived at) the snapshot, and Milvus serves its rows"]


def test_phase_4_passes_a_milvus_set_restored_from_the_snapshot_through_what_milvus_serves():
    check = phase_4({"ok": True, "collections": {"kb_chunks": 200}}, marker=TIED)
    assert check.ok
    assert check.observed == ("1 volume restored from (or archived at) the snapshot; its server has written on "
                              "since; milvus kb_chunks 200 rows")
