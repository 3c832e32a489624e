"""
Verification checks, phase by phase (the runbook's post-rollback verification).

Each operation reads the facts it needs, prints one line per check with the value it
observed, does nothing when every check passes, and fails the host naming each failed
check otherwise. Checks only read: running them again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pyinfra import host, logger
from pyinfra.api import OperationError

from facts.capacity import DiskFree, MemoryUsage
from facts.compose import ComposeServices, Stack
from facts.gather import side_by_side
from facts.http import FunctionalChecks, HttpResponse, functional_spec
from facts.shell import failing
from operations.decorator import operation


@dataclass
class Check:
    phase: int
    name: str
    observed: str
    expected: str
    ok: bool


@dataclass(frozen=True)
class Probe:
    """One check an engine makes while the run executes: ``read(services)`` reads what it
    needs from the host and gives its ``Check``. ``services`` is the stack's
    ``ComposeServices``, read once for all the probes that ask for it (``{}`` otherwise)."""

    read: Callable[[dict], Check]
    needs_services: bool = False


# host name -> every check run while executing, for the run record and verify's table.
RESULTS: dict[str, list[Check]] = {}


def report(checks: list[Check], what: str):
    """Noop when all pass; otherwise a command that fails with every failed check named."""
    if host.state.is_executing:
        RESULTS.setdefault(host.name, []).extend(checks)
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            logger.info(
                f"{host.print_prefix}{mark} phase {check.phase} {check.name}: "
                f"{check.observed} (want {check.expected})"
            )
    failed = [check for check in checks if not check.ok]
    if not failed:
        host.noop(f"{what}: all {len(checks)} checks pass")
        return
    message = f"{what}: {len(failed)} of {len(checks)} checks failed: " + "; ".join(
        f"{check.name} is {check.observed} (want {check.expected})" for check in failed
    )
    yield failing(message)


def service_checks(services: dict) -> list[Check]:
    checks = []
    for name, service in sorted(services.items()):
        observed = service["state"] + (f", {service['health']}" if service["health"] else "")
        ok = service["state"] == "running" and service["health"] in ("", "healthy")
        checks.append(Check(1, f"service {name}", observed, "running, healthy", ok))
    return checks


@operation()
def infrastructure(stack: Stack, disk_paths: list[str] | None = None,
                   min_disk_free_pct: float = 10, max_memory_used_pct: float = 85):
    """
    Verify phase 1, infrastructure: services up and healthy, disk free, memory in use.

    + stack: the stack whose services must all run (and be healthy where they have a healthcheck)
    + disk_paths: paths whose filesystem must keep ``min_disk_free_pct`` free (default: the stack dir)
    + min_disk_free_pct: least free disk, in percent
    + max_memory_used_pct: most memory in use, in percent

    **Example:**

    .. code:: python

        checks.infrastructure(
            name="Verify phase 1: infrastructure",
            stack=Stack("/srv/layra"),
            disk_paths=["/srv/layra", "/var/lib/docker"],
        )
    """
    paths = disk_paths or [stack.dir]
    services, memory, *disks = side_by_side(
        [lambda: host.get_fact(ComposeServices, stack=stack), lambda: host.get_fact(MemoryUsage)]
        + [partial(host.get_fact, DiskFree, path=path) for path in paths]
    )
    checks = service_checks(services)
    if not services:
        checks.append(Check(1, "services", "none", f"the {stack.project} project's services", False))
    for disk in disks:
        checks.append(Check(1, f"disk free {disk['mount']}", f"{disk['free_pct']}%",
                            f"> {min_disk_free_pct}%", disk["free_pct"] > min_disk_free_pct))
    checks.append(Check(1, "memory used", f"{memory['used_pct']}%",
                        f"< {max_memory_used_pct}%", memory["used_pct"] < max_memory_used_pct))
    yield from report(checks, "phase 1 (infrastructure)")


def services_for(stack: Stack, probes: list[Probe]) -> dict:
    """The stack's services, where a probe asks for them (``{}`` otherwise)."""
    if isinstance(probes, (str, dict)) or not all(isinstance(probe, Probe) for probe in probes):
        raise OperationError(f"probes must be a list of checks.Probe, got {probes!r}")
    return host.get_fact(ComposeServices, stack=stack) if any(p.needs_services for p in probes) else {}


def probed(probes: list[Probe], services: dict) -> list[Check]:
    """Each probe's check, read side by side."""
    return side_by_side([partial(probe.read, services) for probe in probes])


@operation()
def connectivity(stack: Stack, health_url: str, probes: list[Probe]):
    """
    Verify phase 2, connectivity: the health endpoint answers 200, each component answers.

    + stack: the stack the components run in
    + health_url: the backend's health endpoint, fetched from the host
    + probes: one ``Probe`` per stateful component, from its engine (``Engine.ping``):
      MySQL answers ``mysqladmin ping``, MongoDB ``ping`` and Redis ``PING`` with the stack's
      credentials; engines without a client of ours (Qdrant, volume sets) answer through
      their containers' healthchecks (every service of a set; "running" where there is none)

    **Example:**

    .. code:: python

        checks.connectivity(
            name="Verify phase 2: connectivity",
            stack=Stack("/srv/layra"),
            health_url="http://127.0.0.1:8090/api/v1/health/check",
            probes=[ENGINES["mysql"].ping(stack, mysql_component)],
        )
    """
    response, services = side_by_side([lambda: host.get_fact(HttpResponse, url=health_url),
                                       lambda: services_for(stack, probes)])
    observed = f"HTTP {response['status']}" + (f" {response['body'][:120]}" if response["status"] != 200 else "")
    checks = [Check(2, "health endpoint", observed, "HTTP 200", response["status"] == 200)]
    checks += probed(probes, services)
    yield from report(checks, "phase 2 (connectivity)")


def login_check(answer: dict) -> Check:
    status, error = answer["status"], answer["error"]
    if status:
        observed = f"HTTP {status}" + ((", token" if answer["token"] else ", no token") if status < 300 else "")
    elif error and not error.startswith("curl:"):
        observed = error[:120]  # the host's own refusal: no password in the env file
    else:
        observed = "no answer" + (f": {error[:120]}" if error else "")
    return Check(3, "login returns a token", observed, "HTTP 200, token", answer["token"] and 200 <= status < 300)


def request_check(check: dict, answer: dict | None) -> Check:
    """One check's row; ``answer`` None: not run (the login gave no token)."""
    expected = f"HTTP {check['expect_status']}"
    if answer is None:
        return Check(3, check["name"], "not run: login failed", expected, False)
    ok = answer["status"] == check["expect_status"]
    if answer["status"]:
        observed = f"HTTP {answer['status']} in {answer['seconds']:.2f} s"
    else:
        observed = "no answer"
    if answer["body"] and (not ok or not answer["status"]):
        observed += f": {answer['body'][:120]}"
    return Check(3, check["name"], observed, expected, ok)


@operation()
def functionality(stack: Stack, base_url: str, login: dict | None = None, checks: list[dict] | tuple = (),
                  timeout: float = 10):
    """
    Verify phase 3, application functionality: the login returns a token, and each request
    made with it answers the status it should.

    + stack: the stack whose env file holds the login's password
    + base_url: ``http(s)://host[:port]`` of the application, fetched from the host
    + login: ``{"path", "username", "password_key"}`` (a key of the stack's env file); it
      posts ``{"username", "password"}`` as JSON and takes the answer's ``access_token``.
      None: the checks run without a token
    + checks: requests, each ``{"name", "method", "path"}`` with optional ``json`` (a body)
      and ``expect_status`` (200)
    + timeout: seconds each request may take

    All requests go in one round trip (`facts.http.FunctionalChecks`); the password and the
    token stay on the host. When the login gives no token, the checks are not run and fail
    as such.

    **Example:**

    .. code:: python

        checks.functionality(
            name="Verify phase 3: functionality",
            stack=Stack("/srv/layra"),
            base_url="http://127.0.0.1:8090",
            login={"path": "/api/v1/auth/login", "username": "demo",
                   "password_key": "LAYRA_CHECK_PASSWORD"},
            checks=[
                {"name": "knowledge-base list", "method": "GET", "path": "/api/v1/knowledge-bases"},
                {"name": "chat completion", "method": "POST", "path": "/api/v1/chat/completions",
                 "json": {"query": "test"}},
            ],
        )
    """
    try:
        spec = functional_spec({"base_url": base_url, "login": login, "checks": list(checks), "timeout": timeout})
    except ValueError as error:
        raise OperationError(f"functional checks: {error}") from None
    answers = host.get_fact(FunctionalChecks, env_file=stack.env_path, **spec)
    rows = []
    if spec["login"]:
        rows.append(login_check(answers["login"]))
    ran = list(answers["checks"])
    rows += [request_check(check, ran[index] if index < len(ran) else None)
             for index, check in enumerate(spec["checks"])]
    yield from report(rows, "phase 3 (functionality)")



@operation()
def integrity(stack: Stack, probes: list[Probe]):
    """
    Verify phase 4, integrity: each restored part's live fingerprint equals the snapshot's.

    + stack: the stack the components run in
    + probes: one ``Probe`` per part, from its engine (``Engine.integrity``): it reads the
      part's live fingerprint and compares it with the snapshot's, with the engine's one
      "matches the snapshot" decision (the one its restore's noop check uses)

    Each part's fingerprint is a full read of it (a checksum of every table): they are read
    side by side.

    **Example:**

    .. code:: python

        checks.integrity(
            name="Verify phase 4: integrity",
            stack=Stack("/srv/layra"),
            probes=[ENGINES["mysql"].integrity(stack, mysql_component, descriptor, sha256s)],
        )
    """
    yield from report(probed(probes, services_for(stack, probes)), "phase 4 (integrity)")


@operation()
def failed(message: str):
    """
    Fail the host with a message: the last step of a deploy that caught a failure earlier
    (and cleaned up after it) but must not end green.

    + message: what failed, printed on the host's error output

    **Example:**

    .. code:: python

        checks.failed(
            name="Fail the backup",
            message="backup 20261121T130000Z failed: no snapshot was kept",
            _if=lambda: any(step.did_error() for step in steps),
        )
    """
    yield failing(message)
