"""The staging rehearsal: which source host a staging host copies from, what the copy
brings (never the env file) and how it is checked, the steps and their outcomes (with
migrate.py's contract for the release under test), the verdict and the report.

pyinfra itself is replaced by a fake runner that leaves the run records a real run would:
copies of tests/fixtures/runs/ (a succeeded rollback, a failed one)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyinfra.api import DeployError

from pyinfra_deploys.cli import rehearsal as rehearsal_module
from pyinfra_deploys.cli.rehearsal import (
    Finished,
    Plan,
    Rehearsal,
    checked_plan,
    pyinfra_command,
    rehearse,
    release_outcome,
    render_markdown,
    run_record,
    shared_hosts,
    verdict,
    write_rehearsal,
)
from pyinfra_deploys.snapshot_copy import (
    copied_manifest,
    copy_plan,
    differences,
    local_problems,
    source_host_for,
    sudo_read,
)

RUNS = Path(__file__).parent / "fixtures" / "runs"
SUCCEEDED, FAILED = "20261121T130000Z-rollback", "20261121T140000Z-rollback"
SNAPSHOT = "20261121T120000Z-pre-release"
SHA = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("a", "b", "c")}


def fixture(run_id: str) -> dict:
    return json.loads((RUNS / run_id / "record.json").read_text())


# Which source host a staging host copies from


def pick(staging_host="staging-1", staging=("staging-1", "staging-2"), source=("prod-1", "prod-2"),
         holders=("prod-1", "prod-2"), **kwargs):
    asked = []

    def holding():
        asked.append(True)
        return list(holders)

    chosen = source_host_for(staging_host, list(staging), list(source), inventory="inventories/prod.py",
                             snapshot_id=SNAPSHOT, holders=holding, **kwargs)
    return chosen, bool(asked)


def test_a_staging_host_copies_from_the_source_host_its_host_data_names_without_reading_the_others():
    (name, why), asked = pick(pinned="prod-2", chosen="prod-1")
    assert (name, why, asked) == ("prod-2", "host data layra_rehearsal_source", False)


def test_the_source_host_option_applies_when_host_data_names_none():
    (name, why), asked = pick(chosen="prod-2")
    assert (name, why, asked) == ("prod-2", "--data source_host", False)


@pytest.mark.parametrize("key, kwargs", [("host data layra_rehearsal_source", {"pinned": "prod-9"}),
                                         ("--data source_host", {"chosen": "prod-9"})])
def test_a_named_source_host_that_is_not_in_the_source_inventory_is_refused_listing_its_hosts(key, kwargs):
    with pytest.raises(DeployError, match=rf"staging-1: {re.escape(key)}='prod-9' is not a host of "
                                          r"inventories/prod.py \(it has: prod-1, prod-2\)"):
        pick(**kwargs)


def test_the_only_source_host_holding_the_snapshot_is_chosen():
    (name, why), _ = pick(holders=("prod-2",), staging=("staging-1",))
    assert (name, why) == ("prod-2", f"the only host of inventories/prod.py with snapshot {SNAPSHOT}")


def test_with_several_holders_a_staging_host_copies_from_the_source_host_at_its_own_position():
    (name, why), _ = pick(staging_host="staging-2")
    assert (name, why) == ("prod-2", "the same position in both inventories")


def test_several_holders_and_inventories_of_different_sizes_are_refused_naming_the_key_to_set():
    with pytest.raises(DeployError, match=r"staging-1: cannot tell which host of inventories/prod.py to copy .* "
                                          r"\(2 hold it: prod-1, prod-2; 1 staging and 2 source hosts\): "
                                          r"set host data layra_rehearsal_source on each staging host, "
                                          r"or --data source_host=<name>"):
        pick(staging=("staging-1",))


def test_a_snapshot_no_source_host_holds_is_refused_naming_the_inventory():
    with pytest.raises(DeployError, match=rf"no host of inventories/prod.py has snapshot {SNAPSHOT}"):
        pick(holders=())


def test_staging_hosts_that_are_also_production_hosts_by_name_or_address_are_found():
    source = [{"name": "prod-1", "data": {"ssh_hostname": "10.0.0.1"}}, {"name": "prod-2", "data": {}}]
    staging = [{"name": "staging-1", "data": {"ssh_hostname": "10.0.0.1", "ssh_port": 22}},
               {"name": "prod-2", "data": {}}, {"name": "staging-3", "data": {"ssh_hostname": "10.0.0.1",
                                                                                 "ssh_port": 2222}}]
    assert shared_hosts(staging, source) == ["staging-1 (also prod-1 at 10.0.0.1:22)",
                                             "prod-2 (also prod-2 at prod-2:22)"]


# What the copy brings, and how it is checked


def manifest(**files) -> dict:
    return {"id": SNAPSHOT, "host": "prod-1", "stack": {"commit": "a" * 40},
            "files": {name: {"size": 1, "sha256": SHA["a"]} for name in files} or {}, "parts": {}}


def test_the_env_file_never_leaves_production_and_the_copy_says_so():
    source = manifest(**{"mysql.layra.sql.gz": 1, "stack/env": 1, "stack/compose/docker-compose.yml": 1})
    plan = copy_plan(source, SNAPSHOT, "prod-1")
    assert sorted(plan["files"]) == ["mysql.layra.sql.gz", "stack/compose/docker-compose.yml"]
    assert plan["left_out"] == ["stack/env"] and plan["commit"] == "a" * 40
    assert plan["directories"] == ["stack", "stack/compose"]
    copied = json.loads(copied_manifest(source, plan, {"inventory": "inventories/prod.py", "host": "prod-1"}))
    assert "stack/env" not in copied["files"] and copied["id"] == SNAPSHOT and copied["host"] == "prod-1"
    assert copied["copied_from"]["left_out"] == ["stack/env"]
    assert copied["copied_from"]["inventory"] == "inventories/prod.py"


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "stack/../../x", "a//b", "manifest.json", ".verified",
                                  "line\nbreak"])
def test_a_manifest_naming_a_file_outside_the_snapshot_is_refused_before_anything_is_read(name):
    with pytest.raises(DeployError, match="names a file outside it|manifest entry"):
        copy_plan(manifest(**{"ok": 1}) | {"files": {name: {"size": 1, "sha256": SHA["a"]}}}, SNAPSHOT, "prod-1")


def test_a_manifest_entry_without_a_sha256_or_of_another_snapshot_is_refused():
    with pytest.raises(DeployError, match="the manifest entry of a has no size and sha256"):
        copy_plan(manifest() | {"files": {"a": {"size": 1}}}, SNAPSHOT, "prod-1")
    with pytest.raises(DeployError, match="names 'other'"):
        copy_plan(manifest(a=1) | {"id": "other"}, SNAPSHOT, "prod-1")


def test_files_read_from_the_source_are_checked_against_the_manifest_naming_each_bad_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).write_text(name)
    expected = {"a": {"size": 1, "sha256": SHA["a"]}, "b": {"size": 1, "sha256": SHA["c"]},
                "c": {"size": 1, "sha256": SHA["c"]}}
    assert local_problems(tmp_path, expected) == [f"b sha256 {SHA['b'][:12]}... (want {SHA['c'][:12]}...)",
                                                  "c was not read"]
    assert local_problems(tmp_path, {"a": expected["a"]}) == []


def test_a_snapshot_already_on_staging_is_left_alone_only_when_its_checksums_are_the_copys():
    plan = copy_plan(manifest(**{"a": 1, "stack/env": 1}), SNAPSHOT, "prod-1")
    assert differences({"files": plan["files"]}, plan) == []
    other = {"files": {"a": {"size": 1, "sha256": SHA["b"]}, "extra": {"size": 1, "sha256": SHA["a"]}}}
    assert differences(other, plan) == ["a differs", "extra is not in the source's"]


class FakeChannel:
    def __init__(self, data: bytes, status: int, error: bytes = b""):
        self.data, self.status, self.error, self.command, self.closed = data, status, error, None, False

    def exec_command(self, command):
        self.command = command

    def recv(self, size):
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    def recv_exit_status(self):
        return self.status

    def recv_stderr(self, size):
        return self.error[:size]

    def close(self):
        self.closed = True


class FakeSource:
    def __init__(self, channel, **data):
        self.name, self.data, self.channel = "prod-1", data, channel
        transport = type("Transport", (), {"open_session": lambda _: channel})()
        self.connector = type("Connector", (), {"client": type("Client", (), {
            "get_transport": lambda _: transport})()})()


def test_a_source_behind_sudo_is_streamed_through_sudo_cat_and_nothing_is_written_there(tmp_path):
    channel = FakeChannel(b"dump bytes" * 1000, 0)
    out = (tmp_path / "dump").open("wb")
    sudo_read(FakeSource(channel, _sudo=True, _sudo_user="backup"), "/var/backups/layra/x y/dump", out)
    out.close()
    assert (tmp_path / "dump").read_bytes() == b"dump bytes" * 1000
    assert channel.command == "sudo -n -u backup -- cat -- '/var/backups/layra/x y/dump'"
    assert channel.closed


def test_a_sudo_read_that_fails_names_the_host_and_the_file(tmp_path):
    channel = FakeChannel(b"", 1, b"sudo: a password is required")
    with pytest.raises(DeployError, match=r"prod-1: cannot read /r/f with sudo -n: sudo: a password is required"):
        sudo_read(FakeSource(channel, _sudo=True), "/r/f", (tmp_path / "f").open("wb"))
    with pytest.raises(DeployError, match="only _sudo is supported"):
        sudo_read(FakeSource(channel, _su_user="root"), "/r/f", (tmp_path / "g").open("wb"))


# The steps, with a fake pyinfra


class FakePyinfra:
    """Plays each step as pyinfra would: exit status, output, and the run records it leaves.

    ``plays`` maps a deploy (``rehearse.py``, ``rollback.py``, ``migrate.py``) to what its
    runs do, in order: ``"ok"``, ``"fail"``, a fixture run id to record, or a callable."""

    def __init__(self, runs: Path, **plays):
        self.runs, self.plays, self.commands, self.count = runs, {k: list(v) for k, v in plays.items()}, [], 0

    def __call__(self, command, env, log):
        assert env["LAYRA_RUNS_DIR"] == str(self.runs)
        log.write_text("log")
        self.commands.append(command)
        deploy = Path(command[3]).name
        play = self.plays[deploy].pop(0)
        if callable(play):
            return play(self)
        if play in ("ok", "fail"):
            return Finished(0 if play == "ok" else 1, "" if play == "ok" else "--> pyinfra error: copy refused\n")
        return self.record(play)

    def record(self, fixture_id: str, kind: str = "rollback", **extra) -> Finished:
        self.count += 1
        data = fixture(fixture_id) | {"kind": kind} | extra
        data["run_id"] = f"20991231T0000{self.count:02d}Z-{kind}"
        path = self.runs / data["run_id"] / "record.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data))
        status = 0 if data["status"] == "succeeded" else 1
        return Finished(status, f"--> Run {data['run_id']} {data['status']}: record {path}\n")


@pytest.fixture
def plan(tmp_path) -> Plan:
    return Plan("inventories/staging.py", "inventories/prod.py", SNAPSHOT, None, None, tmp_path / "runs",
                ["staging-1"], ["prod-1"])


def rehearse_with(plan: Plan, tmp_path: Path, **plays) -> tuple[dict, FakePyinfra]:
    plan.runs_dir.mkdir(exist_ok=True)
    directory = plan.runs_dir / "20991231T000000Z-rehearsal"
    directory.mkdir(exist_ok=True)
    fake = FakePyinfra(plan.runs_dir, **plays)
    return Rehearsal(plan, directory, runner=fake, echo=lambda text: None).run(), fake


def outcomes(result: dict) -> dict[str, str]:
    return {step["name"]: step["outcome"] for step in result["steps"]}


def test_a_rehearsal_copies_restores_and_rolls_back_and_passes_when_each_rollback_verified_in_time(plan, tmp_path):
    result, fake = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, SUCCEEDED]})
    assert outcomes(result) == {"copy": "ok", "restore": "ok", "release": "skipped", "rollback": "ok"}
    assert (result["status"], result["reasons"]) == ("passed", [])
    assert [command[3] for command in fake.commands] == ["rehearse.py", "rollback.py", "rollback.py"]
    assert fake.commands[0][-4:] == ["--data", f"snapshot={SNAPSHOT}", "--data", "source=inventories/prod.py"]
    assert [(run["step"], run["under_test"]) for run in result["rollback_runs"]] == [("restore", False),
                                                                                     ("rollback", True)]
    assert result["source"] == {"inventory": "inventories/prod.py", "hosts": ["prod-1"], "read_only": True}


def test_a_failed_copy_stops_the_rehearsal_and_nothing_runs_on_staging_after_it(plan, tmp_path):
    result, fake = rehearse_with(plan, tmp_path, **{"rehearse.py": ["fail"]})
    assert outcomes(result) == {"copy": "failed", "restore": "skipped", "release": "skipped", "rollback": "skipped"}
    assert len(fake.commands) == 1
    assert result["status"] == "failed"
    assert result["reasons"] == ["copy: failed (copy refused)"]


def test_a_failed_rollback_run_fails_the_rehearsal_naming_the_run_and_its_checks(plan, tmp_path):
    result, _ = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, FAILED]})
    assert result["status"] == "failed"
    run_id = result["rollback_runs"][1]["run_id"]
    assert f"rollback run {run_id} not verified (failed, 1 of 2 checks failed)" in result["reasons"]
    assert any(reason.startswith(f"rollback run {run_id}: execution at least 5m 18.4s, target < 5m: missed")
               for reason in result["reasons"])


def test_an_execution_over_its_target_fails_an_otherwise_good_rehearsal():
    run = {"step": "rollback", "under_test": True, "run_id": "r", "verified": True, "status": "succeeded",
           "checks": 3, "checks_failed": 0,
           "rto": [{"name": "execution", "seconds": 301.0, "target": 300, "status": "missed", "complete": True,
                    "note": None}]}
    steps = [{"name": "copy", "ok": True, "outcome": "ok", "note": None}]
    assert verdict(steps, [run]) == ["rollback run r: execution 5m 01.0s, target < 5m: missed"]
    assert verdict(steps, [{**run, "rto": [{**run["rto"][0], "seconds": 299.0, "status": "met"}]}]) == []


def test_a_rehearsal_without_a_rollback_under_test_never_passes():
    assert verdict([{"name": "copy", "ok": True, "outcome": "ok", "note": None}], []) == ["no rollback under test ran"]


# The release under test: migrate.py's contract


@pytest.mark.parametrize("returncode, record, expected", [
    (0, None, ("held", None)),
    (1, {"kind": "migrate", "rollback_run": "20261121T130000Z-rollback"}, ("rolled back", "20261121T130000Z-rollback")),
    (1, {"kind": "migrate"}, ("failed", None)),
    (1, None, ("failed", None)),
    (1, {"kind": "migrate", "rollback_run": "../../etc"}, ("failed", None)),
])
def test_the_release_outcome_follows_migrates_exit_status_and_record(returncode, record, expected):
    assert release_outcome(returncode, record) == expected


def test_a_release_that_held_is_rolled_back_by_the_rollback_under_test(plan, tmp_path):
    plan.release, plan.watch_window = "v1.1.0", 60
    result, fake = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, SUCCEEDED],
                                                    "migrate.py": [lambda f: f.record(SUCCEEDED, kind="migrate")]})
    assert outcomes(result) == {"copy": "ok", "restore": "ok", "release": "held", "rollback": "ok"}
    assert fake.commands[2][-4:] == ["--data", "commit=v1.1.0", "--data", "watch_window=60"]
    assert result["status"] == "passed"


def test_a_release_that_rolled_itself_back_is_the_rollback_under_test_and_no_second_rollback_runs(plan, tmp_path):
    plan.release = "v1.1.0"

    def rolled_back(fake):
        rollback = fake.record(SUCCEEDED)
        run_id = re.search(r"--> Run (\S+)", rollback.output).group(1)
        return Finished(1, fake.record(FAILED, kind="migrate", rollback_run=run_id).output)

    result, fake = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED],
                                                    "migrate.py": [rolled_back]})
    assert outcomes(result) == {"copy": "ok", "restore": "ok", "release": "rolled back", "rollback": "skipped"}
    release, rollback = result["steps"][2], result["steps"][3]
    under_test = result["rollback_runs"][-1]
    assert (under_test["step"], under_test["under_test"]) == ("release", True)
    assert release["note"] == f"the release rolled itself back in run {under_test['run_id']}"
    assert rollback["note"] == "the release rolled itself back: that run is the rollback under test"
    assert [Path(command[3]).name for command in fake.commands] == ["rehearse.py", "rollback.py", "migrate.py"]
    assert "watch_window" not in " ".join(fake.commands[2])
    assert result["status"] == "passed"


def test_a_release_that_failed_otherwise_fails_the_rehearsal_but_staging_is_still_rolled_back(plan, tmp_path):
    plan.release = "v1.1.0"
    result, fake = rehearse_with(plan, tmp_path, **{
        "rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, SUCCEEDED],
        "migrate.py": [lambda f: Finished(1, f.record(FAILED, kind="migrate").output)]})
    assert outcomes(result) == {"copy": "ok", "restore": "ok", "release": "failed", "rollback": "ok"}
    assert result["status"] == "failed"
    assert result["reasons"][0].startswith("release: failed")
    assert result["rollback_runs"][-1]["under_test"]


def test_a_release_whose_rollback_run_left_no_record_fails(plan, tmp_path):
    plan.release = "v1.1.0"
    result, _ = rehearse_with(plan, tmp_path, **{
        "rehearse.py": ["ok"], "rollback.py": [SUCCEEDED],
        "migrate.py": [lambda f: Finished(1, f.record(FAILED, kind="migrate",
                                                      rollback_run="20991231T235959Z-rollback").output)]})
    assert result["steps"][2]["ok"] is False
    assert "its rollback run 20991231T235959Z-rollback has no record" in result["steps"][2]["note"]
    assert result["status"] == "failed"


def test_a_run_record_not_named_in_the_output_is_found_in_the_runs_dir_and_older_ones_are_ignored(tmp_path):
    for run_id, kind in (("20261121T120000Z-migrate", "migrate"), ("20261121T130005Z-migrate", "migrate"),
                         ("20261121T130006Z-rollback", "rollback")):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "record.json").write_text(json.dumps({"run_id": run_id, "kind": kind}))
    since = rehearsal_module.report.parse_time("2026-11-21T13:00:00Z")
    record, path = run_record("no run line here", tmp_path, "migrate", since)
    assert record["run_id"] == "20261121T130005Z-migrate" and path.parent.name == record["run_id"]
    later = rehearsal_module.report.parse_time("2026-11-21T14:00:00Z")
    assert run_record("", tmp_path, "migrate", later) == (None, None)


def test_pyinfra_commands_are_the_ones_an_operator_types_and_leave_out_unset_data():
    assert pyinfra_command("inventories/staging.py", "migrate.py", commit="v1.1.0", watch_window=None)[-2:] == [
        "--data", "commit=v1.1.0"]
    assert pyinfra_command("inventories/staging.py", "rollback.py", snapshot=SNAPSHOT)[:3] == [
        "pyinfra", "-y", "inventories/staging.py"]


# Checks before anything runs


@pytest.fixture
def inventories(tmp_path, monkeypatch):
    staging, source = tmp_path / "staging.py", tmp_path / "prod.py"
    staging.write_text("app = ['staging-1']\n")
    source.write_text("app = ['prod-1']\n")
    hosts = {str(staging): [{"name": "staging-1", "data": {}}], str(source): [{"name": "prod-1", "data": {}}]}
    monkeypatch.setattr(rehearsal_module, "inventory_hosts", lambda path: hosts[path])
    return str(staging), str(source), hosts


def test_a_release_needs_migrate_py_and_a_watch_window_needs_a_release(inventories, tmp_path, monkeypatch):
    staging, source, _ = inventories
    monkeypatch.setattr(rehearsal_module, "PROJECT", tmp_path)
    with pytest.raises(Exception, match="--release needs migrate.py"):
        checked_plan(staging, source, SNAPSHOT, "v1.1.0", None, tmp_path / "runs")
    with pytest.raises(Exception, match="only with --release"):
        checked_plan(staging, source, SNAPSHOT, None, 60, tmp_path / "runs")
    (tmp_path / "migrate.py").write_text("")
    assert checked_plan(staging, source, SNAPSHOT, "v1.1.0", 60, tmp_path / "runs").release == "v1.1.0"


def test_staging_and_production_sharing_a_host_or_an_inventory_are_refused_before_anything_runs(inventories, tmp_path):
    staging, source, hosts = inventories
    with pytest.raises(Exception, match="same inventory"):
        checked_plan(staging, staging, SNAPSHOT, None, None, tmp_path / "runs")
    hosts[staging] = [{"name": "prod-1", "data": {}}]
    with pytest.raises(Exception, match="staging and production must not share a host"):
        checked_plan(staging, source, SNAPSHOT, None, None, tmp_path / "runs")
    with pytest.raises(Exception, match="not a snapshot id"):
        checked_plan(staging, source, "latest/../x", None, None, tmp_path / "runs")


def test_the_command_exits_0_on_pass_1_on_fail_and_prints_the_report_path(inventories, tmp_path, monkeypatch):
    staging, source, _ = inventories
    for plays, code in (({"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, SUCCEEDED]}, 0),
                        ({"rehearse.py": ["fail"]}, 1)):
        runs = tmp_path / f"runs-{code}"
        monkeypatch.setattr(rehearsal_module, "stream_pyinfra", FakePyinfra(runs.resolve(), **plays))
        result = CliRunner().invoke(rehearse, ["--staging", staging, "--source", source, "--snapshot", SNAPSHOT,
                                               "--runs-dir", str(runs)])
        assert result.exit_code == code, result.output
        path = Path(result.stdout.strip().splitlines()[-1])
        assert path.name == "rehearsal.md" and path.is_file()
        assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
        assert json.loads((path.parent / "rehearsal.json").read_text())["status"] == ("passed", "failed")[code]


# The report


def test_the_report_names_every_step_every_phase_of_each_rollback_run_and_the_rto_verdict(plan, tmp_path):
    result, _ = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, SUCCEEDED]})
    markdown = render_markdown(result)
    assert markdown.startswith("# Layra rollback rehearsal 20991231T000000Z-rehearsal: PASS")
    for step in ("copy", "restore", "rollback"):
        assert re.search(rf"^\| \d \| {step} \| [\d:.]+Z \| \d+\.\ds \| ok \|", markdown, re.M), step
    assert re.search(r"^\| 3 \| release \| - \| - \| skipped \| - \| no --release", markdown, re.M)
    assert "## Restore of staging to the snapshot: run " in markdown and "## Rollback under test: run " in markdown
    for phase in fixture(SUCCEEDED)["phases"]:
        assert len(re.findall(rf"^{phase}\s+\+[\dm .]+s\s+[\dm .]+s$", markdown, re.M)) == 2, phase
    assert markdown.count("| execution | 3m 16.1s | < 5m | met |") == 2
    assert "> source prod-1: read only — fingerprints/snapshots not written" in markdown


def test_a_rollback_that_changed_nothing_says_its_times_do_not_measure_a_restore(plan, tmp_path):
    def unchanged(fake):
        data = fixture(SUCCEEDED)
        for entry in data["hosts"].values():
            for op in entry["operations"]:
                op["changed"] = False
        fake.count += 1
        path = fake.runs / f"20991231T0000{fake.count:02d}Z-rollback" / "record.json"
        path.parent.mkdir()
        path.write_text(json.dumps(data | {"run_id": path.parent.name}))
        return Finished(0, f"--> Run {path.parent.name} succeeded: record {path}\n")

    result, _ = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [SUCCEEDED, unchanged]})
    assert "no: staging was already at the snapshot, so this run's times do not measure a restore" in \
        render_markdown(result)


def test_a_failed_rehearsal_report_lists_why_and_a_host_left_in_maintenance(plan, tmp_path):
    result, _ = rehearse_with(plan, tmp_path, **{"rehearse.py": ["ok"], "rollback.py": [FAILED]})
    path = write_rehearsal(result, plan.runs_dir / "20991231T000000Z-rehearsal")
    markdown = path.read_text()
    assert markdown.startswith("# Layra rollback rehearsal 20991231T000000Z-rehearsal: FAIL")
    assert "  - restore: failed" in markdown
    assert "!!! MAINTENANCE MODE IS STILL ON on sandbox-1" in markdown
    assert "No rollback run" not in markdown
    assert json.loads((path.parent / "rehearsal.json").read_text())["reasons"] == result["reasons"]
