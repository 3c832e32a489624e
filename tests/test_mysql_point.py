"""MySQL's point-in-time rollback planned without a host (pyinfra_deploys.engines.mysql_point):
the point parsed from ``until=``, every refusal before anything changes, the accepted
replay's ranges, the plan's lines; and the facts it reads where their case files cannot
say it (a file that is not a binlog point, a binlog read cut short)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from facts import mysql as facts
from facts.compose import Stack
from facts.shell import WHOLE_MARKER, UnreadableOutput
from pyinfra_deploys.engines import mysql_point
from pyinfra_deploys.engines.mysql_point import (
    KEYS_SHOWN,
    at_target,
    describe,
    parse_until,
    plan,
)

STACK = Stack("/srv/layra")
COMPONENT = SimpleNamespace(name="mysql", client={"service": "mysql", "user": "root",
                                                  "password_key": "MYSQL_ROOT_PASSWORD"})
SNAPSHOT_DIR = "/var/backups/layra/20210601T120000Z-pre-migration"
CREATED = "2021-06-01T12:00:00Z"
DESCRIPTOR = {"database": "layra", "binlog_coordinates": "mysql.layra.binlog-coordinates",
              "snapshot_id": "20210601T120000Z-pre-migration"}
COORDINATES = f"{SNAPSHOT_DIR}/mysql.layra.binlog-coordinates"
RELEASE_POINT = "/srv/layra/.git/layra-release-point.mysql.json"
START = {"file": "binlog.000002", "position": 1234, "gtid": "0-1-42"}
RELEASE = {"file": "binlog.000003", "position": 800, "gtid": "0-1-50", "at": "2021-06-01T12:30:00Z"}
BINLOG = {"log_bin": True, "format": "ROW", "row_image": "FULL",
          "files": ["binlog.000001", "binlog.000002", "binlog.000003"],
          "file": "binlog.000003", "position": 9000, "gtid": "0-1-60"}
VERSIONS = {"server": "10.11.18-MariaDB-0+deb12u1", "flavor": "mariadb", "dump": "", "compression": "zstd"}
KEYS = {"knowledge_bases": [1], "kb_members": [1, 2]}
REPLAYED = {"tables": {"knowledge_bases": [2, 1, 0]}, "keys": {}, "ddl": [], "transactions": 3}
DISPLACED = {"tables": {"knowledge_bases": [1, 0, 0]}, "keys": {"knowledge_bases": [["INSERT", "9"]]},
             "ddl": ["ALTER TABLE knowledge_bases ADD COLUMN kind INT"], "transactions": 2}
OFFER = "nothing was changed (a rollback to the snapshot alone, without until=, is possible)"


class FakeHost:
    """``get_fact`` answered per fact class; ``BinlogPoint`` per path; the binlog changes
    per ``limit`` (0: the replayed range, the plan's own count; else the displaced range)."""

    def __init__(self, binlog=None, points=None, replayed=None, displaced=None, saved=None):
        self.binlog = {**BINLOG, **(binlog or {})}
        self.points = {COORDINATES: START, RELEASE_POINT: RELEASE} if points is None else points
        self.replayed, self.displaced = replayed or REPLAYED, displaced or DISPLACED
        self.saved = saved
        self.asked = []

    def get_fact(self, fact, **kwargs):
        self.asked.append((fact, kwargs))
        if fact is facts.BinlogPoint:
            return self.points.get(kwargs["path"])
        if fact is facts.MysqlBinlogChanges:
            return self.replayed if kwargs["limit"] == 0 else self.displaced
        return {facts.MysqlVersions: VERSIONS, facts.MysqlBinlog: self.binlog,
                facts.MysqlPrimaryKeys: KEYS, facts.ReplayTarget: self.saved}[fact]

    def asked_for(self, fact) -> list[dict]:
        return [kwargs for asked, kwargs in self.asked if asked is fact]


@pytest.fixture
def fake(monkeypatch):
    def install(**answers) -> FakeHost:
        fake_host = FakeHost(**answers)
        monkeypatch.setattr(mysql_point, "host", fake_host)
        return fake_host
    return install


def planned(until: str, descriptor: dict = DESCRIPTOR, created: str | None = CREATED) -> dict:
    return plan(STACK, COMPONENT, descriptor, parse_until(until), SNAPSHOT_DIR, created)


def refusal(result: dict, until: str) -> str:
    assert set(result) == {"error"}
    assert result["error"].startswith(f"mysql/layra: until={until} refused: ")
    assert result["error"].endswith(OFFER)
    return result["error"]


# parse_until


def test_until_migration_is_the_release_point():
    assert parse_until("migration") == {"kind": "migration", "text": "migration"}


def test_until_a_utc_time_gives_the_binlog_reader_time_and_the_moment():
    assert parse_until(" 2026-12-07T14:30:05Z ") == {
        "kind": "time", "text": "2026-12-07T14:30:05Z", "time": "2026-12-07 14:30:05",
        "at": datetime(2026, 12, 7, 14, 30, 5, tzinfo=UTC)}


def test_until_a_file_and_position_is_a_binlog_position():
    assert parse_until("mysql-bin.000012:5678") == {
        "kind": "position", "text": "mysql-bin.000012:5678", "file": "mysql-bin.000012", "position": 5678}


@pytest.mark.parametrize("value", [
    "", "Migration", "yesterday", "2026-12-07 14:30:00", "2026-12-07T14:30:00", "2026-12-07T14:30:00+01:00",
    "binlog.000002", "binlog.000002:", "binlog.000002:-4", "bin log.000002:4", "../binlog:4",
    "binlog.000002:12x", "binlog.000002:4;rm",
])
def test_a_value_that_is_not_a_point_is_refused_naming_the_forms(value):
    with pytest.raises(ValueError) as refused:
        parse_until(value)
    assert str(refused.value) == (f"until={value!r} is not a point: give until=migration, "
                                  "until=<YYYY-MM-DDTHH:MM:SSZ> (UTC) or until=<binlog file>:<position>")


@pytest.mark.parametrize("value", ["2026-13-07T14:30:00Z", "2026-02-30T14:30:00Z"])
def test_a_utc_time_that_is_no_date_is_refused(value):
    with pytest.raises(ValueError):
        parse_until(value)


# plan(): the refusals, each before anything is asked beyond what it needs


def test_a_server_without_a_binlog_is_refused(fake):
    host = fake(binlog={"log_bin": False, "files": [], "file": None, "position": None})
    error = refusal(planned("migration"), "migration")
    assert "the server keeps no binlog (log_bin is off)" in error
    assert host.asked_for(facts.MysqlBinlogChanges) == []


def test_a_binlog_not_in_row_format_is_refused(fake):
    fake(binlog={"format": "MIXED"})
    assert "binlog_format is MIXED, not ROW" in refusal(planned("binlog.000003:800"), "binlog.000003:800")


def test_a_binlog_without_full_row_images_is_refused(fake):
    fake(binlog={"row_image": "MINIMAL"})
    assert "binlog_row_image is MINIMAL, not FULL" in refusal(planned("binlog.000003:800"), "binlog.000003:800")


def test_a_snapshot_taken_without_binlog_coordinates_is_refused(fake):
    host = fake()
    descriptor = {key: value for key, value in DESCRIPTOR.items() if key != "binlog_coordinates"}
    error = refusal(planned("migration", descriptor), "migration")
    assert "the snapshot has no binlog coordinates (the server kept no binlog when it was taken)" in error
    assert host.asked == []


def test_a_snapshot_whose_coordinates_file_is_missing_is_refused(fake):
    fake(points={RELEASE_POINT: RELEASE})
    error = refusal(planned("migration"), "migration")
    assert "the snapshot's mysql.layra.binlog-coordinates is missing" in error


def test_a_snapshot_whose_binlog_file_was_purged_is_refused(fake):
    host = fake(binlog={"files": ["binlog.000003", "binlog.000004", "binlog.000005", "binlog.000006"],
                        "file": "binlog.000006"})
    error = refusal(planned("binlog.000006:100"), "binlog.000006:100")
    assert ("binlog file binlog.000002 (the snapshot's coordinates) was purged: the server has "
            "binlog.000003, binlog.000004, binlog.000005...") in error
    assert host.asked_for(facts.MysqlBinlogChanges) == []


def test_a_position_before_the_snapshot_is_refused(fake):
    fake()
    error = refusal(planned("binlog.000002:1000"), "binlog.000002:1000")
    assert "the point binlog.000002:1000 is before the snapshot's binlog.000002:1234" in error


def test_a_position_in_an_older_binlog_file_than_the_snapshot_is_refused(fake):
    fake()
    error = refusal(planned("binlog.000001:99999"), "binlog.000001:99999")
    assert "the point binlog.000001:99999 is before the snapshot's binlog.000002:1234" in error


def test_a_time_before_the_snapshot_is_refused(fake):
    fake()
    error = refusal(planned("2021-06-01T11:59:59Z"), "2021-06-01T11:59:59Z")
    assert "the point is before the snapshot (2021-06-01T12:00:00Z)" in error


def test_a_position_ahead_of_the_server_is_refused(fake):
    fake()
    error = refusal(planned("binlog.000003:9001"), "binlog.000003:9001")
    assert "the point binlog.000003:9001 is ahead of the server (binlog.000003:9000)" in error


def test_a_position_in_a_file_the_server_does_not_have_is_refused(fake):
    fake()
    error = refusal(planned("binlog.000004:4"), "binlog.000004:4")
    assert "binlog file binlog.000004 is not on the server (purged, or not this server's)" in error


def test_a_time_in_the_future_is_refused(fake):
    host = fake()
    error = refusal(planned("2999-01-01T00:00:00Z"), "2999-01-01T00:00:00Z")
    assert "the point is in the future" in error
    assert host.asked_for(facts.MysqlBinlogChanges) == []


def test_until_migration_without_a_saved_release_point_is_refused(fake):
    host = fake(points={COORDINATES: START})
    error = refusal(planned("migration"), "migration")
    assert "no guarded release saved a binlog point on this host (migrate.py saves one)" in error
    assert {"path": RELEASE_POINT} in host.asked_for(facts.BinlogPoint)


def test_a_ddl_statement_between_the_snapshot_and_the_point_is_refused(fake):
    host = fake(replayed={**REPLAYED, "ddl": ["ALTER TABLE knowledge_bases ADD COLUMN w INT"]})
    error = refusal(planned("migration"), "migration")
    assert ("a DDL statement on layra between the snapshot and the point "
            "('ALTER TABLE knowledge_bases ADD COLUMN w INT'): row events cannot be replayed across it") in error
    # the range after the point is not read once the replay is refused
    assert [kwargs["limit"] for kwargs in host.asked_for(facts.MysqlBinlogChanges)] == [0]


# plan(): accepted


def test_a_position_plans_the_replay_up_to_it_and_the_writes_after_it(fake):
    host = fake()
    result = planned("binlog.000003:800")
    assert result == {
        "replay": {"files": ["binlog.000002", "binlog.000003"], "start": 1234, "stop": 800, "flavor": "mariadb"},
        "after": {"files": ["binlog.000003"], "start": 800},
        "replayed": REPLAYED,
        "displaced": DISPLACED,
        "point": "binlog.000002:1234 -> binlog.000003:800",
        "label": "20210601T120000Z-pre-migration until binlog.000003:800",
    }
    login = {"stack": STACK, "service": "mysql", "user": "root", "password_key": "MYSQL_ROOT_PASSWORD"}
    assert host.asked_for(facts.MysqlBinlog) == [{"flavor": "mariadb", **login}]
    assert host.asked_for(facts.MysqlBinlogChanges) == [
        {"database": "layra", "keys": KEYS, "limit": 0, "files": ["binlog.000002", "binlog.000003"],
         "start": 1234, "stop": 800, **login},
        {"database": "layra", "keys": KEYS, "limit": KEYS_SHOWN, "files": ["binlog.000003"], "start": 800, **login},
    ]


def test_the_snapshots_own_position_is_an_empty_replay_that_is_accepted(fake):
    fake()
    result = planned("binlog.000002:1234")
    assert result["replay"] == {"files": ["binlog.000002"], "start": 1234, "stop": 1234, "flavor": "mariadb"}
    assert result["after"] == {"files": ["binlog.000002", "binlog.000003"], "start": 1234}


def test_until_migration_replays_up_to_the_release_point_and_names_it(fake):
    fake()
    result = planned("migration")
    assert result["replay"] == {"files": ["binlog.000002", "binlog.000003"], "start": 1234, "stop": 800, "flavor": "mariadb"}
    assert result["point"] == "binlog.000002:1234 -> binlog.000003:800 (the release's, 2021-06-01T12:30:00Z)"
    assert result["label"] == ("20210601T120000Z-pre-migration until binlog.000003:800 "
                               "(the release's, 2021-06-01T12:30:00Z)")


def test_a_time_replays_every_file_from_the_snapshot_up_to_that_time(fake):
    fake()
    result = planned("2021-06-01T12:20:00Z")
    assert result["replay"] == {"files": ["binlog.000002", "binlog.000003"], "start": 1234,
                                "stop_time": "2021-06-01 12:20:00", "flavor": "mariadb"}
    assert result["after"] == {"files": ["binlog.000002", "binlog.000003"], "start_time": "2021-06-01 12:20:00"}
    assert result["point"] == "binlog.000002:1234 -> 2021-06-01T12:20:00Z"
    assert result["label"] == "20210601T120000Z-pre-migration until 2021-06-01T12:20:00Z"


# at_target


def unread() -> dict:
    raise AssertionError("the live fingerprint (a full read) is read only where a matching target was saved")


def test_a_rerun_at_the_replayed_target_is_at_target(fake):
    live = {"exists": True, "schema_sha256": "s", "tables": {"knowledge_bases": {"rows": 3, "checksum": 7}},
            "views": [], "routines": [], "triggers": []}
    fake(saved={"label": "x until binlog.000003:800", "fingerprint": live})
    assert at_target(STACK, COMPONENT, DESCRIPTOR, "x until binlog.000003:800", lambda: live) is True
    assert at_target(STACK, COMPONENT, DESCRIPTOR, "x until binlog.000003:900", unread) is False
    changed = {**live, "tables": {"knowledge_bases": {"rows": 4, "checksum": 8}}}
    assert at_target(STACK, COMPONENT, DESCRIPTOR, "x until binlog.000003:800", lambda: changed) is False


def test_no_saved_target_is_not_at_target(fake):
    host = fake(saved=None)
    assert at_target(STACK, COMPONENT, DESCRIPTOR, "x", unread) is False
    assert host.asked_for(facts.ReplayTarget) == [{"path": "/srv/layra/.git/layra-point-in-time.mysql.layra"}]


# describe


def test_the_plan_lines_count_what_is_replayed_and_list_the_keys_moved_aside():
    replay = {
        "point": "binlog.000002:1234 -> binlog.000003:800",
        "replayed": {"tables": {"knowledge_bases": [2, 1, 0], "kb_members": [1, 0, 1]}, "keys": {},
                     "ddl": [], "transactions": 1},
        "displaced": {"tables": {"knowledge_bases": [3, 0, 1], "audit": [0, 1, 0]},
                      "keys": {"knowledge_bases": [["INSERT", "4"], ["INSERT", "5"]], "audit": [["UPDATE", ""]]},
                      "ddl": [], "transactions": 2},
    }
    assert describe(replay) == [
        ("  replay the binlog binlog.000002:1234 -> binlog.000003:800: 1 transaction; "
         "kb_members +1 inserted, 0 updated, 1 deleted; knowledge_bases +2 inserted, 1 updated, 0 deleted"),
        ("  after the point, not replayed (kept in the displaced copy and exported as SQL into the safety "
         "snapshot): 2 transactions"),
        "    audit: 0 inserted, 1 updated, 0 deleted: UPDATE ?",
        "    knowledge_bases: 3 inserted, 0 updated, 1 deleted: INSERT 4, INSERT 5 and 2 more",
    ]


def test_the_plan_lines_say_so_when_nothing_was_written_after_the_point():
    replay = {"point": "binlog.000002:1234 -> binlog.000002:1234",
              "replayed": {"tables": {}, "keys": {}, "ddl": [], "transactions": 0},
              "displaced": {"tables": {}, "keys": {}, "ddl": [], "transactions": 0}}
    assert describe(replay) == [
        "  replay the binlog binlog.000002:1234 -> binlog.000002:1234: 0 transactions",
        "  after the point: no writes (nothing moved aside beyond the rollback's own)",
    ]


# the facts, where a case file cannot say it (they raise)


def test_a_file_that_is_not_a_binlog_point_fails_the_fact():
    for text in ['{"file": "binlog.000002"}', '{"file": "bin log", "position": 4}',
                 '{"file": "binlog.000002", "position": "4"}', "binlog.000002:4", "[1, 2]"]:
        with pytest.raises(UnreadableOutput, match="not a binlog point"):
            facts.BinlogPoint().process([text, WHOLE_MARKER])


def test_a_binlog_read_cut_short_fails_the_fact():
    with pytest.raises(UnreadableOutput, match="the binlog could not be read whole"):
        facts.MysqlBinlogChanges().process(["rows\tknowledge_bases\t1\t0\t0", "transactions\t1", WHOLE_MARKER])
