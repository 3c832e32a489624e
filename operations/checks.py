"""
Verification checks, phase by phase (the runbook's post-rollback verification).

Each operation reads the facts it needs, prints one line per check with the value it
observed, does nothing when every check passes, and fails the host naming each failed
check otherwise. Checks only read: running them again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from pyinfra import host, logger
from pyinfra.api import OperationError, operation

from facts import mongo
from facts.capacity import DiskFree, MemoryUsage
from facts.compose import ComposeServices, Stack
from facts.gather import side_by_side
from facts.http import FunctionalChecks, HttpResponse, functional_spec
from facts.mysql import MysqlFingerprint, MysqlPing, same_data
from facts.mysql import summary as mysql_summary
from facts.qdrant import QdrantFingerprint
from facts.redis import RedisFingerprint, RedisPing
from facts.shell import failing
from facts.text import counted
from facts.volumes import VolumeSet, snapshot_match


@dataclass
class Check:
    phase: int
    name: str
    observed: str
    expected: str
    ok: bool


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


def ping(stack: Stack, component: dict, services: dict) -> Check:
    """One component's ping: its client where we speak the engine, else its healthcheck."""
    engine, name = component["engine"], component["name"]
    service = component.get("service") or component.get("services", [None])[0]
    if engine == "mysql":
        answer = host.get_fact(MysqlPing, stack=stack, service=service,
                               user=component.get("user", "root"),
                               password_key=component.get("password_key"))
        return Check(2, f"{name} ping", answer["output"] or "no answer", "mysqld is alive", answer["ok"])
    if engine == "mongo":
        answer = host.get_fact(mongo.MongoPing, stack=stack, service=service, user=component.get("user", "root"),
                               password_key=component.get("password_key"), auth_db=component.get("auth_db", "admin"))
        return Check(2, f"{name} ping", answer["output"] or "no answer", '{"ok":1}', answer["ok"])
    if engine == "redis":
        answer = host.get_fact(RedisPing, stack=stack, service=service,
                               password_key=component.get("password_key"))
        return Check(2, f"{name} ping", answer["output"] or "no answer", "PONG", answer["ok"])
    names = component.get("services") or [service]
    states = {s: services.get(s, {}).get("health") or services.get(s, {}).get("state", "missing") for s in names}
    observed = ", ".join(f"{s} {state}" for s, state in states.items()) if len(names) > 1 else states[service]
    return Check(2, f"{name} healthcheck", observed, "healthy",
                 all(state in ("healthy", "running") for state in states.values()))


@operation()
def connectivity(stack: Stack, health_url: str, components: list[dict]):
    """
    Verify phase 2, connectivity: the health endpoint answers 200, each database answers.

    + stack: the stack the components run in
    + health_url: the backend's health endpoint, fetched from the host
    + components: stateful components, each ``{"name", "engine", "service"}`` plus the
      engine's credentials (``user``, ``password_key``: a key of the stack's env file)

    MySQL answers ``mysqladmin ping`` and Redis ``PING`` with the stack's credentials;
    engines without a client here (MongoDB, Qdrant, volume sets) answer through their
    containers' healthchecks (every service of a set; "running" where there is none).

    **Example:**

    .. code:: python

        checks.connectivity(
            name="Verify phase 2: connectivity",
            stack=Stack("/srv/layra"),
            health_url="http://127.0.0.1:8090/api/v1/health/check",
            components=[{"name": "mysql", "engine": "mysql", "service": "mysql",
                         "password_key": "MYSQL_ROOT_PASSWORD"}],
        )
    """
    needs_services = any(c["engine"] not in ("mysql", "mongo", "redis") for c in components)
    response, services = side_by_side([
        lambda: host.get_fact(HttpResponse, url=health_url),
        lambda: host.get_fact(ComposeServices, stack=stack) if needs_services else {},
    ])
    observed = f"HTTP {response['status']}" + (f" {response['body'][:120]}" if response["status"] != 200 else "")
    checks = [Check(2, "health endpoint", observed, "HTTP 200", response["status"] == 200)]
    checks += side_by_side([partial(ping, stack, component, services) for component in components])
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



def mysql_matches(stack: Stack, part: dict) -> tuple[str, bool, str]:
    live = host.get_fact(MysqlFingerprint, stack=stack, database=part["database"], service=part["service"],
                         user=part.get("user", "root"), password_key=part.get("password_key"))
    return mysql_summary(live), same_data(live, part["fingerprint"]), mysql_summary(part["fingerprint"])


def mongo_matches(stack: Stack, part: dict) -> tuple[str, bool, str]:
    live = host.get_fact(mongo.MongoFingerprint, stack=stack, database=part["database"], service=part["service"],
                         user=part.get("user", "root"), password_key=part.get("password_key"),
                         auth_db=part.get("auth_db", "admin"))
    return mongo.summary(live), mongo.same_data(live, part["fingerprint"]), mongo.summary(part["fingerprint"])


def qdrant_matches(stack: Stack, part: dict) -> tuple[str, bool, str]:
    live = host.get_fact(QdrantFingerprint, stack=stack, url=part["url"], password_key=part.get("password_key"))
    collection = live.get("collections", {}).get(part["collection"])
    observed = f"{collection['points']} points" if collection else "no collection"
    return observed, collection == part["fingerprint"], f"{part['fingerprint'].get('points')} points"


def redis_matches(stack: Stack, part: dict) -> tuple[str, bool, str]:
    volatile = {"volatile": part["volatile"]} if part.get("volatile") else {}
    live = host.get_fact(RedisFingerprint, stack=stack, service=part["service"], password_key=part.get("password_key"),
                         **volatile)
    return f"{live.get('dbsize')} keys", live == part["fingerprint"], f"{part['fingerprint'].get('dbsize')} keys"


def volumes_matches(stack: Stack, part: dict) -> tuple[str, bool, str]:
    live = host.get_fact(VolumeSet, stack=stack, services=part["services"])["volumes"]
    wanted = part["volumes"]
    how = {name: snapshot_match(live[name], want["fingerprint"], want["sha256"]) if name in live else None
           for name, want in wanted.items()}
    want_files = sum(want["fingerprint"].get("files", 0) for want in wanted.values())
    expected = f"{counted(len(wanted), 'volume')}, {counted(want_files, 'file')}"
    if all(how.values()) and "settled" in how.values():
        # their services changed them as they started (etcd's WAL): the counts differ, rightly
        settled = [name for name, found in how.items() if found == "settled"]
        files = sum((live[name].get("fingerprint") or {}).get("files", 0) for name in settled)
        return (f"{counted(len(wanted), 'volume')} at the snapshot; {', '.join(settled)} restored from the snapshot's "
                f"archive, unchanged since it settled: {counted(files, 'file')}", True, f"{expected}, or its archive as restored")
    files = sum((live.get(name, {}).get("fingerprint") or {}).get("files", 0) for name in wanted)
    observed = f"{counted(len(wanted), 'volume')}, {counted(files, 'file')}" + "".join(
        f", {name} differs" for name, found in how.items() if not found)
    return observed, all(how.values()), expected


# engine -> how to read a restored part's live fingerprint and compare it with the snapshot's:
# (observed summary, whether it matches, the snapshot's summary)
MATCHERS = {"mysql": mysql_matches, "mongo": mongo_matches, "qdrant": qdrant_matches, "redis": redis_matches,
            "volumes": volumes_matches}


@operation()
def integrity(stack: Stack, expected: list[dict]):
    """
    Verify phase 4, integrity: each restored component's live fingerprint equals the snapshot's.

    + stack: the stack the components run in
    + expected: one entry per restored part: ``{"name", "engine"}`` (a key of ``MATCHERS``),
      the connection settings (``service``, ``user``, ``password_key``, and ``database``
      for MySQL) and the snapshot's ``fingerprint``; for a volume set, ``services`` and
      ``volumes`` (per volume: ``fingerprint`` and the archive's ``sha256``)

    **Example:**

    .. code:: python

        checks.integrity(
            name="Verify phase 4: integrity",
            stack=Stack("/srv/layra"),
            expected=[{"name": "mysql/layra", "engine": "mysql", "database": "layra",
                       "service": "mysql", "password_key": "MYSQL_ROOT_PASSWORD",
                       "fingerprint": {"exists": True, "schema_sha256": "...", "tables": {}}}],
        )
    """
    unknown = sorted({part["engine"] for part in expected} - set(MATCHERS))
    if unknown:
        raise OperationError(f"no integrity check for engine {', '.join(map(repr, unknown))}")
    # each part's fingerprint is a full read of it (a checksum of every table): side by side
    found = side_by_side([partial(MATCHERS[part["engine"]], stack, part) for part in expected])
    checks = [Check(4, f"{part['name']} fingerprint", observed + ("" if ok else ", differs from the snapshot"),
                    f"the snapshot's: {want}", ok)
              for part, (observed, ok, want) in zip(expected, found)]
    yield from report(checks, "phase 4 (integrity)")


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
