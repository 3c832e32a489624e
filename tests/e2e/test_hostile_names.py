"""
A database that names things the hard way, on sandbox-1's real MariaDB: a table named
``kb_é`` (not ASCII), one named ``order`` (a reserved word), a parent/child pair with a
foreign key, a generated column, an empty table, 4-byte characters in the data (MariaDB
refuses them in names: error 1300), a view, a trigger, a procedure, and a sequence that a
table's column draws its default from (MariaDB writes that default with the database's
name in it).

Its fingerprint must cover every table (a latin1 client once blinded it to three of seven:
the plan and phase 4 then called a damaged database unchanged). A change to any one table
after the backup is seen by the plan (named, also at the same row count) and by phase 4;
the rollback restores it all; the second run changes nothing.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.reliability.conftest import inventory_file

from .conftest import Sandbox, sql

DATABASE = "hostile"
SNAPSHOTS = "/var/backups/layra-hostile"
DATA = {"layra_components": {"mysql": {"engine": "mysql", "service": "mysql", "user": "root",
                                       "password_key": "MYSQL_ROOT_PASSWORD", "databases": [DATABASE]}},
        "layra_maintenance": False, "layra_snapshot_root": SNAPSHOTS}

SCHEMA = """
DROP DATABASE IF EXISTS hostile; DROP DATABASE IF EXISTS hostile__restore; DROP DATABASE IF EXISTS hostile__pre_restore;
CREATE DATABASE hostile CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE hostile;
CREATE TABLE `kb_é` (id INT PRIMARY KEY, name VARCHAR(50));
INSERT INTO `kb_é` VALUES (1, 'café'), (2, 'naïve');
CREATE TABLE `order` (id INT PRIMARY KEY, qty INT);
INSERT INTO `order` VALUES (1, 1), (2, 2), (3, 3), (4, 4);
CREATE TABLE parent (id INT PRIMARY KEY, label VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB;
INSERT INTO parent VALUES (1, 'a'), (2, 'b'); INSERT INTO child VALUES (1, 1), (2, 2);
CREATE TABLE gen (a INT, b INT AS (a * 2) STORED); INSERT INTO gen (a) VALUES (1), (2);
CREATE TABLE empty_t (x INT);
CREATE TABLE `ünï` (x VARCHAR(20)); INSERT INTO `ünï` VALUES ('𝄞 clef'), ('😀');
CREATE VIEW v_parent AS SELECT * FROM parent;
CREATE TRIGGER trg BEFORE INSERT ON parent FOR EACH ROW SET NEW.label = UPPER(NEW.label);
CREATE PROCEDURE p() SELECT COUNT(*) FROM `order`;
CREATE SEQUENCE ticket_no START WITH 100;
CREATE TABLE ticket (no INT NOT NULL DEFAULT NEXTVAL(ticket_no) PRIMARY KEY, title VARCHAR(20));
INSERT INTO ticket (title) VALUES ('first'), ('second');
"""
# the sequence's state once two numbers were drawn: 100 and 101, and 1000 cached
NEXT_NOT_CACHED = "1100"

# table -> (a change after the backup, the statement that puts its content back)
CHANGES = {
    "kb_é": ("UPDATE `kb_é` SET name = 'cafe' WHERE id = 1", "UPDATE `kb_é` SET name = 'café' WHERE id = 1"),
    "order": ("DELETE FROM `order` WHERE id = 4", "INSERT INTO `order` VALUES (4, 4)"),
    "parent": ("UPDATE parent SET label = 'HACKED' WHERE id = 1", "UPDATE parent SET label = 'a' WHERE id = 1"),
    "child": ("UPDATE child SET parent_id = 1 WHERE id = 2", "UPDATE child SET parent_id = 2 WHERE id = 2"),
    "gen": ("UPDATE gen SET a = 5 WHERE a = 1", "UPDATE gen SET a = 1 WHERE a = 5"),
    "empty_t": ("INSERT INTO empty_t VALUES (1)", "DELETE FROM empty_t"),
    "ünï": ("UPDATE `ünï` SET x = '𝄞 changed' WHERE x = '𝄞 clef'", "UPDATE `ünï` SET x = '𝄞 clef' WHERE x = '𝄞 changed'"),
    "ticket_no": ("SELECT SETVAL(ticket_no, 5000)", f"ALTER SEQUENCE ticket_no RESTART WITH {NEXT_NOT_CACHED}"),
}
TABLES = [*CHANGES, "ticket"]


@pytest.fixture(scope="module")
def hostile(sandbox: Sandbox, tmp_path_factory):
    host = sandbox.hosts[0]
    inventory = inventory_file(tmp_path_factory.mktemp("hostile"), {host.name: DATA})
    host.ssh(f"rm -rf {SNAPSHOTS}")
    sql(host, SCHEMA, database="")
    backup = sandbox.pyinfra("backup.py", "--data", "label=hostile", inventory=inventory)
    assert backup.ok, backup.output[-3000:]
    assert "UnicodeDecodeError" not in backup.output
    snapshot = re.search(r"snapshot (\d{8}T\d{6}Z-hostile)", backup.output).group(1)
    yield host, inventory, snapshot
    sql(host, "DROP DATABASE IF EXISTS hostile; DROP DATABASE IF EXISTS hostile__pre_restore", database="")
    host.ssh(f"rm -rf {SNAPSHOTS}")


def test_the_snapshot_fingerprints_every_table_with_its_checksum(hostile):
    host, _, snapshot = hostile
    fingerprint = json.loads(host.ssh(f"cat {SNAPSHOTS}/{snapshot}/mysql.{DATABASE}.json"))["fingerprint"]
    assert sorted(fingerprint["tables"]) == sorted(TABLES)
    assert all(isinstance(found["checksum"], int) for found in fingerprint["tables"].values())
    assert fingerprint["tables"]["ünï"]["rows"] == 2
    assert fingerprint["tables"]["ticket_no"]["rows"] == 1  # a sequence: one row, its state
    assert (fingerprint["views"], fingerprint["triggers"], fingerprint["routines"]) == (["v_parent"], ["trg"],
                                                                                        ["PROCEDURE p"])


@pytest.mark.parametrize("table", list(CHANGES))
def test_a_change_to_any_one_table_is_named_by_the_plan(sandbox: Sandbox, hostile, table):
    host, inventory, snapshot = hostile
    change, undo = CHANGES[table]
    sql(host, change, database=DATABASE)
    try:
        dry = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}", "--dry", inventory=inventory)
    finally:
        sql(host, undo, database=DATABASE)
    assert dry.ok, dry.output[-3000:]
    assert f"plan: mysql/{DATABASE}: restore from the snapshot" in dry.output
    assert re.search(rf"plan:   {re.escape(table)}: \d+ -> \d+ rows?", dry.output), dry.output[-3000:]


@pytest.mark.parametrize("table", ["kb_é", "order"])
def test_phase_4_fails_on_a_changed_table_and_passes_once_its_content_is_back(sandbox: Sandbox, hostile, table):
    host, inventory, snapshot = hostile
    change, undo = CHANGES[table]
    sql(host, change, database=DATABASE)
    try:
        damaged = sandbox.pyinfra("verify.py", "--data", f"snapshot={snapshot}", inventory=inventory)
    finally:
        sql(host, undo, database=DATABASE)
    assert not damaged.ok
    assert f"FAIL phase 4 mysql/{DATABASE} fingerprint" in damaged.output
    whole = sandbox.pyinfra("verify.py", "--data", f"snapshot={snapshot}", inventory=inventory)
    assert f"ok   phase 4 mysql/{DATABASE} fingerprint" in whole.output, whole.output[-3000:]


def test_the_rollback_restores_data_schema_view_and_trigger_and_the_second_run_changes_nothing(
        sandbox: Sandbox, hostile):
    host, inventory, snapshot = hostile
    sql(host, "UPDATE parent SET label = 'HACKED'; DELETE FROM `order` WHERE id = 4; "
              "ALTER TABLE `kb_é` ADD COLUMN extra INT; DROP VIEW v_parent; DROP TRIGGER trg; "
              "UPDATE `ünï` SET x = 'gone'; INSERT INTO ticket (title) VALUES ('third'); "
              "SELECT SETVAL(ticket_no, 5000)", database=DATABASE)
    dry = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}", "--dry", inventory=inventory)
    for line in ("parent: 2 -> 2 rows (same count, other content)", "order: 3 -> 4 rows", "ünï: 2 -> 2 rows",
                 "view v_parent added", "trigger trg added", "column kb_é.extra dropped", "ticket: 3 -> 2 rows",
                 "ticket_no: 1 -> 1 row (same count, other content)"):
        assert f"plan:   {line}" in dry.output, line

    run = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}", inventory=inventory)
    assert run.ok, run.output[-4000:]
    assert f"ok   phase 4 mysql/{DATABASE} fingerprint" in run.output
    assert sql(host, "SELECT GROUP_CONCAT(label ORDER BY id) FROM parent", database=DATABASE) == "a,b"
    assert sql(host, "SELECT COUNT(*) FROM `order`", database=DATABASE) == "4"
    assert sorted(sql(host, "SELECT x FROM `ünï`", database=DATABASE).splitlines()) == sorted(["𝄞 clef", "😀"])
    assert sql(host, "SELECT COUNT(*) FROM v_parent", database=DATABASE) == "2"
    assert sql(host, "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = 'hostile'",
               database="") == "1"
    assert "extra" not in sql(host, "SHOW COLUMNS FROM `kb_é`", database=DATABASE)
    assert sql(host, "SELECT next_not_cached_value FROM ticket_no", database=DATABASE) == NEXT_NOT_CACHED
    # the restored table draws from the restored sequence, not from the copy moved aside
    assert sql(host, "SELECT column_default FROM information_schema.columns WHERE table_schema = 'hostile' "
                     "AND table_name = 'ticket' AND column_name = 'no'", database="") == "nextval(`hostile`.`ticket_no`)"
    # the sequence and the table it replaced are in the safety snapshot, dumped from the displaced copy
    safety = host.ssh(f"ls -d {SNAPSHOTS}/*-safety-before-rollback").split()
    displaced = json.loads(host.ssh(f"cat {safety[-1]}/mysql.{DATABASE}.json"))["fingerprint"]["tables"]
    assert (displaced["ticket"]["rows"], displaced["ticket_no"]["rows"]) == (3, 1)
    assert displaced["ticket_no"]["checksum"] != json.loads(host.ssh(
        f"cat {SNAPSHOTS}/{snapshot}/mysql.{DATABASE}.json"))["fingerprint"]["tables"]["ticket_no"]["checksum"]

    again = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot}", inventory=inventory)
    assert again.ok and again.totals()["changed"] == 0, again.output[-3000:]
    assert f"plan: mysql/{DATABASE}: no change: already matches the snapshot" in again.output


def test_a_backup_is_refused_naming_a_system_versioned_table_whose_history_no_dump_keeps(sandbox: Sandbox, hostile):
    host, inventory, _ = hostile
    sql(host, "CREATE TABLE audit (id INT PRIMARY KEY) WITH SYSTEM VERSIONING; INSERT INTO audit VALUES (1)",
        database=DATABASE)
    try:
        backup = sandbox.pyinfra("backup.py", "--data", "label=versioned", inventory=inventory)
    finally:
        sql(host, "DROP TABLE audit", database=DATABASE)
    assert not backup.ok
    assert "table audit is SYSTEM VERSIONED: its history is in no dump" in backup.output, backup.output[-3000:]
    assert "versioned" not in host.ssh(f"ls -a {SNAPSHOTS}")
