"""The run report: RTO figures from a record, the Markdown and HTML reports, the post-mortem
draft, finding a run, and the `report` CLI. Records are tests/fixtures/runs/<run id>/record.json:
a succeeded two-host rollback, a failed one (a host unreachable, a phase-4 check failed,
maintenance left on) and a "running" one whose process died inside the safety snapshot."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyinfra_deploys import report
from pyinfra_deploys.cli import main

RUNS = Path(__file__).parent / "fixtures" / "runs"
SUCCEEDED, FAILED, RUNNING = "20261121T130000Z-rollback", "20261121T140000Z-rollback", "20261121T150000Z-rollback"


def record(run_id: str) -> dict:
    return json.loads((RUNS / run_id / "record.json").read_text())


def figures(data: dict) -> dict[str, dict]:
    return {item["name"]: item for item in report.rto(data)}


@pytest.fixture
def runs(tmp_path) -> Path:
    """A copy of the fixture runs: the CLI writes its reports beside each record."""
    shutil.copytree(RUNS, tmp_path / "runs")
    return tmp_path / "runs"


# Times


@pytest.mark.parametrize("value, expected", [
    ("2026-11-21T13:00:00Z", "2026-11-21 13:00:00+00:00"),
    ("2026-11-21T13:00:00.25Z", "2026-11-21 13:00:00.250000+00:00"),
    ("2026-11-21T14:00:00+01:00", "2026-11-21 13:00:00+00:00"),
    ("2026-11-21T13:00:00", "2026-11-21 13:00:00+00:00"),
])
def test_times_are_read_as_utc_with_or_without_fractional_seconds(value, expected):
    assert str(report.parse_time(value)) == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", 1732194000, {"at": "x"}])
def test_an_unreadable_time_is_no_time(value):
    assert report.parse_time(value) is None


@pytest.mark.parametrize("seconds, text", [(3.21, "3.2s"), (0, "0.0s"), (59.94, "59.9s"), (250, "4m 10.0s"),
                                           (119.96, "2m 00.0s"), (None, "not recorded")])
def test_durations_read_as_seconds_then_minutes(seconds, text):
    assert report.duration(seconds) == text


# RTO figures


def test_a_succeeded_run_meets_or_misses_each_target_by_its_own_duration():
    rto = figures(record(SUCCEEDED))
    assert {name: (round(item["seconds"], 1), item["target"], item["status"]) for name, item in rto.items()} == {
        "detection": (40.0, 60, "met"),
        "decision": (150.0, 120, "missed"),       # detected 12:57:10, decided 12:59:40
        "execution": (196.1, 300, "met"),         # maintenance on 13:00:00 -> off ended 13:03:16.1
        "verification": (14.8, 180, "met"),       # integrity 13:03:11 -> functionality ended 13:03:25.8
        "total": (415.8, 600, "met"),             # incident 12:56:30 -> verified 13:03:25.8
    }


def test_an_unknown_detection_time_is_shown_as_not_recorded_never_as_met():
    failed = record(FAILED)
    rto = figures(failed)
    assert rto["detection"]["status"] == rto["decision"]["status"] == "unknown"
    assert rto["detection"]["seconds"] is None
    assert rto["detection"]["note"].startswith("no detection time: a manual run; the watcher records it")
    markdown, html = report.render_markdown(failed), report.render_html(failed)
    row = next(line for line in markdown.splitlines() if line.startswith("| detection |"))
    assert row.startswith("| detection | not recorded | < 1m | unknown | no detection time: a manual run")
    assert "0.0s" not in row and "met" not in row.split("|")[4]
    assert re.search(r"<td>detection</td><td>not recorded</td><td>&lt; 1m</td><td class=\"unknown\">unknown</td>", html)


def test_detection_without_an_incident_start_names_the_missing_time():
    rto = figures(record(RUNNING))
    assert rto["detection"]["status"] == "unknown"
    assert "no incident start time" in rto["detection"]["note"]


def test_decision_runs_until_the_run_started_when_no_decision_time_was_recorded():
    decision = figures(record(RUNNING))["decision"]   # detected 14:59:20, run started 15:00:00
    assert (decision["seconds"], decision["status"]) == (40.0, "met")
    assert decision["note"] == "until the run started (no decision time recorded)"


def test_execution_of_a_stopped_run_already_over_its_target_is_missed_and_under_it_unknown():
    failed, running = figures(record(FAILED))["execution"], figures(record(RUNNING))["execution"]
    assert (round(failed["seconds"], 1), failed["status"], failed["complete"]) == (318.4, "missed", False)
    assert (running["seconds"], running["status"]) == (1.8, "unknown")
    assert "incomplete" in running["note"]


def test_a_failed_run_never_meets_verification_or_total_even_when_fast():
    rto = figures(record(FAILED))
    assert rto["verification"]["status"] == rto["total"]["status"] == "unknown"
    assert rto["verification"]["note"] == "incomplete: sandbox-2 unreachable; 1 check failed"


def test_a_run_that_never_verified_has_no_verification_time():
    verification = figures(record(RUNNING))["verification"]
    assert (verification["seconds"], verification["status"]) == (None, "unknown")
    assert verification["note"].startswith("no verification phase recorded")


def test_total_starts_at_the_incident_else_at_detection_else_at_the_run_start():
    data = record(SUCCEEDED)
    assert figures(data)["total"]["note"] is None
    data["incident"]["started_at"] = None
    total = figures(data)["total"]
    assert (round(total["seconds"], 1), total["note"]) == (375.8, "from detection: no incident start recorded")
    data["incident"]["detected_at"] = None
    total = figures(data)["total"]
    assert (round(total["seconds"], 1), total["note"]) == (205.8, "from the run's start: no incident times recorded")


def test_times_out_of_order_are_unknown_not_negative():
    data = record(SUCCEEDED)
    data["incident"]["detected_at"] = "2026-11-21T12:50:00Z"   # before the incident started
    detection = figures(data)["detection"]
    assert (detection["seconds"], detection["status"]) == (None, "unknown")
    assert detection["note"].startswith("times out of order")


def test_a_verify_run_has_no_execution_time_and_says_why():
    data = record(SUCCEEDED)
    data["kind"] = "verify"
    data["phases"] = {name: span for name, span in data["phases"].items() if name.startswith("verify_")}
    rto = figures(data)
    assert (rto["execution"]["status"], rto["execution"]["note"]) == ("unknown", "a verify run executes nothing")
    assert rto["verification"]["status"] == "met"


def test_phases_come_from_the_operations_when_a_partial_record_has_none():
    data = record(RUNNING)
    del data["phases"]
    spans = report.phase_spans(data)
    assert [(s["name"], s["offset"], s["seconds"]) for s in spans] == [
        ("maintenance_on", 0.0, 1.8), ("safety_snapshot", 1.8, None)]


# The Markdown report


def test_every_phase_appears_in_the_markdown_timeline_with_its_offset_and_duration():
    markdown = report.render_markdown(record(SUCCEEDED))
    timeline = markdown.split("## Timeline")[1].split("## Hosts")[0]
    for name, offset, took in [
        ("maintenance_on", "+0.0s", "3.2s"), ("safety_snapshot", "+3.2s", "38.3s"),
        ("stack", "+41.5s", "1m 13.5s"), ("restore", "+1m 55.0s", "1m 15.4s"), ("caches", "+3m 10.4s", "0.6s"),
        ("verify_integrity", "+3m 11.0s", "3.6s"), ("maintenance_off", "+3m 14.6s", "1.5s"),
        ("verify_infrastructure", "+3m 16.1s", "2.9s"), ("verify_connectivity", "+3m 19.0s", "2.3s"),
        ("verify_functionality", "+3m 21.3s", "4.5s"),
    ]:
        assert re.search(rf"^{name}\s+{re.escape(offset)}\s+{re.escape(took)}$", timeline, re.M), name


def test_the_markdown_report_names_the_run_its_target_and_each_host():
    markdown = report.render_markdown(record(SUCCEEDED))
    assert markdown.startswith("# Layra rollback 20261121T130000Z-rollback: SUCCEEDED\n")
    for fact in ["- **Who:** alice@ops-laptop", "- **Target snapshot:** `20261121T120000Z-pre-release`",
                 "- **Target commit:** `v1.0.0`", "- **Tag:** `rollback-20261121T130000Z`",
                 "- **Command:** `pyinfra inventories/prod.py rollback.py --data snapshot=20261121T120000Z-pre-release",
                 "### sandbox-1: succeeded", "### sandbox-2: succeeded",
                 "- **Safety snapshot:** `20261121T130000Z-safety-before-rollback`",
                 "  knowledge_bases: 5 -> 3 rows",
                 "| Restore 2 components from 20261121T120000Z-pre-release | restore | 1m 15.4s | yes | ok |  |",
                 "| 4 | mysql/layra fingerprint | 5 tables, 3 knowledge_bases rows | 5 tables, 3 knowledge_bases rows | ok |",
                 "| decision | 2m 30.0s | < 2m | MISSED |  |"]:
        assert fact in markdown
    assert "## What failed" not in markdown and "MAINTENANCE MODE IS STILL ON" not in markdown


def test_a_failed_run_lists_its_failed_checks_first_under_what_failed():
    markdown = report.render_markdown(record(FAILED))
    failed = markdown.split("## What failed\n\n")[1].split("\n## ")[0]
    assert failed.splitlines()[:3] == [
        "| Host | Phase | Check | Observed | Expected |",
        "|------|-------|-------|----------|----------|",
        "| sandbox-1 | 4 | mysql/layra fingerprint | 4 knowledge_bases rows, differs from the snapshot "
        "&lt;script>alert(1)&lt;/script> | 3 knowledge_bases rows |",
    ]
    assert "- **sandbox-2** unreachable: could not connect: timed out after 10s (sandbox-2:22)" in failed
    assert markdown.index("## What failed") < markdown.index("## Recovery time (RTO)")


def test_a_host_left_in_maintenance_is_shouted_with_the_command_that_lifts_it():
    lift = "pyinfra inventories/prod.py maintenance.py --data maintenance=off --limit sandbox-1"
    data = record(FAILED)
    markdown, html, postmortem = report.render_markdown(data), report.render_html(data), report.render_postmortem(data)
    shout = "> **!!! MAINTENANCE MODE IS STILL ON on sandbox-1: writes are answered 503.**"
    assert shout in markdown and markdown.index(shout) < markdown.index("## What failed")
    assert f"> Lift it once the host is sound: `{lift}`" in markdown
    assert re.search(r'<div class="alarm"><strong>MAINTENANCE MODE IS STILL ON on sandbox-1', html)
    assert f"<code>{lift}</code>" in html
    assert "MAINTENANCE MODE IS STILL ON on sandbox-1" in postmortem and lift in postmortem
    assert "on sandbox-2" not in markdown.split("## What failed")[0]


def test_a_host_left_in_maintenance_without_a_lift_command_gets_the_deploys_own():
    markdown = report.render_markdown(record(RUNNING))
    assert "`pyinfra INVENTORY maintenance.py --data maintenance=off --limit sandbox-1`" in markdown


def test_a_running_record_says_it_has_no_end_and_names_the_unfinished_operation():
    markdown = report.render_markdown(record(RUNNING))
    assert "# Layra rollback 20261121T150000Z-rollback: RUNNING" in markdown
    assert "- **Ended:** not recorded (no end: the run is still going, or its process died)" in markdown
    assert re.search(r"^safety_snapshot\s+\+1\.8s\s+no end$", markdown, re.M)
    assert "- sandbox-1: operation `Safety snapshot` never finished (the run stopped inside it)" in markdown
    assert "| verification | not recorded | < 3m | unknown | no verification phase recorded" in markdown


@pytest.mark.parametrize("data", [
    {},
    {"run_id": "x", "status": "failed", "incident": "junk", "hosts": {"h": None}, "phases": {"stack": None}},
    {"hosts": {"h": {"operations": [{"phase": "stack", "started_at": "garbage"}, None],
                     "checks": [None, {"ok": "yes"}], "plan": None, "groups": "app"}}},
    {"run_id": "y", "phases": {"stack": {"started_at": "2026-11-21T13:00:00Z", "ended_at": None}}},
], ids=["empty", "wrong types", "garbage operations", "one open phase"])
def test_a_partial_or_damaged_record_renders_every_output_without_crashing(data):
    for render in (report.render_markdown, report.render_html, report.render_postmortem):
        assert render(data)
    assert [item["status"] for item in report.rto(data)][:2] == ["unknown", "unknown"]


def test_a_pipe_or_newline_in_a_value_stays_inside_its_markdown_cell():
    data = record(FAILED)
    data["hosts"]["sandbox-1"]["checks"][1]["observed"] = "a | b\nc"
    assert "| 4 | redis/rdb fingerprint | a \\| b c | 812 keys | ok |" in report.render_markdown(data)


def test_plan_lines_keep_their_indentation_inside_a_fence_longer_than_any_backticks_in_them():
    data = record(FAILED)
    data["hosts"]["sandbox-1"]["plan"].append("  odd ``` line")
    markdown = report.render_markdown(data)
    assert "````text\nstack: commit 9f8e7d1 -> a1b2c3d (1 commit undone)\n  - 9f8e7d1 release 1.1.0\n" in markdown
    assert "  odd ``` line\n````\n" in markdown


# The HTML report


def test_every_phase_appears_in_the_html_with_its_duration():
    html = report.render_html(record(SUCCEEDED))
    for name, took in [("maintenance_on", "3.2s"), ("safety_snapshot", "38.3s"), ("stack", "1m 13.5s"),
                       ("restore", "1m 15.4s"), ("caches", "0.6s"), ("verify_integrity", "3.6s"),
                       ("maintenance_off", "1.5s"), ("verify_infrastructure", "2.9s"),
                       ("verify_connectivity", "2.3s"), ("verify_functionality", "4.5s")]:
        assert re.search(rf"<tr><td>{name}</td><td>[^<]+</td><td>[^<]+</td><td>{re.escape(took)}</td></tr>", html), name
        assert f"<title>{name}: {took}</title>" in html


@pytest.mark.parametrize("run_id, phases", [(SUCCEEDED, 10), (FAILED, 6), (RUNNING, 2)])
def test_the_svg_timeline_has_one_bar_per_phase(run_id, phases):
    html = report.render_html(record(run_id))
    timeline = re.search(r'<svg class="timeline".*?</svg>', html, re.S).group(0)
    bars = re.findall(r'<rect class="phase-bar[^"]*" data-phase="([^"]+)"', timeline)
    assert bars == [span["name"] for span in report.phase_spans(record(run_id))]
    assert len(bars) == phases


def test_a_phase_with_no_end_is_drawn_open():
    html = report.render_html(record(RUNNING))
    assert re.search(r'<rect class="phase-bar open" data-phase="safety_snapshot"', html)
    assert re.search(r'<rect class="phase-bar" data-phase="maintenance_on"', html)


def test_phase_bars_start_at_their_offset_on_one_time_axis():
    chart = report.timeline_chart(report.phase_spans(record(SUCCEEDED)))
    bars = {bar["name"]: bar for bar in chart["bars"]}
    assert bars["maintenance_on"]["x"] == chart["left"]
    # 3m 30s axis: the stack starts 41.5 s in, the restore 115 s in
    scale = (chart["right"] - chart["left"]) / 210
    assert bars["stack"]["x"] == pytest.approx(chart["left"] + 41.5 * scale, abs=0.1)
    assert bars["restore"]["width"] == pytest.approx(75.4 * scale, abs=0.1)
    assert [tick["label"] for tick in chart["ticks"]] == ["0s", "30s", "1m", "1m 30s", "2m", "2m 30s", "3m", "3m 30s"]


def test_the_rto_chart_colors_each_bucket_and_marks_its_target():
    html = report.render_html(record(FAILED))
    chart = re.search(r'<svg class="rto-chart".*?</svg>', html, re.S).group(0)
    assert re.findall(r'<rect class="rto-bar (\w+)"', chart) == ["missed", "unknown", "unknown"]  # execution, verification, total
    assert len(re.findall(r'<line class="rto-target"', chart)) == 5
    assert "not recorded / &lt; 1m" in chart and "at least 5m 18.4s / &lt; 5m" in chart
    succeeded = report.render_html(record(SUCCEEDED))
    assert re.findall(r'<rect class="rto-bar (\w+)"', succeeded) == ["met", "missed", "met", "met", "met"]


def test_html_escapes_a_script_in_a_checks_observed_value():
    html = report.render_html(record(FAILED))
    assert "<script" not in html
    assert "differs from the snapshot &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_escapes_values_in_attributes_and_svg_text_too():
    data = record(SUCCEEDED)
    data["status"] = '"><img src=x onerror=alert(1)>'
    data["phases"]['"><b>'] = data["phases"].pop("caches")
    html = report.render_html(data)
    assert "<img" not in html and "<b>" not in html
    assert 'data-phase="&#34;&gt;&lt;b&gt;"' in html


def test_the_html_report_is_self_contained():
    html = report.render_html(record(SUCCEEDED))
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"<script|<link|\bsrc=|\bhref=|@import|url\(|https?://", html)


# The post-mortem draft


def test_the_postmortem_has_the_runbooks_sections_in_order():
    postmortem = report.render_postmortem(record(SUCCEEDED))
    sections = re.findall(r"^## (.+)$", postmortem, re.M)
    assert sections == ["Incident Summary", "Root Cause Analysis", "Resolution", "Prevention", "Re-migration Plan"]


def test_the_postmortem_fills_the_incident_summary_from_the_record():
    postmortem = report.render_postmortem(record(SUCCEEDED))
    assert "- **Time:** 2026-11-21T12:56:30.00Z (incident started); detected 2026-11-21T12:57:10.00Z;" in postmortem
    assert "- **Trigger:** Automatic - rule: api_error_rate > 50% for 1m" in postmortem
    assert "- **Rollback Time:** 3m 16.1s (staging, then maintenance on to off; target < 5m: met)" in postmortem
    assert "- **Downtime:** 6m 55.8s from the incident's start to verified (target < 10m: met)" in postmortem


def test_the_postmortem_marks_what_the_record_cannot_know_as_placeholders():
    postmortem = report.render_postmortem(record(FAILED))
    for line in ["- **Time:** [placeholder: when the incident began]", "- **Trigger:** Manual - [placeholder: specific reason]",
                 "- **Downtime:** [placeholder: total minutes of degraded service]",
                 "1. **What happened:** [placeholder: description]", "2. **Why it happened:** [placeholder: root cause]",
                 "3. **Impact:** [placeholder: users affected, data impacted]",
                 "1. **What test would have caught this:** [placeholder: test description]",
                 "- **Fix applied:** [placeholder: Yes/No - what fix]", "- **Proposed date:** [placeholder: when to retry]"]:
        assert line in postmortem


def test_the_postmortem_lists_each_hosts_plan_as_the_facts_for_root_cause_analysis():
    postmortem = report.render_postmortem(record(FAILED))
    analysis = postmortem.split("## Root Cause Analysis")[1].split("## Resolution")[0]
    assert "sandbox-1:\n```text\nstack: commit 9f8e7d1 -> a1b2c3d (1 commit undone)\n  - 9f8e7d1 release 1.1.0\n" in analysis
    assert "  knowledge_bases: 5 -> 3 rows" in analysis
    assert "sandbox-2:\n- no plan recorded (unreachable: could not connect" in analysis


def test_the_postmortem_names_the_rollback_method_and_that_every_check_passed():
    postmortem = report.render_postmortem(record(SUCCEEDED))
    assert ("- **Rollback method used:** git checkout to a1b2c3d4e5f6 (v1.0.0) + docker compose up + database restore "
            "from snapshot 20261121T120000Z-pre-release + caches flushed; tagged `rollback-20261121T130000Z`") in postmortem
    assert "- **Verification:** all 10 checks passed\n" in postmortem
    assert "`--data snapshot=20261121T130000Z-safety-before-rollback`" in postmortem


def test_the_postmortem_of_a_failed_run_names_the_failed_checks_and_each_hosts_method():
    postmortem = report.render_postmortem(record(FAILED))
    assert "- **Verification:** 1 of 2 checks failed:\n  - sandbox-1: phase 4, mysql/layra fingerprint: observed 4" in postmortem
    assert ("  - sandbox-1: git checkout to a1b2c3d4e5f6 + docker compose up + database restore from snapshot "
            "20261121T120000Z-pre-release\n  - sandbox-2: nothing recorded (unreachable)") in postmortem


def test_the_method_is_what_ran_not_what_was_planned():
    assert "- **Rollback method used:** stopped before the stack or any data changed" in report.render_postmortem(record(RUNNING))
    data = record(SUCCEEDED)
    for host in data["hosts"].values():
        for op in host["operations"]:
            if op["phase"] == "restore":
                op["changed"] = False
    assert "snapshot 20261121T120000Z-pre-release: data already matched, nothing restored" in report.render_postmortem(data)


# Finding a run and writing the reports


def test_a_run_is_found_by_id_prefix_latest_directory_or_record_path():
    path = RUNS / FAILED / "record.json"
    for run in [FAILED, "20261121T14", str(RUNS / FAILED), str(path)]:
        data, found = report.load_record(run, RUNS)
        assert (data["run_id"], found) == (FAILED, path)
    assert report.load_record("latest", RUNS)[0]["run_id"] == RUNNING


def test_an_unknown_run_names_the_newest_runs_there_are():
    with pytest.raises(report.RecordError) as error:
        report.load_record("20250101T000000Z-rollback", RUNS)
    assert str(error.value) == (f"no run '20250101T000000Z-rollback' in {RUNS} "
                                f"(the newest: {RUNNING}, {FAILED}, {SUCCEEDED})")


def test_an_ambiguous_prefix_names_the_runs_it_matches(tmp_path):
    with pytest.raises(report.RecordError, match="'20261121T1' matches 3 runs"):
        report.load_record("20261121T1", RUNS)


def test_a_record_that_is_not_json_or_not_a_run_is_refused(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(report.RecordError, match="bad.json is not valid JSON"):
        report.load_record(tmp_path / "bad.json", tmp_path)
    with pytest.raises(report.RecordError, match="list.json is not a run record"):
        report.load_record(tmp_path / "list.json", tmp_path)
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(report.RecordError, match="empty-run is a directory without a record.json"):
        report.load_record(tmp_path / "empty-run", tmp_path)


def test_write_reports_writes_the_three_files_beside_the_record_private_to_their_owner(runs):
    data = record(SUCCEEDED)
    written = report.write_reports(data, runs / SUCCEEDED)
    assert [path.name for path in written] == ["report.md", "postmortem.md", "report.html"]
    assert all(path.parent == runs / SUCCEEDED and path.stat().st_mode & 0o077 == 0 for path in written)
    assert (runs / SUCCEEDED / "report.md").read_text() == report.render_markdown(data)
    assert not list((runs / SUCCEEDED).glob(".*.tmp"))


def test_rendering_leaves_the_record_untouched():
    data = record(FAILED)
    before = copy.deepcopy(data)
    report.render_markdown(data), report.render_html(data), report.render_postmortem(data)
    assert data == before


def test_templates_ship_inside_the_package():
    names = {path.name for path in (report.resources.files("pyinfra_deploys") / "templates").iterdir()}
    assert {"report.md.j2", "report.html.j2", "postmortem.md.j2"} <= names


# The CLI


def test_the_report_command_writes_the_reports_beside_the_record_and_prints_their_paths(runs):
    result = CliRunner().invoke(main, ["report", FAILED, "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    directory = runs / FAILED
    assert result.output.splitlines() == [str(directory / name) for name in ("report.md", "postmortem.md", "report.html")]
    assert "MAINTENANCE MODE IS STILL ON on sandbox-1" in (directory / "report.html").read_text()


def test_the_report_command_reads_the_runs_dir_from_the_environment(runs):
    result = CliRunner().invoke(main, ["report", "latest", "--format", "html"], env={"LAYRA_RUNS_DIR": str(runs)})
    assert result.exit_code == 0, result.output
    assert result.output == f"{runs / RUNNING / 'report.html'}\n"
    assert not (runs / RUNNING / "report.md").exists()


def test_the_report_command_prints_the_markdown_with_stdout_and_writes_nothing(runs):
    result = CliRunner().invoke(main, ["report", str(runs / SUCCEEDED / "record.json"), "--stdout"])
    assert result.exit_code == 0, result.output
    assert result.output == report.render_markdown(record(SUCCEEDED))
    assert sorted(path.name for path in (runs / SUCCEEDED).iterdir()) == ["record.json"]


def test_the_report_command_prints_the_html_with_stdout_and_format_html(runs):
    result = CliRunner().invoke(main, ["report", SUCCEEDED, "--runs-dir", str(runs), "--stdout", "--format", "html"])
    assert result.exit_code == 0 and result.output.startswith("<!DOCTYPE html>")


def test_an_unknown_run_exits_2_listing_the_newest_run_ids(runs):
    result = CliRunner().invoke(main, ["report", "nope", "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert f"Invalid value for RUN: no run 'nope' in {runs} (the newest: {RUNNING}, {FAILED}, {SUCCEEDED})" in result.output


def test_an_empty_runs_dir_says_it_holds_no_runs(tmp_path):
    result = CliRunner().invoke(main, ["report", "latest", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert f"no run 'latest' in {tmp_path / 'none'} (it holds no runs)" in result.output


def test_a_record_that_is_not_json_exits_2_naming_the_file(tmp_path):
    (tmp_path / "record.json").write_text('{"run_id": ')
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'record.json'} is not valid JSON" in result.output
