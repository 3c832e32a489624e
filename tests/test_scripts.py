"""The packaged shell scripts (facts/scripts/*.sh, operations/scripts/*.sh) and the sandbox's
own (sandbox/**/*.sh) pass shellcheck, and every command a case file expects parses: a
script loaded without its trailing newline must still be separated from what follows it.
What each script does is tested where it runs (tests/test_volume_scripts.py,
test_replace_service.py, test_env_value.py, test_work_lock.py, test_whole_output.py,
test_redis_engine.py, test_qdrant_standin.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from facts.shell import script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("facts/scripts/*.sh"), *ROOT.glob("operations/scripts/*.sh")])
SANDBOX_SCRIPTS = sorted(ROOT.glob("sandbox/**/*.sh"))


def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck is not installed: sandbox/up.sh installs it (apt-get install shellcheck)")
    return found


def test_there_are_scripts_in_both_packages():
    assert {path.parent.parent.name for path in SCRIPTS} == {"facts", "operations"}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.parent.name}/{path.name}")
def test_every_packaged_script_passes_shellcheck(path):
    run = subprocess.run([shellcheck(), "--norc", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_there_are_scripts_in_the_sandbox():
    names = {path.name for path in SANDBOX_SCRIPTS}
    assert {"up.sh", "down.sh", "demo.sh", "common.sh", "install-stack.sh", "entrypoint.sh"} <= names


@pytest.mark.parametrize("path", SANDBOX_SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_sandbox_script_passes_shellcheck_with_what_it_sources(path):
    # -x follows `source`: its `# shellcheck source=` paths are relative to the repo root
    run = subprocess.run([shellcheck(), "--norc", "-x", str(path.relative_to(ROOT))], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.parent.name}/{path.name}")
def test_every_script_names_its_shell_for_shellcheck_and_says_what_it_does(path):
    lines = path.read_text().splitlines()
    assert lines[0] in ("# shellcheck shell=sh", "# shellcheck shell=bash")
    assert lines[1].startswith("# ") and not lines[1].startswith("# shellcheck")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.parent.name}/{path.name}")
def test_the_host_gets_each_script_without_its_comment_lines(path):
    text = script(path.stem, path.parent.parent.name)
    assert text and not any(line.lstrip().startswith("#") for line in text.splitlines())


def case_commands():
    for kind, key in (("facts", "command"), ("operations", "commands")):
        for case in sorted((ROOT / "tests" / kind).rglob("*.json")):
            commands = json.loads(case.read_text()).get(key)
            for command in [commands] if isinstance(commands, str) else commands or []:
                command = command[0] if isinstance(command, list) else command  # [raw, masked]
                if isinstance(command, str):
                    yield case.relative_to(ROOT / "tests"), command


def test_every_command_the_case_files_expect_parses_under_bash():
    failures = []
    for case, command in case_commands():
        run = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        if run.returncode:
            failures.append(f"{case}: {run.stderr.strip()[:300]}")
    assert failures == []
