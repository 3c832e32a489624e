"""Verify phase 4 of a MySQL part swapped in from its checked shadow copy: the live tables
are told to be that copy by their InnoDB ids and last-write times (``MysqlTableStamps``),
never where anything could have changed since its checksums were read."""

from __future__ import annotations

import pytest

from facts import mysql as facts
from facts.compose import Stack
from facts.shell import WHOLE_MARKER
from operations import mysql as operations
from pyinfra_deploys.engines import mysql as engine
from pyinfra_deploys.engines.mysql import Mysql, MysqlComponent

CHECKED = {"exists": True, "schema_sha256": "s1", "views": ["kb_names"], "routines": [], "triggers": [],
           "now": "2026-12-07 18:00:03", "started": 1796665948, "oldest_open": None,
           "tables": {"kb_shares": [27, "2026-12-07 17:59:01"], "knowledge_bases": [28, "2026-12-07 18:00:01"]}}
SNAPSHOT = {"exists": True, "schema_sha256": "s1", "views": ["kb_names"], "routines": [], "triggers": [],
            "tables": {"kb_shares": {"rows": 0, "checksum": 0}, "knowledge_bases": {"rows": 3, "checksum": 977}}}


def stamped(**changes) -> dict:
    return {**CHECKED, "now": "2026-12-07 18:00:09", **changes}


def test_the_swapped_in_copy_unwritten_since_its_check_is_told_by_its_stamps():
    assert facts.unchanged_since_checked(CHECKED, stamped())
    assert facts.same_schema(stamped(), SNAPSHOT)


@pytest.mark.parametrize("live, why", [
    (stamped(tables={**CHECKED["tables"], "knowledge_bases": [28, "2026-12-07 18:00:05"]}), "a write since"),
    (stamped(tables={**CHECKED["tables"], "kb_shares": [31, "2026-12-07 17:59:01"]}),
     "a table rebuilt or truncated (another id)"),
    (stamped(tables={"knowledge_bases": CHECKED["tables"]["knowledge_bases"]}), "a table gone"),
    (stamped(tables={**CHECKED["tables"], "extra": [40, None]}), "a table added"),
    (stamped(started=1796666300), "the server restarted (its last-write times forgotten)"),
    (stamped(tables=None), "the server did not say"),
    (None, "no stamps"),
])
def test_anything_that_may_have_changed_since_the_check_sends_phase_4_to_the_data(live, why):
    assert not facts.unchanged_since_checked(CHECKED, live), why


@pytest.mark.parametrize("tables, oldest_open, why", [
    ({**CHECKED["tables"], "knowledge_bases": [28, "2026-12-07 18:00:02"]}, None,
     "a last write a second before the stamps: MariaDB lists a transaction that started in the last 0.1 s late"),
    ({**CHECKED["tables"], "kb_shares": [27, None]}, None,
     "a table with no write since the server started: nothing to tell a later write by (and InnoDB may forget one)"),
    (CHECKED["tables"], "2026-12-07 18:00:01",
     "a transaction open since the last write: MariaDB stamps its writes with its start, whenever it commits"),
])
def test_stamps_that_cannot_tell_a_later_write_send_phase_4_to_the_data(tables, oldest_open, why):
    checked = {**CHECKED, "tables": tables, "oldest_open": oldest_open}
    assert not facts.settled(checked), why
    assert not facts.unchanged_since_checked(checked, stamped(tables=tables)), why


def test_a_transaction_that_opened_after_the_last_write_leaves_the_stamps_settled():
    assert facts.settled({**CHECKED, "oldest_open": "2026-12-07 18:00:03"})


def test_a_start_time_a_second_apart_is_the_same_server_run():
    # the start is computed from the clock and the uptime, read by two statements
    assert facts.unchanged_since_checked(CHECKED, stamped(started=CHECKED["started"] + 1))


@pytest.mark.parametrize("change", [{"schema_sha256": "s2"}, {"views": []}, {"triggers": ["kb_audit"]},
                                    {"tables": {"kb_shares": [27, None]}}])
def test_a_schema_other_than_the_snapshots_is_not_the_snapshot(change):
    assert not facts.same_schema(stamped(**change), SNAPSHOT)


class FakeHost:
    name = "sandbox-1"

    def __init__(self, stamps: dict, full: dict):
        self.stamps, self.full, self.read = stamps, full, []

    def get_fact(self, fact, **kwargs):
        self.read.append(fact.__name__)
        if fact is facts.ReplayTarget:
            return {"fingerprint": self.full}
        return self.stamps if fact is facts.MysqlTableStamps else self.full


@pytest.fixture
def probe(monkeypatch):
    def make(stamps: dict, checked: dict | None = CHECKED, **descriptor):
        fake = FakeHost(stamps, SNAPSHOT)
        monkeypatch.setattr(engine, "host", fake)
        monkeypatch.setattr("pyinfra_deploys.engines.shadow.host", fake)
        monkeypatch.setattr(operations, "CHECKED_COPIES",
                            {("sandbox-1", "mysql", "layra"): {**checked, "flavor": "mariadb"}} if checked else {})
        check = Mysql().integrity(Stack("/srv/layra"), MysqlComponent(name="mysql"), {"database": "layra", "fingerprint": SNAPSHOT,
                                                                       **descriptor}, {}).read({})
        return check, fake.read
    return make


def test_phase_4_passes_on_the_stamps_alone_where_the_checked_copy_was_swapped_in(probe):
    check, read = probe(stamped())
    assert check.ok and read == ["MysqlTableStamps"]
    assert check.observed == "2 tables, 3 rows: the copy checked at 2026-12-07 18:00:03, unwritten since"


def test_a_name_read_twice_leaves_the_tables_untold():
    # information_schema compares names case-insensitively: two tables would share a line
    lines = ["database\tlayra", "schema\t" + "d4" * 32, "tables\t2", "now\t2026-12-07 18:00:03\t1796666403",
             "Uptime\t455", "open\tnone", "stamp\tUsers\t41\t2026-12-07 17:59:01",
             "stamp\tUsers\t42\t2026-12-07 17:59:01", "stamp\tusers\t41\tnone", "stamp\tusers\t42\tnone",
             WHOLE_MARKER]
    assert facts.MysqlTableStamps().process(lines)["tables"] is None


def test_a_table_of_a_kind_the_fingerprint_refuses_refuses_the_stamps_too():
    lines = ["database\tlayra", "schema\t" + "d4" * 32, "tables\t1", "unsupported\taudit\tSYSTEM VERSIONED",
             "now\t2026-12-07 18:00:03\t1796666403", "Uptime\t455", "open\tnone", "stamp\tusers\t41\tnone",
             WHOLE_MARKER]
    with pytest.raises(facts.PartialFingerprint, match="mysql/layra: table audit is SYSTEM VERSIONED"):
        facts.MysqlTableStamps().process(lines)


def test_phase_4_reads_the_whole_fingerprint_where_a_stamp_moved(probe):
    check, read = probe(stamped(tables={**CHECKED["tables"], "knowledge_bases": [28, "2026-12-07 18:00:05"]}))
    assert check.ok and read == ["MysqlTableStamps", "MysqlFingerprint"]
    assert "unwritten since" not in check.observed


def test_phase_4_reads_the_whole_fingerprint_where_this_run_checked_no_copy(probe):
    check, read = probe(stamped(), checked=None)
    assert read == ["MysqlFingerprint"]


def test_a_replayed_copy_written_after_its_check_is_read_whole(probe):
    _, read = probe(stamped(), point_in_time={"label": "migration"})
    assert "MysqlTableStamps" not in read
