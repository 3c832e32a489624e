"""
Facts from HTTP endpoints, fetched on the host itself (services publish on its loopback).
"""

from __future__ import annotations

import json
import re

from pyinfra.api import QuoteString, StringCommand

from .qdrant import valid_url
from .secrets import KEY_PATTERN, export_from_env_file
from .shell import WholeOutputFact, assign, section

STATUS_MARKER = "--- layra:status ---"


class HttpResponse(WholeOutputFact):
    """
    Returns the status and the start of the body of a GET on ``url``, made from the host.
    ``status`` is 0 when nothing answered.

    .. code:: python

        {"status": 200, "body": '{"status":"UP"}', "seconds": 0.004}
    """

    def requires_command(self, url: str, timeout: int = 5) -> str:
        return "curl"

    def command(self, url: str, timeout: int = 5) -> StringCommand:
        return http_get_command(url, timeout)

    def process(self, output):
        return parse_http_response(output)


def http_get_command(url: str, timeout: int = 5) -> StringCommand:
    """A GET of ``url`` from the host (``HttpResponse``; also one of ``HostMetrics``' answers).
    The body is the server's, not ours: bytes in it that are not UTF-8 are dropped (it is
    shown to people, never decided on), so a server's odd page cannot blind the fact."""
    return StringCommand(
        "{ curl", "-sS", "--max-time", QuoteString(str(timeout)),
        "-w", QuoteString(f"\\n{STATUS_MARKER}\\n%{{http_code}} %{{time_total}}\\n"),
        QuoteString(url), "2>&1 || true; } | { iconv -c -f UTF-8 -t UTF-8 || true; }",
    )


def parse_http_response(output: list[str]) -> dict:
    body, status, seconds = [], 0, 0.0
    for index, line in enumerate(output):
        if line.strip() == STATUS_MARKER and index + 1 < len(output):
            code, _, elapsed = output[index + 1].partition(" ")
            status, seconds = int(code or 0), float(elapsed or 0)
            break
        body.append(line)
    return {"status": status, "body": "\n".join(body).strip()[:300], "seconds": seconds}


# Verify phase 3: login, then requests with the token, all in one round trip.

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FUNCTIONAL_KEYS = ("base_url", "login", "checks", "timeout")
LOGIN_KEYS = ("path", "username", "password_key")
CHECK_KEYS = ("name", "method", "path", "json", "expect_status")
# Paths go after the base URL: no whitespace, quotes or backslashes.
PATH = re.compile(r"^/[^\s'\"`\\]*\Z")

# The login body, filled on the host by printf (a bash builtin: no command line holds it).
LOGIN_BODY = '{"username":%s,"password":"%s"}'
# The password as a JSON string: backslash, double quote, tab and carriage return escaped
# (the env file gives one line, so no newline).
ESCAPE_PASSWORD = (
    r'fc_password=${fc_password//\\/\\\\}; fc_password=${fc_password//\"/\\\"}; '
    r"fc_password=${fc_password//$'\t'/\\t}; fc_password=${fc_password//$'\r'/\\r};"
)
TOKEN_SED = r's/.*"access_token" *: *"\([^"]*\)".*/\1/p'
# The token as a curl config string, read from a file descriptor (process substitution).
ESCAPE_TOKEN = r'fc_auth=${fc_token//\\/\\\\}; fc_auth=${fc_auth//\"/\\\"};'
AUTH_CONFIG = "<(printf 'header = \"Authorization: Bearer %s\"\\n' \"$fc_auth\")"
# After each answer: a line of its own with the status and the seconds it took.
WRITE_OUT = QuoteString("\\n%{http_code} %{time_total}")
# Of an answer captured in fc_answer: "status CODE SECONDS", then its body on one line.
LOGIN_MARKER, CHECK_MARKER = "--- layra:login ---", "--- layra:check ---"
PRINT_BODY = "fc_body=${fc_body//$'\\r'/}; printf '%s\\n' \"${fc_body//$'\\n'/ }\";"
PRINT_STATUS = "printf 'status %s\\n' \"${fc_answer##*$'\\n'}\";"
# A check's answer could quote the token back: it never reaches the fact's output.
REDACT_TOKEN = 'fc_body=${fc_body//"$fc_token"/[token]};'


class BadSetting(ValueError):
    """A functional-check setting that cannot be used: ``key`` and what it must be."""

    def __init__(self, key: str, what: str):
        super().__init__(f"{key} {what}")
        self.key, self.what = key, what


def _one_line(value) -> bool:
    return isinstance(value, str) and value != "" and value.isprintable()


def functional_spec(settings: dict) -> dict:
    """The functional checks with their defaults filled in (``method`` GET, ``expect_status``
    200, ``json`` None, ``name`` "METHOD path", ``timeout`` 10), or a `BadSetting` naming the
    key (``checks[1].method``) and what it must be."""
    unknown = sorted(set(settings) - set(FUNCTIONAL_KEYS))
    if unknown:
        raise BadSetting(unknown[0], f"is not a setting (settings: {', '.join(FUNCTIONAL_KEYS)})")
    base_url = settings.get("base_url")
    if not valid_url(base_url):
        raise BadSetting("base_url", f"must be http(s)://host[:port], got {base_url!r}")
    timeout = settings.get("timeout", 10)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < 3600:
        raise BadSetting("timeout", f"must be a positive number of seconds, got {timeout!r}")
    login = settings.get("login")
    if login is not None:
        login = _login_spec(login)
    checks = settings.get("checks", [])
    if not isinstance(checks, (list, tuple)):
        raise BadSetting("checks", f"must be a list of requests, got {checks!r}")
    if not checks and login is None:
        raise BadSetting("checks", "must list at least one request where no login is set")
    return {"base_url": base_url, "login": login,
            "checks": [_check_spec(index, check) for index, check in enumerate(checks)], "timeout": timeout}


def _login_spec(login) -> dict:
    if not isinstance(login, dict):
        raise BadSetting("login", f"must be a mapping with {', '.join(LOGIN_KEYS)}, got {login!r}")
    for key in sorted(set(login) - set(LOGIN_KEYS)):
        raise BadSetting(f"login.{key}", f"is not a setting (settings: {', '.join(LOGIN_KEYS)})")
    path, username, key = login.get("path"), login.get("username"), login.get("password_key")
    if not (isinstance(path, str) and PATH.match(path)):
        raise BadSetting("login.path", f"must be a path starting with / (no whitespace or quotes), got {path!r}")
    if not _one_line(username):
        raise BadSetting("login.username", f"must be a user name on one line, got {username!r}")
    if not (isinstance(key, str) and KEY_PATTERN.match(key)):
        raise BadSetting("login.password_key", f"must name a variable of the stack's env file, got {key!r}")
    return {"path": path, "username": username, "password_key": key}


def _check_spec(index: int, check) -> dict:
    where = f"checks[{index}]"
    if not isinstance(check, dict):
        raise BadSetting(where, f"must be a mapping with {', '.join(CHECK_KEYS)}, got {check!r}")
    for key in sorted(set(check) - set(CHECK_KEYS)):
        raise BadSetting(f"{where}.{key}", f"is not a setting (settings: {', '.join(CHECK_KEYS)})")
    method, path = check.get("method", "GET"), check.get("path")
    if method not in METHODS:
        raise BadSetting(f"{where}.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(path, str) and PATH.match(path)):
        raise BadSetting(f"{where}.path", f"must be a path starting with / (no whitespace or quotes), got {path!r}")
    name = check.get("name", f"{method} {path}")
    if not _one_line(name):
        raise BadSetting(f"{where}.name", f"must be printable text on one line, got {name!r}")
    body = check.get("json")
    try:
        if body is not None and not isinstance(body, (dict, list)):
            raise TypeError
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError):
        raise BadSetting(f"{where}.json", f"must be a JSON object or array, got {body!r}") from None
    status = check.get("expect_status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise BadSetting(f"{where}.expect_status", f"must be an HTTP status (100-599), got {status!r}")
    return {"name": name, "method": method, "path": path, "json": body, "expect_status": status}


def _request(method: str, url: str, timeout, *, auth: bool = False, stdin=None) -> StringCommand:
    """``fc_answer=$(curl ...)``: the answer, then its status line. curl's own errors go
    straight to the output. ``stdin`` (shell that prints the body) feeds curl the body;
    ``auth`` hands it the token's header through a file descriptor."""
    return StringCommand(
        "fc_answer=$(", *((stdin, "|") if stdin is not None else ()),
        "curl", "-sS", "--max-time", QuoteString(str(timeout)), "-X", method,
        *(("-K", AUTH_CONFIG) if auth else ()),
        *(("-H", QuoteString("Content-Type: application/json"), "--data-binary", "@-") if stdin is not None else ()),
        "-w", WRITE_OUT, QuoteString(url), ");",
    )


def _login(base_url: str, env_file: str, login: dict, timeout) -> StringCommand:
    """Shell that logs in, prints the status and whether a token came, and ends the
    checks (``exit 0``) when none did; the token stays in ``fc_token``."""
    return StringCommand(
        section("login"), ";",
        export_from_env_file(env_file, login["password_key"], "fc_password"),
        "export -n fc_password;", ESCAPE_PASSWORD, assign(fc_user=json.dumps(login["username"])),
        _request("POST", base_url + login["path"], timeout,
                 stdin=StringCommand("printf", QuoteString(LOGIN_BODY), '"$fc_user" "$fc_password"')),
        "unset fc_password;",
        "fc_token=$(printf '%s' \"$fc_answer\" | sed -n", QuoteString(TOKEN_SED), "| head -n 1);",
        PRINT_STATUS, "unset fc_answer;",
        'if [ -n "$fc_token" ]; then echo token yes; else echo token no; exit 0; fi;', ESCAPE_TOKEN,
    )


def _check(base_url: str, check: dict, timeout, authenticated: bool) -> StringCommand:
    body = check["json"]
    stdin = None if body is None else StringCommand("printf", "'%s'", QuoteString(json.dumps(body)))
    return StringCommand(
        section("check"), "; printf '%s\\n'", QuoteString(check["name"]), ";",
        _request(check["method"], base_url + check["path"], timeout, auth=authenticated, stdin=stdin),
        PRINT_STATUS, "fc_body=${fc_answer%$'\\n'*};", *((REDACT_TOKEN,) if authenticated else ()), PRINT_BODY,
    )


class FunctionalChecks(WholeOutputFact):
    """
    Returns the answers of verify phase 3, in one round trip made from the host: a login
    (where ``login`` is set), then each check's request with the login's token. ``status``
    is 0 when nothing answered (``error``, or the check's ``body``, then says why). After
    a login that gave no token, no check runs (``checks`` is empty).

    .. code:: python

        {
            "login": {"status": 200, "seconds": 0.05, "token": True, "error": ""},  # None: no login
            "checks": [
                {"name": "knowledge-base list", "status": 200, "seconds": 0.02,
                 "body": "[{\"id\": 1, ...  (the answer's first 200 characters, on one line)"},
            ],
        }

    + base_url: ``http(s)://host[:port]``, fetched from the host
    + env_file: the stack's env file, holding the password under ``login["password_key"]``
    + login: ``{"path", "username", "password_key"}`` or None; it posts
      ``{"username", "password"}`` as JSON and takes the answer's ``access_token``
    + checks: ``{"name", "method", "path", "json", "expect_status"}`` each (`functional_spec`)
    + timeout: seconds each request may take

    The password is read on the host and reaches curl on its stdin, the token on a file
    descriptor: neither is on a command line, and neither is in the output (only whether
    the login's answer held a token; a check's answer quoting the token shows ``[token]``).
    Runs under bash (process substitution).
    """

    shell_executable = "bash"

    def requires_command(self, *args, **kwargs) -> str:
        return "curl"

    def command(self, base_url: str, env_file: str, login: dict | None, checks: list[dict],
                timeout: float = 10) -> StringCommand:
        spec = functional_spec({"base_url": base_url, "login": login, "checks": checks, "timeout": timeout})
        login, timeout = spec["login"], spec["timeout"]
        steps = [_login(base_url, env_file, login, timeout)] if login else []
        steps += [_check(base_url, check, timeout, authenticated=bool(login)) for check in spec["checks"]]
        # A subshell: a missing password ends it with the reason in the login's section. The
        # answers are the application's, shown to people: bytes that are not UTF-8 are dropped.
        return StringCommand("(", *steps, ") 2>&1 | { iconv -c -f UTF-8 -t UTF-8 || true; }")

    def process(self, output):
        login, checks, current = None, [], None
        for line in output:
            if line.strip() == LOGIN_MARKER:
                current = login = []
            elif line.strip() == CHECK_MARKER:
                current = []
                checks.append(current)
            elif current is not None:
                current.append(line)
        return {"login": None if login is None else _login_answer(login),
                "checks": [_check_answer(lines) for lines in checks]}


def _status(line: str) -> tuple[int, float]:
    code, _, seconds = line.removeprefix("status ").strip().partition(" ")
    try:
        return int(code or 0), float(seconds or 0)
    except ValueError:
        return 0, 0.0


def _login_answer(lines: list[str]) -> dict:
    statuses = [line for line in lines if line.startswith("status ")]
    status, seconds = _status(statuses[0]) if statuses else (0, 0.0)
    error = "\n".join(line for line in lines if not line.startswith(("status ", "token "))).strip()
    return {"status": status, "seconds": seconds, "token": "token yes" in lines, "error": error[:300]}


def _check_answer(lines: list[str]) -> dict:
    name, rest = (lines[0], lines[1:]) if lines else ("", [])
    at = next((index for index, line in enumerate(rest) if line.startswith("status ")), len(rest))
    status, seconds = _status(rest[at]) if at < len(rest) else (0, 0.0)
    body = "\n".join(rest[:at] + rest[at + 1:]).strip()
    return {"name": name, "status": status, "seconds": seconds, "body": body[:200]}
