"""The binlog coordinates a MySQL dump records (operations/scripts/binlog_coordinates.sh,
run here by sh on each dump tool's header), and the reasons a server's binlog cannot be
replayed (facts.mysql.replay_refusal)."""

from __future__ import annotations

import json
import subprocess

import pytest

from facts.mysql import replay_refusal
from facts.shell import script

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
