"""Snapshot ids, retention, what the snapshot operations decide when executing, and the
`snapshots` CLI (with pyinfra's subprocess stubbed; tests/e2e runs it for real)."""

from __future__ import annotations

import json
import shlex
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from facts.snapshots import label_of, new_snapshot_id, valid_snapshot_id
from operations import snapshots as ops
from operations.snapshots import build_manifest, snapshot_problems, to_prune
from pyinfra_deploys.cli import snapshots as cli

ROOT = "/var/backups/layra"
SID = "20261121T130000Z-pre-migration"


# Ids


@pytest.mark.parametrize("snapshot_id", [
    "20261121T130000Z-pre-migration", "a", "A.b_c-1", "9" * 128, "manual-2026.11.21",
])
def test_ids_of_letters_digits_dots_underscores_and_dashes_are_valid(snapshot_id):
    assert valid_snapshot_id(snapshot_id)


@pytest.mark.parametrize("snapshot_id", [
    "../etc", "a;b", "x y", "$(id)", "abc\n", "a/b", "", ".hidden", "-rf", "_x", "a" * 129,
    "snap.partial", "é", None, 20261121,
])
def test_ids_that_could_escape_the_root_or_the_shell_are_invalid(snapshot_id):
    assert not valid_snapshot_id(snapshot_id)


def test_a_new_id_is_the_utc_time_and_the_label():
    now = datetime(2026, 11, 21, 14, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert new_snapshot_id("pre-migration", now) == "20261121T130000Z-pre-migration"


def test_a_new_id_without_a_label_is_only_the_time_and_a_naive_time_is_utc():
    assert new_snapshot_id(None, datetime(2026, 11, 21, 13, 0, 0)) == "20261121T130000Z"


# "" is `--data label=$UNSET`: a mistake, not "no label". "x.partial" would name an unfinished snapshot.
@pytest.mark.parametrize("label", ["pre migration", "../x", "a;b", "x" * 65, "nightly\n", "", "x.partial"])
def test_a_new_id_refuses_a_bad_label_naming_it(label):
    with pytest.raises(ValueError) as error:
        new_snapshot_id(label, datetime(2026, 11, 21, tzinfo=timezone.utc))
    assert repr(label) in str(error.value)


def test_every_generated_id_is_valid_and_gives_its_label_back():
    snapshot_id = new_snapshot_id("x" * 64, datetime(2026, 11, 21, tzinfo=timezone.utc))
    assert valid_snapshot_id(snapshot_id)
    assert label_of(snapshot_id) == "x" * 64
    assert label_of("20261121T130000Z") == label_of("manual") == ""


# Retention


def catalog_of(*entries, partials=()):
    """Entries ``(id, created, verified)`` -> a SnapshotCatalog fact."""
    return {
        "snapshots": {
            sid: {"created": created, "label": "", "commit": None, "size": 1, "parts": ["p"], "host": "h",
                  "verified_at": "2026-11-30T00:00:00Z" if verified else None}
            for sid, created, verified in entries
        },
        "partials": list(partials),
        "broken": [],
    }


DAYS = [(f"202611{day:02d}T010000Z-nightly", f"2026-11-{day:02d}T01:00:00Z", False) for day in range(1, 6)]


def test_prune_keeps_the_newest_n_and_removes_the_rest_oldest_first():
    assert to_prune(catalog_of(*DAYS), keep=2) == [DAYS[0][0], DAYS[1][0], DAYS[2][0]]


def test_prune_never_removes_the_newest_snapshot():
    assert DAYS[-1][0] not in to_prune(catalog_of(*DAYS), keep=1)
    assert to_prune(catalog_of(DAYS[0]), keep=1) == []


def test_prune_keeps_the_newest_verified_snapshot_when_newer_ones_fill_keep():
    entries = [(sid, created, index in (0, 1)) for index, (sid, created, _) in enumerate(DAYS)]
    assert to_prune(catalog_of(*entries), keep=2) == [DAYS[0][0], DAYS[2][0]]


def test_prune_orders_by_created_then_id_not_by_name_alone():
    entries = [("zzz-manual", "2026-11-01T00:00:00Z", False), ("aaa-manual", "2026-11-02T00:00:00Z", False),
               ("bbb-same-time", "2026-11-02T00:00:00Z", False)]
    assert to_prune(catalog_of(*entries), keep=1) == ["zzz-manual", "aaa-manual"]


def test_prune_of_an_empty_catalog_removes_nothing():
    assert to_prune(catalog_of(), keep=1) == []


@pytest.mark.parametrize("keep", [0, -1, True, "3", 1.5])
def test_prune_refuses_to_keep_fewer_than_one_snapshot(keep):
    with pytest.raises(ValueError):
        to_prune(catalog_of(*DAYS), keep=keep)


# What the operations decide on their executing pass (pyinfra-testing only plans)


def executing(op, facts: dict, host_name: str = "sandbox-1", **kwargs) -> list:
    state = FakeState()
    state.is_executing = True
    host = create_host(state, facts=facts)
    host.name = host_name
    with ctx_state.use(state), ctx_host.use(host):
        return list(op._inner(**kwargs))


PARTIAL = f"{ROOT}/{SID}.partial"
DESCRIPTOR = {"component": "mysql", "file": "mysql.layra.sql.gz"}
FILES = {"mysql.layra.json": {"size": 50, "sha256": "a" * 64}, "mysql.layra.sql.gz": {"size": 900, "sha256": "b" * 64}}


def files_fact(files=FILES, parts=None, invalid=()):
    return {"files": files, "parts": {"mysql.layra": DESCRIPTOR} if parts is None else parts,
            "modes": {name: "600" for name in files}, "invalid_parts": list(invalid), "verified_at": None}


def completion_facts(files):
    return {"snapshots.SnapshotManifest": {f"root={ROOT}, snapshot_id={SID}": None},
            "snapshots.SnapshotFiles": {f"directory={PARTIAL}": files}}


@pytest.mark.parametrize("files, reason", [
    (None, f"{PARTIAL} does not exist (run snapshots.started first)"),
    (files_fact(files={}, parts={}), f"nothing was written into {PARTIAL}"),
    (files_fact(parts={}, invalid=["mysql.layra"]), "part descriptor mysql.layra.json is not a JSON object"),
    (files_fact(files={"mysql.layra.json": FILES["mysql.layra.json"]}),
     "part mysql.layra names file 'mysql.layra.sql.gz', which is not there"),
])
def test_completing_fails_the_host_naming_why_when_the_parts_are_not_there(files, reason):
    commands = executing(ops.completed, completion_facts(files), root=ROOT, snapshot_id=SID, metadata={})
    assert [command.get_raw_value() for command in commands] == [
        f"echo {shlex.quote(f'snapshot {SID} cannot be completed: {reason}')} >&2; exit 1"]


def test_completing_writes_a_manifest_of_every_file_and_part_with_the_host_and_the_time():
    commands = executing(ops.completed, completion_facts(files_fact()), root=ROOT, snapshot_id=SID,
                         metadata={"stack": {"commit": "1f0c2d9"}})
    # written by the command itself (no SFTP): umask 077; printf '%s' '<manifest>' > <path>
    words = shlex.split(commands[0].get_raw_value())
    assert words[:4] == ["umask", "077;", "printf", "%s"] and words[5:] == [">", f"{PARTIAL}/manifest.json"]
    manifest = json.loads(words[4])
    created = datetime.strptime(manifest.pop("created"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)
    assert manifest == {"format": 1, "id": SID, "label": "pre-migration", "host": "sandbox-1",
                        "stack": {"commit": "1f0c2d9"}, "files": FILES, "parts": {"mysql.layra": DESCRIPTOR}}
    assert commands[-1].get_raw_value() == f"mv -T -- {PARTIAL} {ROOT}/{SID}"


def test_verifying_a_pending_snapshot_that_is_still_missing_when_executing_fails_that_host_alone_naming_it():
    facts = {"snapshots.SnapshotManifest": {f"root={ROOT}, snapshot_id={SID}": None},
             "snapshots.SnapshotCatalog": {f"root={ROOT}": catalog_of()}}
    # raised while the run executes, the refusal is the host's failure, not the run's end
    commands = executing(ops.verified, facts, root=ROOT, snapshot_id=SID, pending=True)
    assert [command.get_raw_value() for command in commands] == [
        f"echo {shlex.quote(f'no snapshot {SID} under {ROOT} (there are none)')} >&2; exit 1"]


def test_a_manifest_that_names_another_snapshot_is_a_problem():
    manifest = build_manifest("other", {}, files_fact(), "h", datetime(2026, 11, 21, tzinfo=timezone.utc))
    assert snapshot_problems(SID, manifest, files_fact()) == ["manifest.json names snapshot 'other'"]
    assert snapshot_problems("other", manifest, files_fact()) == []


# The CLI


def completed_process(stdout="", stderr="", returncode=0):
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


INVENTORY_HOSTS = [
    {"name": "app-1", "groups": ["app"], "data": {}},
    {"name": "app-2", "groups": ["app"], "data": {"layra_snapshot_root": "/srv/snaps"}},
    {"name": "db-1", "groups": ["db"], "data": {}},
]


def test_hosts_are_grouped_into_one_pyinfra_run_per_snapshot_root():
    assert cli.runs_by_root(INVENTORY_HOSTS, (), None) == [
        ("/srv/snaps", ("app-2",)), ("/var/backups/layra", ("app-1", "db-1"))]


def test_hosts_sharing_a_root_keep_the_operators_own_limit():
    assert cli.runs_by_root(INVENTORY_HOSTS, ("db",), None) == [("/var/backups/layra", ("db",))]
    assert cli.runs_by_root(INVENTORY_HOSTS, ("app-*",), "/x") == [("/x", ("app-*",))]


def test_sizes_read_in_binary_units():
    assert [cli.human_size(n) for n in (0, 1023, 1536, 5 * 1024 ** 3)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """Stub pyinfra: answers by the arguments it is run with; records every run."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text("hosts = ['sandbox-2']\n")
    calls, answers = [], {}

    def fake(inventory_path, *arguments, limit=(), verbose=False):
        calls.append((arguments, limit))
        for key, answer in answers.items():
            if key in arguments:
                return answer
        raise AssertionError(f"unexpected pyinfra run: {arguments}")

    monkeypatch.setattr(cli, "pyinfra", fake)
    return str(inventory), calls, answers


def catalog_answer(catalog):
    return completed_process(json.dumps({"facts.snapshots.SnapshotCatalog (root=/r)": {"sandbox-2": catalog}}))


def test_list_prints_a_table_per_host_with_short_commit_and_human_size(runs):
    inventory, calls, answers = runs
    catalog = catalog_of(*DAYS[:2], partials=["20261122T010000Z-x"])
    catalog["snapshots"][DAYS[0][0]].update(commit="1f0c2d9a4b5e6f70", size=3 * 1024 * 1024, label="nightly")
    answers["fact"] = catalog_answer(catalog)

    result = CliRunner().invoke(cli.snapshots, ["list", inventory, "--root", "/r", "--limit", "sandbox-2"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "sandbox-2  /r"
    assert lines[2].split() == [DAYS[0][0], "2026-11-01T01:00:00Z", "nightly", "1f0c2d9", "3.0", "MiB", "p", "no"]
    assert "partial: 20261122T010000Z-x" in result.output
    assert calls == [(("fact", "facts.snapshots.SnapshotCatalog", "root=/r", "--json"), ("sandbox-2",))]


def test_list_json_is_the_catalog_by_host_with_its_root(runs):
    inventory, calls, answers = runs
    answers["fact"] = catalog_answer(catalog_of(DAYS[0]))
    result = CliRunner().invoke(cli.snapshots, ["list", inventory, "--root", "/r", "--json"])
    assert json.loads(result.output) == {"sandbox-2": {"root": "/r", **catalog_of(DAYS[0])}}


def test_verify_exits_non_zero_naming_each_bad_file(runs):
    inventory, calls, answers = runs
    answers["operations.snapshots.verified"] = completed_process(stderr="\n".join([
        f"    [sandbox-2] snapshot {SID}: mysql.layra.sql.gz sha256 92ff0c043eb7... (want 259491629f33...)",
        f"    [sandbox-2] snapshot {SID}: stack/commit is missing",
        f"[sandbox-2] snapshot {SID} does not match its manifest (3 files): ...",
        "--> pyinfra error: No hosts remaining!",
    ]), returncode=1)

    result = CliRunner().invoke(cli.snapshots, ["verify", inventory, SID, "--root", "/r"])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"sandbox-2: snapshot {SID}: mysql.layra.sql.gz sha256 92ff0c043eb7... (want 259491629f33...)",
        f"sandbox-2: snapshot {SID}: stack/commit is missing",
    ]
    assert json.loads(calls[0][0][1]) == [[], {"root": "/r", "snapshot_id": SID}]


def test_verify_says_why_pyinfra_refused_an_unknown_snapshot(runs):
    inventory, calls, answers = runs
    answers["operations.snapshots.verified"] = completed_process(
        stderr="--> Operation error in /x/operations/snapshots.py line 344: no snapshot x under /r (there are none)",
        returncode=1)
    result = CliRunner().invoke(cli.snapshots, ["verify", inventory, "x", "--root", "/r"])
    assert result.exit_code == 1
    assert "error: no snapshot x under /r (there are none)" in result.output


def test_verify_refuses_a_bad_id_without_running_pyinfra(runs):
    inventory, calls, answers = runs
    result = CliRunner().invoke(cli.snapshots, ["verify", inventory, "../etc"])
    assert result.exit_code == 2 and "'../etc' is not a snapshot id" in result.output
    assert calls == []


def test_prune_dry_run_shows_what_goes_and_removes_nothing(runs):
    inventory, calls, answers = runs
    answers["fact"] = catalog_answer(catalog_of(*DAYS, partials=["20261122T010000Z-x"]))

    result = CliRunner().invoke(cli.snapshots, ["prune", inventory, "--keep", "3", "--root", "/r", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"sandbox-2: remove {DAYS[0][0]} (created 2026-11-01T01:00:00Z, 1 B)",
        f"sandbox-2: remove {DAYS[1][0]} (created 2026-11-02T01:00:00Z, 1 B)",
        "sandbox-2: remove 20261122T010000Z-x.partial (unfinished)",
        "sandbox-2: keep 3 snapshots under /r",
        "dry run: nothing removed",
    ]
    assert [arguments[0] for arguments, _ in calls] == ["fact"]


def test_prune_runs_the_pruned_operation_with_keep_as_a_number(runs):
    inventory, calls, answers = runs
    answers["fact"] = catalog_answer(catalog_of(*DAYS))
    answers["operations.snapshots.pruned"] = completed_process(
        stderr=f"    [sandbox-2] prune snapshot {DAYS[0][0]} (created 2026-11-01T01:00:00Z)")

    result = CliRunner().invoke(cli.snapshots, ["prune", inventory, "--keep", "4", "--root", "/r"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"sandbox-2: prune snapshot {DAYS[0][0]} (created 2026-11-01T01:00:00Z)"
    assert json.loads(calls[-1][0][1]) == [[], {"root": "/r", "keep": 4}]


def test_prune_refuses_keep_zero():
    result = CliRunner().invoke(cli.snapshots, ["prune", __file__, "--keep", "0"])
    assert result.exit_code == 2
