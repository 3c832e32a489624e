"""The binlog coordinates a MySQL dump records (operations/scripts/binlog_coordinates.sh,
run here by sh on each dump tool's header), the reasons a server's binlog cannot be
replayed (facts.mysql.replay_refusal), and what a range of the binlog changes in one
database (facts/scripts/binlog_changes.sh, run by sh on a real binlog reader's output)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from facts.mysql import MysqlBinlogChanges, replay_refusal
from facts.shell import WHOLE_MARKER, script

MARIADB_HEAD = """-- MariaDB dump 10.19  Distrib 10.11.18-MariaDB, for debian-linux-gnu (x86_64)
--
-- Position to start replication or point-in-time recovery from
--

-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000002', MASTER_LOG_POS=1234;

--
-- GTID to start replication from
--

-- SET GLOBAL gtid_slave_pos='0-1-42';
CREATE TABLE `blobs` (`id` int(11) NOT NULL);
"""
MYSQL_HEAD = """-- MySQL dump 10.13  Distrib 9.0.1, for Linux (x86_64)
-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000007', SOURCE_LOG_POS=157;
CREATE TABLE `blobs` (`id` int NOT NULL);
"""


def coordinates(head: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script("binlog_coordinates", "operations")], input=head,
                          capture_output=True, text=True)


@pytest.mark.parametrize("head, want", [
    (MARIADB_HEAD, {"file": "binlog.000002", "position": 1234, "gtid": "0-1-42"}),
    (MYSQL_HEAD, {"file": "binlog.000007", "position": 157, "gtid": ""}),
])
def test_a_dump_head_gives_the_binlog_coordinates_it_is_consistent_with(head, want):
    run = coordinates(head + "INSERT INTO blobs VALUES (1);\n" * 500)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == want


def test_a_dump_without_coordinates_fails_saying_so():
    run = coordinates("-- MariaDB dump\nCREATE TABLE x (id int);\n")
    assert run.returncode == 1 and "names no binlog coordinates" in run.stderr and run.stdout == ""


def test_a_coordinate_line_with_shell_or_json_metacharacters_is_not_taken():
    run = coordinates("-- CHANGE MASTER TO MASTER_LOG_FILE='bin\"log.1', MASTER_LOG_POS=4;\n")
    assert run.returncode == 1


BINLOG = {"log_bin": True, "format": "ROW", "row_image": "FULL", "files": ["binlog.000001"],
          "file": "binlog.000001", "position": 4, "gtid": ""}


def test_a_row_binlog_with_full_row_images_can_be_replayed():
    assert replay_refusal(BINLOG) is None


@pytest.mark.parametrize("changes, reason", [
    ({"log_bin": False}, "the server keeps no binlog (log_bin is off)"),
    ({"format": "MIXED"}, "binlog_format is MIXED, not ROW"),
    ({"format": "STATEMENT", "row_image": "MINIMAL"},
     "binlog_format is STATEMENT, not ROW; binlog_row_image is MINIMAL, not FULL"),
])
def test_a_binlog_that_cannot_be_replayed_says_why(changes, reason):
    assert replay_refusal({**BINLOG, **changes}) == reason


# What a range of the binlog changes in one database (facts/scripts/binlog_changes.sh), on
# a real `mariadb-binlog -v --base64-output=DECODE-ROWS` output of MariaDB 10.11: database d
# created, table d.t, two rows inserted, one updated, one deleted, two ALTERs (qualified, and
# unqualified after `use d`), one more row, then database e with a table and a row.
BINLOG_TEXT = (Path(__file__).parent / "fixtures" / "binlog" / "mariadb_verbose.txt").read_text()


def changes(text: str, db: str, pks: str = "t:1", limit: int = 100) -> list[str]:
    env = {"PATH": os.environ["PATH"], "DB": db, "PKS": pks, "LIMIT": str(limit)}
    run = subprocess.run(["sh", "-c", script("binlog_changes")], input=text, capture_output=True, text=True,
                         check=False, env=env)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    return run.stdout.splitlines()


# the reader's last line, printed only once it read its whole range
FOOTER = "/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=0*/;\n"


def between(start: int, stop: int) -> str:
    """The fixture's events from ``# at <start>`` up to (not including) ``# at <stop>``, as a
    --start-position/--stop-position range gives them."""
    return BINLOG_TEXT[BINLOG_TEXT.index(f"# at {start}\n"):BINLOG_TEXT.index(f"# at {stop}\n")] + FOOTER


def test_the_binlog_summary_counts_rows_lists_keys_and_reports_the_databases_ddl():
    assert changes(BINLOG_TEXT, "d") == [
        "ddl\tCREATE DATABASE d",
        "ddl\tCREATE TABLE d.t (id INT PRIMARY KEY, v TEXT)",
        "key\tt\tINSERT\t1",
        "key\tt\tINSERT\t2",
        "key\tt\tUPDATE\t2",
        "key\tt\tDELETE\t1",
        "ddl\tALTER TABLE d.t ADD COLUMN w INT",
        "ddl\tALTER TABLE t ADD COLUMN z INT",
        "key\tt\tINSERT\t7",
        "rows\tt\t3\t1\t1",
        "transactions\t4",
        "end",
    ]


def test_the_binlog_summary_reads_as_the_fact_gives_it():
    output = changes(BINLOG_TEXT, "d")
    assert MysqlBinlogChanges().process([*output, "", WHOLE_MARKER]) == {
        "tables": {"t": [3, 1, 1]},
        "keys": {"t": [["INSERT", "1"], ["INSERT", "2"], ["UPDATE", "2"], ["DELETE", "1"], ["INSERT", "7"]]},
        "ddl": ["CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT)",
                "ALTER TABLE d.t ADD COLUMN w INT", "ALTER TABLE t ADD COLUMN z INT"],
        "transactions": 4,
    }


def test_ddl_and_rows_of_another_database_are_not_reported_for_the_database():
    # CREATE DATABASE e, and CREATE TABLE e.x run while `use d` was the session's database
    output = changes(BINLOG_TEXT, "d")
    assert not [line for line in output if "e.x" in line or "DATABASE e" in line or "\tx\t" in line]


def test_ddl_and_rows_of_the_other_database_are_reported_for_it():
    assert changes(BINLOG_TEXT, "e", pks="") == [
        "ddl\tCREATE DATABASE e",
        "ddl\tCREATE TABLE e.x (i INT)",
        "key\tx\tINSERT\t",
        "rows\tx\t1\t0\t0",
        "transactions\t1",
        "end",
    ]


def test_limit_caps_the_keys_listed_per_table_but_not_the_counts():
    output = changes(BINLOG_TEXT, "d", limit=2)
    assert [line for line in output if line.startswith("key\t")] == ["key\tt\tINSERT\t1", "key\tt\tINSERT\t2"]
    assert "rows\tt\t3\t1\t1" in output and "transactions\t4" in output
    assert not [line for line in changes(BINLOG_TEXT, "d", limit=0) if line.startswith("key\t")]


def test_a_range_of_row_events_only_has_no_ddl():
    # from after CREATE TABLE to before the first ALTER: the insert, the update, the delete
    assert changes(between(607, 1259), "d") == [
        "key\tt\tINSERT\t1",
        "key\tt\tINSERT\t2",
        "key\tt\tUPDATE\t2",
        "key\tt\tDELETE\t1",
        "rows\tt\t2\t1\t1",
        "transactions\t3",
        "end",
    ]


def test_a_table_without_a_known_primary_key_lists_its_rows_with_an_empty_key():
    assert changes(between(607, 833), "d", pks="") == [
        "key\tt\tINSERT\t", "key\tt\tINSERT\t", "rows\tt\t2\t0\t0", "transactions\t1", "end"]


def test_an_empty_range_is_no_transaction():
    assert changes(FOOTER, "d") == ["transactions\t0", "end"]


def test_a_reader_that_stopped_short_fails_the_summary_and_prints_no_end():
    run = subprocess.run(["sh", "-c", script("binlog_changes")], input=BINLOG_TEXT[:BINLOG_TEXT.index("# at 1259\n")],
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"], "DB": "d", "PKS": "t:1"})
    assert run.returncode == 1 and "stopped before its end" in run.stderr
    assert "end" not in run.stdout.splitlines()


@pytest.mark.parametrize("statement, reported", [
    ("alter table t add y int", "alter table t add y int"),
    ("  ALTER TABLE t ADD y INT", "ALTER TABLE t ADD y INT"),
    ("/* by a migration tool */ Alter Table d.t add y int", "Alter Table d.t add y int"),
])
def test_ddl_is_found_in_any_case_after_blanks_and_comments(statement, reported):
    text = f"# at 4\nuse `d`/*!*/;\n# at 10\n{statement}\n/*!*/;\n" + FOOTER
    assert [line for line in changes(text, "d") if line.startswith("ddl")] == [f"ddl\t{reported}"]


# --- the replay inside the container (operations/scripts/binlog_replay.sh) -------------

def replay(tmp_path, reader_fails: bool) -> tuple[subprocess.CompletedProcess, str]:
    """The script with stand-ins for the reader (prints two statements, then fails where
    asked) and the client (takes stdin as SQL: fails on a line that is no statement)."""
    (tmp_path / "mariadb-binlog").write_text(
        "#!/bin/sh\nprintf 'argv:%s\\n' \"$*\" >&2\necho 'INSERT INTO t VALUES (1);'\n"
        + ("echo 'ERROR: Could not read entry' >&2; exit 1\n" if reader_fails else "echo 'COMMIT;'\n"))
    (tmp_path / "mariadb").write_text(
        "#!/bin/sh\ntee \"$SEEN\" | while read -r line; do case $line in *';') ;; *) exit 1;; esac; done\n"
        "grep -q 'refused;$' \"$SEEN\" && exit 1; exit 0\n")
    for tool in ("mariadb-binlog", "mariadb"):
        (tmp_path / tool).chmod(0o755)
    seen = tmp_path / "seen.sql"
    run = subprocess.run(["sh", "-c", script("binlog_replay", "operations"), "sh", "root", "--database=layra",
                          "--start-position=4", "binlog.000001"], capture_output=True, text=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SEEN": str(seen)})
    return run, seen.read_text()


def test_the_replay_pipes_the_reader_into_the_client_without_logging_it_again(tmp_path):
    run, seen = replay(tmp_path, reader_fails=False)
    assert run.returncode == 0, run.stderr
    assert seen.splitlines() == ["SET SESSION sql_log_bin = 0;", "INSERT INTO t VALUES (1);", "COMMIT;"]
    assert "argv:-R -u root --database=layra --start-position=4 binlog.000001" in run.stderr


def test_a_reader_that_fails_midway_fails_the_replay(tmp_path):
    run, seen = replay(tmp_path, reader_fails=True)
    assert run.returncode != 0
    assert seen.splitlines()[-1] == "the binlog reader failed: the replay is refused;"
