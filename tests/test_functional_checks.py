"""Verify phase 3 (application functionality): the host data's validation, then the
FunctionalChecks fact and the checks.functionality operation run through pyinfra against
@local and a small HTTP server on 127.0.0.1 that logs in, lists and chats as Layra does.

While they run, every process's command line (and, where readable, environment) is
sampled: the password and the token must never show, nor in pyinfra's output."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pyinfra.api import Config, DeployError, Inventory, State
from pyinfra.api import output as pyinfra_output
from pyinfra.api.connect import connect_all

from facts.http import FunctionalChecks, functional_spec
from pyinfra_deploys.config import functional_checks_from

ROOT = Path(__file__).resolve().parents[1]
# Every character a shell or JSON could trip on: quotes, backslash, $, space, printf's %s, &;
# and a part of its own, so that runs side by side (and their negative control) never meet.
PASSWORD = "p\"a\\ss $HOME it's %s&" + secrets.token_hex(4)
TOKEN = "tok-" + secrets.token_urlsafe(24)
# Each answer takes this long, so that the sampler sees every curl while it runs.
DELAY = 0.25

LOGIN = {"path": "/api/v1/auth/login", "username": "demo", "password_key": "LAYRA_CHECK_PASSWORD"}
LIST = {"name": "knowledge-base list", "method": "GET", "path": "/api/v1/knowledge-bases"}
CHAT = {"name": "chat completion", "method": "POST", "path": "/api/v1/chat/completions", "json": {"query": "test"}}


# -- host data ----------------------------------------------------------------------------

def settings(**changes) -> dict:
    return {"layra_functional_checks": {"base_url": "http://127.0.0.1:8090", "login": dict(LOGIN),
                                        "checks": [dict(LIST), dict(CHAT)], **changes}}


def refusal(data) -> str:
    with pytest.raises(DeployError) as error:
        functional_checks_from(data)
    return str(error.value)


def test_no_functional_checks_in_the_host_data_means_phase_3_is_not_configured():
    assert functional_checks_from({}) is None
    assert functional_checks_from({"layra_functional_checks": None}) is None


def test_the_settings_come_back_with_method_status_body_and_timeout_defaults_filled_in():
    data = settings(checks=[{"path": "/api/v1/knowledge-bases"}, dict(CHAT, expect_status=201)])
    assert functional_checks_from(data) == {
        "base_url": "http://127.0.0.1:8090",
        "login": LOGIN,
        "checks": [
            {"name": "GET /api/v1/knowledge-bases", "method": "GET", "path": "/api/v1/knowledge-bases",
             "json": None, "expect_status": 200},
            {**CHAT, "expect_status": 201},
        ],
        "timeout": 10,
    }


def test_checks_without_a_login_are_accepted_and_run_without_a_token():
    assert functional_checks_from(settings(login=None))["login"] is None


@pytest.mark.parametrize(("data", "message"), [
    ({"layra_functional_checks": ["http://127.0.0.1:8090"]},
     "host data 'layra_functional_checks' must be a mapping with base_url, login, checks, timeout, "
     "got ['http://127.0.0.1:8090']"),
    (settings(base_url="127.0.0.1:8090"),
     "host data 'layra_functional_checks.base_url' must be http(s)://host[:port], got '127.0.0.1:8090'"),
    (settings(base_url="http://127.0.0.1:8090/api"),
     "host data 'layra_functional_checks.base_url' must be http(s)://host[:port], got 'http://127.0.0.1:8090/api'"),
    (settings(retries=3),
     "host data 'layra_functional_checks.retries' is not a setting (settings: base_url, login, checks, timeout)"),
    (settings(timeout=0),
     "host data 'layra_functional_checks.timeout' must be a positive number of seconds, got 0"),
    (settings(timeout="10"),
     "host data 'layra_functional_checks.timeout' must be a positive number of seconds, got '10'"),
    (settings(login="demo"),
     "host data 'layra_functional_checks.login' must be a mapping with path, username, password_key, got 'demo'"),
    (settings(login={**LOGIN, "password": "hunter2"}),
     "host data 'layra_functional_checks.login.password' is not a setting "
     "(settings: path, username, password_key)"),
    (settings(login={**LOGIN, "path": "api/v1/auth/login"}),
     "host data 'layra_functional_checks.login.path' must be a path starting with / "
     "(no whitespace or quotes), got 'api/v1/auth/login'"),
    (settings(login={**LOGIN, "username": "demo\nadmin"}),
     "host data 'layra_functional_checks.login.username' must be a user name on one line, got 'demo\\nadmin'"),
    (settings(login={**LOGIN, "password_key": "LAYRA-PASSWORD"}),
     "host data 'layra_functional_checks.login.password_key' must name a variable of the stack's env file, "
     "got 'LAYRA-PASSWORD'"),
    (settings(checks={"list": LIST}),
     "host data 'layra_functional_checks.checks' must be a list of requests, got {'list': " + repr(LIST) + "}"),
    (settings(login=None, checks=[]),
     "host data 'layra_functional_checks.checks' must list at least one request where no login is set"),
    (settings(checks=[LIST, "GET /x"]),
     "host data 'layra_functional_checks.checks[1]' must be a mapping with name, method, path, json, "
     "expect_status, got 'GET /x'"),
    (settings(checks=[LIST, {**CHAT, "method": "FETCH"}]),
     "host data 'layra_functional_checks.checks[1].method' must be one of GET, POST, PUT, PATCH, DELETE, "
     "got 'FETCH'"),
    (settings(checks=[{**LIST, "path": "/api/v1/knowledge bases"}]),
     "host data 'layra_functional_checks.checks[0].path' must be a path starting with / "
     "(no whitespace or quotes), got '/api/v1/knowledge bases'"),
    (settings(checks=[{**LIST, "path": "/api/v1/kb'; rm -rf /"}]),
     "host data 'layra_functional_checks.checks[0].path' must be a path starting with / "
     "(no whitespace or quotes), got \"/api/v1/kb'; rm -rf /\""),
    (settings(checks=[{**LIST, "path": "/api\n/kb"}]),
     "host data 'layra_functional_checks.checks[0].path' must be a path starting with / "
     "(no whitespace or quotes), got '/api\\n/kb'"),
    (settings(checks=[{**LIST, "name": "list\n--- layra:check ---"}]),
     "host data 'layra_functional_checks.checks[0].name' must be printable text on one line, "
     "got 'list\\n--- layra:check ---'"),
    (settings(checks=[{**CHAT, "json": "query=test"}]),
     "host data 'layra_functional_checks.checks[0].json' must be a JSON object or array, got 'query=test'"),
    (settings(checks=[{**CHAT, "json": {"when": {1, 2}}}]),
     "host data 'layra_functional_checks.checks[0].json' must be a JSON object or array, got {'when': {1, 2}}"),
    (settings(checks=[{**LIST, "expect_status": "200"}]),
     "host data 'layra_functional_checks.checks[0].expect_status' must be an HTTP status (100-599), got '200'"),
    (settings(checks=[{**LIST, "expect_status": 99}]),
     "host data 'layra_functional_checks.checks[0].expect_status' must be an HTTP status (100-599), got 99"),
    (settings(checks=[{**LIST, "header": "X-Debug: 1"}]),
     "host data 'layra_functional_checks.checks[0].header' is not a setting "
     "(settings: name, method, path, json, expect_status)"),
])
def test_malformed_settings_are_refused_naming_the_exact_key_and_what_it_must_be(data, message):
    assert refusal(data) == message


# -- a small Layra on 127.0.0.1 -------------------------------------------------------------

class Layra(BaseHTTPRequestHandler):
    """Login with {"username", "password"} as JSON; the rest wants ``Bearer <token>``."""

    seen: list = []

    def log_message(self, *args):
        pass

    def answer(self, status: int, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        time.sleep(DELAY)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {TOKEN}"

    def do_POST(self):
        raw = self.body()
        if self.path == "/api/v1/auth/login":
            try:
                login = json.loads(raw)
            except ValueError:
                return self.answer(400, {"detail": "not JSON", "input": raw.decode(errors="replace")})
            self.seen.append(login)
            if login == {"username": "demo", "password": PASSWORD}:
                return self.answer(200, {"access_token": TOKEN, "token_type": "bearer"})
            # as FastAPI's validation errors do: the input quoted back
            return self.answer(401, {"detail": "invalid credentials", "input": login})
        if self.path == "/api/v1/chat/completions":
            if not self.authorized():
                return self.answer(401, {"detail": "not authenticated"})
            return self.answer(200, {"answer": f"2 knowledge bases searched for {json.loads(raw)['query']!r}"})
        self.answer(404, {"detail": "not found"})

    def do_GET(self):
        if self.path == "/api/v1/health/check":
            return self.answer(200, {"status": "UP"})
        if self.path == "/api/v1/broken":
            return self.answer(500, b"Internal Server Error")
        if not self.authorized():
            return self.answer(401, {"detail": "not authenticated"})
        if self.path == "/api/v1/knowledge-bases":
            return self.answer(200, [{"id": 1, "name": "docs"}, {"id": 2, "name": "faq"}])
        if self.path == "/api/v1/whoami":  # quotes the token back
            return self.answer(200, {"user": "demo", "authorization": self.headers["Authorization"]})
        self.answer(404, {"detail": "not found"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def layra():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Layra)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stack")
    # single-quoted, as compose reads it: no $ interpolation, \\' for a quote, other backslashes kept
    quoted = "'" + PASSWORD.replace("'", "\\'") + "'"
    (root / ".env").write_text(f"MYSQL_ROOT_PASSWORD=x\nLAYRA_CHECK_PASSWORD={quoted}\nWRONG_PASSWORD=nope\n")
    return root


# Forms a leak could take: as given, JSON-escaped (the login body), in the header.
SECRETS = [PASSWORD.encode(), json.dumps(PASSWORD)[1:-1].encode(), TOKEN.encode()]


# The sampler runs as a process of its own: pyinfra's CLI package (which pyinfra-testing
# imports) patches threads into gevent greenlets, and a greenlet reading /proc never yields.
# It reads the secrets from its stdin (never its argv), samples until stdin closes, then
# prints what it saw as JSON.
SAMPLER = r"""
import json, os, select, sys
secrets = [s.encode() for s in json.loads(sys.stdin.readline())]
found = {"samples": 0, "curl_seen": 0, "script_seen": 0, "leaks": []}
while True:
    curl = script = False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for kind in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{kind}", "rb") as file:
                    data = file.read()
            except OSError:
                continue
            if kind == "cmdline":
                curl = curl or data.startswith(b"curl\0")
                script = script or b"fc_password" in data
            found["leaks"] += [f"{pid} {kind}: {data[:200]!r}" for secret in secrets if secret in data]
    found["samples"] += 1
    found["curl_seen"] += curl
    found["script_seen"] += script
    if found["samples"] == 1:
        print("ready", flush=True)
    if select.select([sys.stdin], [], [], 0)[0]:
        break
print(json.dumps(found), flush=True)
"""


class Sampler:
    """Every process's command line (and environment, where readable) sampled while in
    the ``with`` block: ``samples``, in how many a curl / our shell ran, and any leaks."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", SAMPLER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.process.stdin.write(json.dumps([secret.decode() for secret in SECRETS]) + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "ready\n"
        return self

    def __exit__(self, *exc):
        self.process.stdin.close()
        try:
            found = json.loads(self.process.stdout.read())
            self.process.wait(timeout=30)
        except Exception:
            self.process.kill()
            self.process.wait()
            raise
        self.samples, self.curl_seen = found["samples"], found["curl_seen"]
        self.script_seen, self.leaks = found["script_seen"], found["leaks"]


def local_host():
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    # pyinfra prints the fact's command and output: they too must hold no secret
    state.print_fact_input = state.print_fact_output = True
    connect_all(state)
    return inventory.get_host("@local")


def run_fact(base_url: str, stack_dir: Path, login=LOGIN, checks=(LIST, CHAT), timeout=10):
    spec = functional_spec({"base_url": base_url, "login": login, "checks": list(checks), "timeout": timeout})
    return local_host().get_fact(FunctionalChecks, env_file=str(stack_dir / ".env"), **spec)


@pytest.fixture
def sampled(caplog):
    """A Sampler running through the test; at its end, no secret on any process's command
    line or environment, nor in what pyinfra printed (its echo) or logged."""
    printed: list[str] = []
    previous = pyinfra_output._echo
    pyinfra_output.set_echo(lambda message=None, **kwargs: printed.append(str(message)))
    caplog.set_level(logging.DEBUG, logger="pyinfra")
    try:
        with Sampler() as sampler:
            yield sampler
    finally:
        pyinfra_output.set_echo(previous)
    output = "\n".join(printed + [record.getMessage() for record in caplog.records])
    assert "fc_answer=$(" in output and "--- layra:" in output  # pyinfra printed the command and its output
    assert [secret for secret in SECRETS if secret.decode() in output] == []
    assert sampler.leaks == []
    assert sampler.samples > 0


def test_the_sampler_sees_a_secret_on_a_command_line_and_in_an_environment():
    with Sampler() as sampler:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", PASSWORD],
                                   env={"LAYRA_TOKEN": TOKEN})
        time.sleep(0.3)
        process.kill()
        process.wait()
    assert any(" cmdline: " in leak for leak in sampler.leaks)
    assert any(" environ: " in leak for leak in sampler.leaks)


def test_the_fact_logs_in_with_the_env_files_password_and_runs_each_check_with_the_token(
        layra, stack_dir, sampled):
    Layra.seen.clear()
    with Sampler() as sampler:
        answers = run_fact(layra, stack_dir)
    # the sampler caught the curls and our shell while they ran: it would have seen a leak
    assert sampler.curl_seen > 0 and sampler.script_seen > 0 and sampler.leaks == []
    assert Layra.seen == [{"username": "demo", "password": PASSWORD}]
    login, (listed, chat) = answers["login"], answers["checks"]
    assert (login["status"], login["token"], login["error"]) == (200, True, "")
    assert DELAY <= login["seconds"] < 5
    assert (listed["name"], listed["status"], listed["body"]) == (
        "knowledge-base list", 200, '[{"id": 1, "name": "docs"}, {"id": 2, "name": "faq"}]')
    assert (chat["name"], chat["status"]) == ("chat completion", 200)
    assert chat["body"] == '{"answer": "2 knowledge bases searched for \'test\'"}'


def test_neither_password_nor_token_is_in_the_facts_answers(layra, stack_dir, sampled):
    whoami = {"name": "who am I", "path": "/api/v1/whoami"}
    answers = run_fact(layra, stack_dir, checks=[whoami])
    assert answers["checks"][0]["body"] == '{"user": "demo", "authorization": "Bearer [token]"}'
    assert [secret for secret in SECRETS if secret.decode() in json.dumps(answers)] == []


def test_a_wrong_password_is_a_401_login_and_no_check_runs(layra, stack_dir, sampled):
    Layra.seen.clear()
    answers = run_fact(layra, stack_dir, login={**LOGIN, "password_key": "WRONG_PASSWORD"})
    assert Layra.seen == [{"username": "demo", "password": "nope"}]
    # the 401 quotes the password back: the fact keeps no login body
    assert answers == {"login": {"status": 401, "seconds": answers["login"]["seconds"], "token": False,
                                 "error": ""}, "checks": []}


def test_a_password_missing_from_the_env_file_is_the_logins_error_not_a_failed_fact(layra, stack_dir, sampled):
    answers = run_fact(layra, stack_dir, login={**LOGIN, "password_key": "NOWHERE_PASSWORD"})
    assert answers == {"login": {"status": 0, "seconds": 0.0, "token": False,
                                 "error": f"NOWHERE_PASSWORD is not set in {stack_dir}/.env"}, "checks": []}


def test_without_a_login_checks_run_without_a_token_and_a_failing_one_reports_its_status(
        layra, stack_dir, sampled):
    health, broken = {"name": "health", "path": "/api/v1/health/check"}, {"name": "broken", "path": "/api/v1/broken"}
    answers = run_fact(layra, stack_dir, login=None, checks=[health, LIST, broken])
    assert answers["login"] is None
    assert [(c["name"], c["status"], c["body"]) for c in answers["checks"]] == [
        ("health", 200, '{"status": "UP"}'),
        ("knowledge-base list", 401, '{"detail": "not authenticated"}'),
        ("broken", 500, "Internal Server Error"),
    ]


def test_nothing_listening_is_status_zero_with_curls_reason(stack_dir, sampled):
    answers = run_fact(f"http://127.0.0.1:{free_port()}", stack_dir)
    assert answers["login"]["status"] == 0 and answers["login"]["token"] is False
    assert answers["login"]["error"].startswith("curl: (7) ")
    assert answers["checks"] == []


def test_the_operation_prints_one_row_per_check_through_the_pyinfra_cli(layra, stack_dir, tmp_path):
    """pyinfra as operators run it, at its most verbose: the rows, and no secret anywhere."""
    deploy = tmp_path / "phase3.py"
    deploy.write_text(
        "from facts.compose import Stack\nfrom operations import checks\n"
        f"checks.functionality(name='Verify phase 3: functionality', stack=Stack({str(stack_dir)!r}),\n"
        f"    base_url={layra!r}, login={LOGIN!r},\n"
        f"    checks=[{LIST!r}, {CHAT!r}, {{'name': 'broken', 'path': '/api/v1/broken'}}])\n"
    )
    with Sampler() as sampler:
        run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-vvv", "--debug", "@local", str(deploy)],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode != 0  # the broken check fails the host
    rows = [re.sub(r"in \d+\.\d\d s", "in T s", line.split("] ", 1)[-1])
            for line in output.splitlines() if re.search(r"\] (ok  |FAIL|phase 3 \()", line)]
    assert rows == [
        "ok   phase 3 login returns a token: HTTP 200, token (want HTTP 200, token)",
        "ok   phase 3 knowledge-base list: HTTP 200 in T s (want HTTP 200)",
        "ok   phase 3 chat completion: HTTP 200 in T s (want HTTP 200)",
        "FAIL phase 3 broken: HTTP 500 in T s: Internal Server Error (want HTTP 200)",
        "phase 3 (functionality): 1 of 4 checks failed: broken is HTTP 500 in T s: Internal Server Error "
        "(want HTTP 200)",
    ]
    # the fact's shell and its output were printed: and yet no secret in them
    assert "fc_password=$(layra_env_value" in output and "[@local] token yes" in output
    assert [secret for secret in SECRETS if secret.decode() in output] == []
    assert sampler.leaks == [] and sampler.curl_seen > 0
