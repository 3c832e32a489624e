"""
The stack's env file is read exactly as docker compose reads it: a table of values written
the ways operators write them (quotes, escapes, ``$`` interpolation, comments, ``export``,
CRLF, a value on two lines), each read by our reader on sandbox-1 and compared with what
the real ``docker compose`` hands a container there (``docker compose run ... python3``
printing its environment): the expected values come from compose, not from our reading
of its rules.
"""

from __future__ import annotations

import base64
import json
import shlex

from pyinfra_testing.util import get_command_string

from facts.secrets import export_from_env_file

from .conftest import Sandbox

DIR = "/tmp/layra-e2e-env-file"

# One line each (CRLF where the name says so); comment lines between them.
LINES = [
    "# the issue's case: a comment line above, compose gives Pa$s\"w'o=r#d x\\y",
    "MYSQL_ROOT_PASSWORD='Pa$s\"w\\'o=r#d x\\y'",
    "BASE=base",
    'DOUBLE_QUOTED="a \\"quoted\\" \\\\ back\\nslash ${BASE}-x $$5"',
    "INTERPOLATED=${BASE}/x",
    "BARE_DOLLAR=$BASE/y",
    "DEFAULTED=${UNSET_ANYWHERE:-fallback value}",
    "UNQUOTED=plain value # an inline comment",
    "HASH_NO_SPACE=abc#def",
    "SINGLE_HASH='abc # not a comment'",
    "export EXPORTED=exported value",
    "CRLF=crlf value\r",
    'CRLF_QUOTED="quoted crlf"\r',
    "EQUALS=a=b=c",
    "PADDED=   padded   ",
    "UNICODE=café 𝄞",
    'TAB="a\\tb"',
    "SINGLE_DOLLAR='$HOME stays'",
    'TWO_LINES="first',
    'second"',
]
KEYS = [line.split("=", 1)[0].removeprefix("export ") for line in LINES
        if "=" in line and not line.startswith("#") and line != 'second"']

COMPOSE = {"services": {"probe": {"image": "layra-sandbox/python:3", "environment": {key: f"${{{key}}}" for key in KEYS}}}}
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def test_every_value_is_read_as_docker_compose_gives_it_to_a_container(sandbox: Sandbox):
    host = sandbox.hosts[0]
    env_text = "".join(line + "\n" for line in LINES)
    host.ssh(f"rm -rf {DIR} && mkdir -p {DIR} && printf '%s' {shlex.quote(env_text)} > {DIR}/.env && "
             f"printf '%s' {shlex.quote(json.dumps(COMPOSE))} > {DIR}/compose.json")
    try:
        given = json.loads(host.ssh(
            f"cd {DIR} && docker compose -p layra-e2e-env -f compose.json --env-file .env run --rm --no-deps -T "
            f"probe python3 -c {shlex.quote(PRINT_ENV)} </dev/null 2>/dev/null"))
        ours = {}
        for key in KEYS:
            command = get_command_string(export_from_env_file(f"{DIR}/.env", key, "VALUE"))
            encoded = host.ssh(f"{command} printf '%s' \"$VALUE\" | base64 -w0")
            ours[key] = base64.b64decode(encoded).decode()
    finally:
        host.ssh(f"cd {DIR} && docker compose -p layra-e2e-env -f compose.json down -t 1 >/dev/null 2>&1; rm -rf {DIR}",
                 check=False)
    expected = {key: given[key] for key in KEYS}
    assert expected["MYSQL_ROOT_PASSWORD"] == "Pa$s\"w'o=r#d x\\y"  # as the issue found compose reading it
    assert expected["TWO_LINES"] == "first\nsecond"
    assert ours == expected
