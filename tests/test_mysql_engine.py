"""The MySQL fingerprint is whole or refused, the plan names what a restore changes in the
schema, and MariaDB is told from Oracle MySQL by its version (case files show the commands;
this, the parsing and the plan's words)."""

from __future__ import annotations

import pytest

from facts.mysql import (
    MysqlVersions,
    PartialFingerprint,
    UnknownServer,
    parse_fingerprint,
    schema_changes,
    server_flavor,
)
from facts.shell import WHOLE_MARKER
from pyinfra_deploys.engines.mysql import database_plan as mysql_plan
from pyinfra_deploys.plan import describe

HEAD = ["database\thostile", "schema\t3da72a17ec0f8b1e8b76fa53d9481a60671563cae2fee897f2fb83017ea847c8"]
OBJECTS = ["column\tkb_é\tid\t9b7462b4471cd06a", "column\tkb_é\tname\ta151db1e4ed071e0",
           "column\torder\tid\t9b7462b4471cd06a", "index\torder\tPRIMARY\t367539c102033409",
           "view\tv_parent\tc50ef36c838660e8", "trigger\ttrg\tf661cc6c0dc9e45b"]
COUNTS = ["rows\tkb_é\t2", "rows\torder\t4", "hostile.kb_é\t985607080", "hostile.order\t124164457"]


def fingerprint(*lines: str) -> dict:
    return parse_fingerprint(list(lines))


def test_a_whole_fingerprint_names_every_table_and_schema_object():
    found = fingerprint(*HEAD, "tables\t2", *OBJECTS, *COUNTS)
    assert found["tables"] == {"kb_é": {"rows": 2, "checksum": 985607080}, "order": {"rows": 4, "checksum": 124164457}}
    assert found["views"] == ["v_parent"] and found["triggers"] == ["trg"]
    assert found["schema_objects"]["column kb_é.name"] == "a151db1e4ed071e0"
    assert found["schema_objects"]["index order.PRIMARY"] == "367539c102033409"


def test_batch_escapes_in_names_are_read_back():
    found = fingerprint(*HEAD, "tables\t1", "rows\ta\\tb\\\\c\t1", "hostile.a\\tb\\\\c\t7")
    assert found["tables"] == {"a\tb\\c": {"rows": 1, "checksum": 7}}


@pytest.mark.parametrize(("lines", "why"), [
    pytest.param([*HEAD, "tables\t3", *OBJECTS, *COUNTS], "information_schema lists 3 tables, 2 were read",
                 id="a table the output lost"),
    pytest.param([*HEAD, "tables\t2", *OBJECTS, *COUNTS[:3]], "table order has no checksum", id="no checksum"),
    pytest.param([*HEAD, "tables\t2", *OBJECTS, *COUNTS[:3], "hostile.order\tNULL"], "table order has no checksum",
                 id="a NULL checksum"),
    pytest.param([*HEAD, "tables\t2", *OBJECTS, *COUNTS[1:]], "table kb_é has no rows", id="no count"),
    pytest.param([*HEAD, *OBJECTS, *COUNTS], "no table count", id="no table count"),
    pytest.param([HEAD[0], "tables\t2", *OBJECTS, *COUNTS], "no schema hash", id="no schema hash"),
    pytest.param([*HEAD, "tables\t2", "unsupported\taudit\tSYSTEM VERSIONED", *OBJECTS, *COUNTS],
                 "table audit is SYSTEM VERSIONED: its history is in no dump", id="a system-versioned table"),
    pytest.param([*HEAD, "tables\t2", "unsupported\tlater\tSOME NEW KIND", *OBJECTS, *COUNTS],
                 "table later is SOME NEW KIND: a kind of table layra-rollback does not know", id="an unknown kind"),
])
def test_a_fingerprint_that_would_leave_part_of_the_database_out_is_refused(lines, why):
    with pytest.raises(PartialFingerprint, match="the fingerprint of mysql/hostile is partial, refused: .*" + why):
        parse_fingerprint(lines)


def test_the_plan_names_the_schema_objects_a_restore_adds_drops_and_alters():
    snapshot = fingerprint(*HEAD, "tables\t2", *OBJECTS, *COUNTS)
    live_lines = [line for line in OBJECTS if not line.startswith("view")]
    live_lines = [line.replace("a151db1e4ed071e0", "ffffffffffffffff") for line in live_lines]
    live = fingerprint(HEAD[0], "schema\t" + "0" * 64, "tables\t3", *live_lines, "column\textra\tx\t40e728f2cf6f6092",
                       "column\tkb_é\tnick\t40e728f2cf6f6092", *COUNTS[:1], "rows\torder\t3",
                       "rows\textra\t1", "hostile.extra\t5", "hostile.kb_é\t985607080", "hostile.order\t1")
    assert schema_changes(live, snapshot) == {
        "added": ["view v_parent"], "dropped": ["column extra.x", "column kb_é.nick"], "altered": ["column kb_é.name"]}
    lines = describe(mysql_plan("mysql", "hostile", live, snapshot))
    assert lines == [
        "mysql/hostile: restore from the snapshot",
        "  order: 3 -> 4 rows",
        "  table extra dropped (kept in the __pre_restore database)",
        "  view v_parent added",
        "  column kb_é.nick dropped",
        "  column kb_é.name altered (back to the snapshot's definition)",
    ]


def test_a_table_whose_rows_differ_at_the_same_count_is_named():
    snapshot = fingerprint(*HEAD, "tables\t2", *OBJECTS, *COUNTS)
    live = fingerprint(*HEAD, "tables\t2", *OBJECTS, *COUNTS[:3], "hostile.order\t99")
    assert describe(mysql_plan("mysql", "hostile", live, snapshot)) == [
        "mysql/hostile: restore from the snapshot", "  order: 4 -> 4 rows (same count, other content)",
        "  schema unchanged"]


def test_a_snapshot_from_before_per_object_hashes_still_says_the_schema_changed():
    snapshot = fingerprint(*HEAD, "tables\t2", *OBJECTS, *COUNTS)
    del snapshot["schema_objects"]
    live = fingerprint(HEAD[0], "schema\t" + "0" * 64, "tables\t2", *OBJECTS, *COUNTS)
    assert describe(mysql_plan("mysql", "hostile", live, snapshot))[-1] == (
        "  schema changed (the snapshot predates per-object fingerprints: which objects, not known)")


@pytest.mark.parametrize(("version", "flavor"), [
    ("10.11.18-MariaDB-0+deb12u1", "mariadb"),           # Debian's, the sandbox's
    ("11.4.2-MariaDB-ubu2404", "mariadb"),               # the mariadb:11 image
    ("5.5.5-10.11.6-MariaDB", "mariadb"),                # as old clients were shown it
    ("8.4.3", "mysql"),                                  # the mysql:8.4 image
    ("9.0.1", "mysql"),                                  # the mysql:9 image, Layra's
    ("8.0.36-28", "mysql"),                              # Percona Server: MySQL's options
])
def test_the_server_is_told_by_its_version(version, flavor):
    assert server_flavor(version) == flavor


def test_versions_name_the_server_and_keep_mysqls_dump_line_whole():
    found = MysqlVersions().process(["9.0.1", "mysqldump  Ver 9.0.1 for Linux on x86_64 (MySQL Community Server - GPL)",
                                     "zstd", WHOLE_MARKER])
    assert found == {"server": "9.0.1", "flavor": "mysql", "compression": "zstd",
                     "dump": "mysqldump  Ver 9.0.1 for Linux on x86_64 (MySQL Community Server - GPL)"}


@pytest.mark.parametrize("lines", [
    pytest.param(["mariadb-dump  Ver 10.19 Distrib 10.11.18-MariaDB, for debian-linux-gnu (x86_64)", "zstd"],
                 id="the server did not answer, the dump tool did"),
    pytest.param(["zstd"], id="neither answered"),
])
def test_a_server_whose_version_cannot_be_read_is_refused_not_guessed(lines):
    with pytest.raises(UnknownServer, match="the MySQL server's version could not be read"):
        MysqlVersions().process([*lines, WHOLE_MARKER])
