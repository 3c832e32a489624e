"""
Bad input is refused before any remote command runs, with an error that names the key and
what was expected.

Every case is the real pyinfra CLI (or `layra-rollback`) against sandbox-1 over SSH, as an
operator types it, through `counted_pyinfra.py`: each SSH command, upload and download is
logged before it is sent, and so is the start of pyinfra's execution stage.

- Syntactic bad input (ids, labels, refs, names, malformed host data): a non-zero exit, one
  error line naming the key, the value and what it must be, no traceback, and ZERO remote
  commands in the log.
- Semantic bad input only the host can know (a well-formed snapshot id it does not have, a
  commit its stack repository lacks): only facts ran, the run never reached execution and
  wrote no run record, the error names what was asked and what the host has, and sandbox-1
  is as it was (stack commit, tags, snapshots, lock, maintenance flag).
- Positive controls: a read-only fact, a CLI listing and an `exec -- true` log commands (and
  the execution stage), so a wrapper that stopped counting fails here.

Only sandbox-1 is ever in the inventory, and nothing is changed there: bad input to
backup.py, bad host data, `watch` and `prune` run with `--dry`/`--dry-run` too, so that
should a check ever go missing, the run plans (facts, read-only) and stops.

The runs are independent: they start together when the module starts, WORKERS at a time,
each test waiting for its own; pyinfra runs fork from `counted_pyinfra.py --serve` (the
interpreter and pyinfra's imports paid once per worker, not once per run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.whole_output import unwrapped

from .conftest import ROOT, host_named, inventory_file

RUNNER = Path(__file__).with_name("counted_pyinfra.py")
HOST = "sandbox-1"
STACK_DIR = "/srv/layra"
SNAPSHOT_ROOT = "/var/backups/layra"
LOCK = f"{STACK_DIR}/.git/layra-rollback.lock"
EXECUTING = "--> Beginning operation run"
# Concurrent runs, each an SSH connection to sandbox-1 (its sshd allows 100 starting at once)
WORKERS = 8
TIMEOUT = 300
REMOTE = ("run", "put", "get")


# The runs


@dataclass(frozen=True)
class Case:
    """One run: ``arguments`` after ``pyinfra -y INVENTORY`` (after ``layra-rollback`` with
    ``cli``; ``{inventory}`` is the inventory's path, ``{other}`` a second one's), sandbox-1's
    host data updated with ``data``. ``observed``: sandbox-1's state is read around it."""

    id: str
    arguments: tuple[str, ...]
    data: dict = field(default_factory=dict, compare=False)
    cli: bool = False
    observed: bool = False


@dataclass
class Counted:
    returncode: int
    output: str
    log: list[dict]
    directory: Path
    before: dict | None = None    # sandbox-1's state around an observed run
    after: dict | None = None

    @property
    def remote(self) -> list[dict]:
        return [entry for entry in self.log if entry["kind"] in REMOTE]

    @property
    def executed(self) -> bool:
        return any(entry["kind"] == "execute" for entry in self.log) or EXECUTING in self.output

    def commands(self, limit: int = 5) -> str:
        """The first remote commands, cut short (no command line holds a secret: still, never
        more than needed to see which fact or operation it was)."""
        return "\n".join(f"  {entry['kind']}: {entry['what'][:160]}" for entry in self.remote[:limit])


class Server:
    """``counted_pyinfra.py --serve``: runs forked from a process that has imported what
    ``python -m pyinfra`` imports before main() (otherwise half of each run's CPU)."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, str(RUNNER), "--serve"], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, request: dict) -> int:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"counted_pyinfra.py --serve (pid {self.process.pid}) ended")
        return json.loads(answer)["returncode"]

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()   # ours, through its own handle
            self.process.wait()


def counted(directory: Path, case: Case, server: Server | None = None) -> Counted:
    """Run ``case`` through counted_pyinfra.py, as the operator would type it."""
    inventory = inventory_file(directory, {HOST: dict(case.data)})
    arguments = [argument.replace("{inventory}", inventory) for argument in case.arguments]
    if any("{other}" in argument for argument in arguments):
        (directory / "other").mkdir()
        other = inventory_file(directory / "other", {HOST: {}})
        arguments = [argument.replace("{other}", other) for argument in arguments]
    log, output = directory / "remote.log", directory / "output.txt"
    env = {**os.environ, "LAYRA_RUNS_DIR": str(directory / "runs"), "COLUMNS": "200"}
    if not case.cli:
        arguments = ["-y", inventory, *arguments]
    if server is not None:
        returncode = server.run({"log": str(log), "cli": case.cli, "arguments": arguments, "cwd": str(ROOT),
                                 "env": env, "output": str(output)})
        text = output.read_text()
    else:
        command = [sys.executable, str(RUNNER), str(log), *(["--layra-rollback"] if case.cli else []), *arguments]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
                                stdin=subprocess.DEVNULL, env=env)
        returncode, text = result.returncode, result.stdout + result.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Counted(returncode, text, entries, directory)


def observed(host, directory: Path, case: Case, server: Server | None = None) -> Counted:
    before = host_state(host)
    result = counted(directory, case, server)
    result.before, result.after = before, host_state(host)
    return result


class Runs:
    """The selected cases of this module, started together WORKERS at a time, each worker
    with its own server."""

    def __init__(self, cases: list[Case], base: Path, host):
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="bad-input")
        self.lock = threading.Lock()
        self.local = threading.local()
        self.servers: list[Server] = []
        self.base, self.host = base, host
        self.futures: dict[str, Future] = {}
        for case in sorted(cases, key=lambda case: not (case.observed or case.cli)):   # the slowest first
            self.start(case)

    def server(self) -> Server:
        if not hasattr(self.local, "server"):
            self.local.server = Server()
            with self.lock:
                self.servers.append(self.local.server)
        return self.local.server

    def run(self, case: Case) -> Counted:
        directory = Path(tempfile.mkdtemp(prefix=f"{case.id[:40]}-", dir=self.base))
        if case.observed:
            return observed(self.host, directory, case, self.server())
        return counted(directory, case, self.server())

    def start(self, case: Case) -> Future:
        key = repr(case)  # the data too
        with self.lock:
            if key not in self.futures:
                self.futures[key] = self.pool.submit(self.run, case)
            return self.futures[key]

    def __getitem__(self, case: Case) -> Counted:
        return self.start(case).result(timeout=TIMEOUT + 60)

    def again(self, case: Case) -> Counted:
        return self.pool.submit(self.run, case).result(timeout=TIMEOUT + 60)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        for server in self.servers:
            server.close()


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, sandbox):
    here = request.node.nodeid
    cases = [item.callspec.params["case"] for item in request.session.items
             if item.nodeid.startswith(here) and hasattr(item, "callspec") and "case" in item.callspec.params]
    pool = Runs(cases, tmp_path_factory.mktemp("bad-input"), host_named(sandbox, HOST))
    yield pool
    pool.close()


def param(case_id: str, arguments, data=None, cli=False, observed=False, marks=()):
    return pytest.param(Case(case_id, tuple(arguments), dict(data or {}), cli, observed), id=case_id, marks=marks)


# The checks


def error_line(result: Counted, *fragments: str) -> str:
    """The one line of the output that holds every fragment (the key, the value, what it must be)."""
    for line in result.output.splitlines():
        if all(fragment in line for fragment in fragments):
            return line
    raise AssertionError(f"no line of the output names all of {fragments!r}:\n{result.output[-4000:]}")


def assert_refused_before_any_remote_command(result: Counted, *fragments: str):
    assert result.returncode != 0, f"accepted (exit 0):\n{result.output[-4000:]}"
    assert not result.remote, (f"{len(result.remote)} remote command(s) ran before the refusal:\n"
                               f"{result.commands()}\n{result.output[-3000:]}")
    assert not result.executed, f"the run reached execution:\n{result.output[-4000:]}"
    assert "Traceback" not in result.output, f"a traceback, not an error:\n{result.output[-4000:]}"
    error_line(result, *fragments)


# Snapshot ids and labels: what an operator could type, and how the errors print it

# What an operator could type where a plain name belongs, whatever the name
METACHARACTERS = {
    "a-path-out-of-the-root": "../etc",
    "a-command-after-a-semicolon": "a;rm -rf /",
    "a-space": "a b",
    "a-single-quote": "a'b",
    "a-double-quote": 'a"b',
    "a-command-substitution": "$(id)",
    "backquotes": "`id`",
    "a-newline": "a\nb",
}
BAD_IDS = {
    **METACHARACTERS,
    "a-trailing-newline": "nightly\n",
    "an-unfinished-snapshots-name": "x.partial",
    "an-option": "-rf",
}
@pytest.mark.parametrize("case", [
    *(param(f"rollback-{name}", ["rollback.py", "--data", f"snapshot={value}"]) for name, value in BAD_IDS.items()),
    param("rollback-empty", ["rollback.py", "--data", "snapshot="]),
    *(param(f"backup-{name}", ["backup.py", "--data", f"snapshot={BAD_IDS[name]}", "--dry"])
      for name in ("a-path-out-of-the-root", "a-command-substitution", "an-unfinished-snapshots-name")),
    param("backup-empty", ["backup.py", "--data", "snapshot=", "--dry"]),
])
def test_a_snapshot_id_that_is_not_a_plain_name_is_refused_before_any_remote_command(runs, case):
    value = case.arguments[2].split("=", 1)[1]
    if value or case.arguments[0] != "rollback.py":
        assert_refused_before_any_remote_command(runs[case], f"snapshot id {value!r} must")
    else:   # rollback.py takes --data snapshot= (empty) as no snapshot: then it needs a commit
        assert_refused_before_any_remote_command(runs[case], "--data snapshot=<id|latest>")


BAD_LABELS = {**{name: value for name, value in BAD_IDS.items() if name not in ("a-trailing-newline", "an-option")},
              "65-characters": "x" * 65, "empty": ""}


@pytest.mark.parametrize("case", [
    param(f"backup-{name}", ["backup.py", "--data", f"label={value}", "--dry"]) for name, value in BAD_LABELS.items()
])
def test_a_snapshot_label_that_is_not_a_plain_name_is_refused_before_any_remote_command(runs, case):
    value = case.arguments[2].split("=", 1)[1]
    assert_refused_before_any_remote_command(runs[case], f"snapshot label {value!r} must be 1-64 characters")


# Commits

BAD_REFS = {
    **METACHARACTERS,
    "a-trailing-newline": "v1.0.0\n",
    "a-range": "v1.0.0..HEAD",
    "an-option": "-x",
    "a-reflog-entry": "HEAD@{1}",
}


@pytest.mark.parametrize("case", [
    *(param(f"rollback-{name}", ["rollback.py", "--data", f"commit={value}"]) for name, value in BAD_REFS.items()),
    *(param(f"migrate-{name}", ["migrate.py", "--data", f"commit={BAD_REFS[name]}"])
      for name in ("a-command-substitution", "a-trailing-newline", "a-range", "an-option")),
])
def test_a_commit_that_is_not_a_git_ref_is_refused_before_any_remote_command(runs, case):
    value = case.arguments[2].split("=", 1)[1]
    assert_refused_before_any_remote_command(runs[case], "commit", repr(value), "valid git ref")


@pytest.mark.parametrize("case", [
    param("rollback-commit-empty", ["rollback.py", "--data", "commit="]),
    param("migrate-commit-empty", ["migrate.py", "--data", "commit="]),
])
def test_an_empty_commit_is_refused_before_any_remote_command(runs, case):
    assert_refused_before_any_remote_command(runs[case], "--data commit=")


# The CLI's ids, refs and roots


@pytest.mark.parametrize("case", [
    *(param(f"snapshots-verify-{name}", ["snapshots", "verify", "{inventory}", BAD_IDS[name]], cli=True)
      for name in ("a-path-out-of-the-root", "a-command-substitution", "a-newline")),
    param("snapshots-verify-empty", ["snapshots", "verify", "{inventory}", ""], cli=True),
    param("watch-a-command-after-a-semicolon", ["watch", "-i", "{inventory}", "--dry-run", "--duration", "1s",
                                               "--snapshot", "a;rm -rf /"], cli=True),
    param("rehearse-backquotes", ["rehearse", "--staging", "{inventory}", "--source", "{other}", "--snapshot", "`id`"],
         cli=True),
])
def test_the_cli_refuses_a_snapshot_id_that_is_not_a_plain_name_before_any_remote_command(runs, case):
    assert_refused_before_any_remote_command(runs[case], repr(case.arguments[-1]), "is not a snapshot id: it must be")


@pytest.mark.parametrize("case", [
    param(f"rehearse-release-{name}", ["rehearse", "--staging", "{inventory}", "--source", "{other}",
                                      "--snapshot", "20261121T130000Z-pre-release", "--release", BAD_REFS[name]],
         cli=True)
    for name in ("a-command-substitution", "a-range")
])
def test_the_cli_refuses_a_release_that_is_not_a_git_ref_before_any_remote_command(runs, case):
    assert_refused_before_any_remote_command(runs[case], "--release", repr(case.arguments[-1]), "is not a git ref")


@pytest.mark.parametrize("case", [
    param("snapshots-list-root-relative", ["snapshots", "list", "{inventory}", "--root", "backups"], cli=True),
    param("snapshots-prune-root-with-a-newline", ["snapshots", "prune", "{inventory}", "--keep", "1", "--dry-run",
                                                 "--root", "/var/backups\n/etc"], cli=True),
])
def test_the_cli_refuses_a_snapshot_root_that_is_not_an_absolute_directory_before_any_remote_command(runs, case):
    assert_refused_before_any_remote_command(runs[case], "--root", repr(case.arguments[-1]), "must be an absolute")


@pytest.mark.parametrize("case", [
    param("snapshots-list-a-relative-root", ["snapshots", "list", "{inventory}"], {"layra_snapshot_root": "backups"},
         cli=True),
    param("triggers-check-kafka-a-string", ["triggers", "check", "-i", "{inventory}"], {"layra_kafka": "kafka"},
         cli=True),
    param("watch-ready-timeout-a-string", ["watch", "-i", "{inventory}", "--dry-run", "--duration", "1s"],
         {"layra_ready_timeout": "3m"}, cli=True),
])
def test_the_cli_refuses_malformed_host_data_before_any_remote_command(runs, case):
    (key, value), = case.data.items()
    assert_refused_before_any_remote_command(runs[case], HOST, f"host data {key!r}", "must be", repr(value))


# Names that reach a shell or a database, in host data


def mysql(**settings) -> dict:
    return {"layra_components": {"mysql": {"engine": "mysql", "service": "mysql", "user": "root",
                                           "password_key": "MYSQL_ROOT_PASSWORD", "databases": ["layra"],
                                           **settings}}}


def component(name: str, **settings) -> dict:
    return {"layra_components": {name: settings}}


QDRANT = {"engine": "qdrant", "service": "qdrant"}

# (case id, host data, the key the error names, the bad value as the error prints it)
BAD_NAMES = [
    ("a-database-with-sql-after-a-semicolon", mysql(databases=["layra; DROP DATABASE x"]),
     "layra_components.mysql.databases", "['layra; DROP DATABASE x']"),
    ("a-database-with-a-backquote", mysql(databases=["a`b"]), "layra_components.mysql.databases", "['a`b']"),
    ("a-database-with-a-space", mysql(databases=["a b"]), "layra_components.mysql.databases", "['a b']"),
    ("a-database-with-a-quote", mysql(databases=["a'b"]), "layra_components.mysql.databases", '["a\'b"]'),
    ("a-database-of-49-characters", mysql(databases=["d" * 49]), "layra_components.mysql.databases", "d" * 49),
    ("a-database-with-a-trailing-newline", mysql(databases=["layra\n"]), "layra_components.mysql.databases",
     "['layra\\n']"),
    ("a-mongo-database-with-a-command", component("mongodb", engine="mongo", service="mongodb",
                                                  databases=["layra$(id)"]),
     "layra_components.mongodb.databases", "['layra$(id)']"),
    ("a-collection-with-a-command", component("qdrant", **QDRANT, collections=["kb; rm -rf /"]),
     "layra_components.qdrant.collections", "['kb; rm -rf /']"),
    ("a-collection-of-dots", component("qdrant", **QDRANT, collections=[".."]),
     "layra_components.qdrant.collections", "['..']"),
    ("a-collection-with-a-trailing-newline", component("qdrant", **QDRANT, collections=["kb\n"]),
     "layra_components.qdrant.collections", "['kb\\n']"),
    ("a-service-with-a-command-after-a-semicolon", mysql(service="backend; id"), "layra_components.mysql.service",
     "'backend; id'"),
    ("a-service-with-a-command-substitution", mysql(service="$(id)"), "layra_components.mysql.service", "'$(id)'"),
    ("a-volume-set-service-with-a-command", component("minio", engine="volumes", services=["minio", "$(id)"]),
     "layra_components.minio.services", "['minio', '$(id)']"),
    ("the-maintenance-service-with-a-command", {"layra_maintenance": {"service": "backend; id"}},
     "layra_maintenance", "'backend; id'"),
    ("a-password-key-with-an-assignment", mysql(password_key="X=1"), "layra_components.mysql.password_key",
     "'X=1'"),
    ("a-password-key-with-a-command", mysql(password_key="$(id)"), "layra_components.mysql.password_key",
     "'$(id)'"),
    ("a-password-key-with-a-trailing-newline", mysql(password_key="MYSQL_ROOT_PASSWORD\n"),
     "layra_components.mysql.password_key", "'MYSQL_ROOT_PASSWORD\\n'"),
    ("a-flush-pattern-with-a-newline", component("redis", engine="redis", service="redis",
                                                 flush_patterns=["user:session:*\nFLUSHALL"]),
     "layra_components.redis.flush_patterns", "['user:session:*\\nFLUSHALL']"),
    ("a-component-named-with-a-semicolon", component("my;sql", engine="mysql", service="mysql"),
     "layra_components", "'my;sql'"),
]


@pytest.mark.parametrize("case, key, shown", [
    pytest.param(Case(case_id, ("rollback.py", "--data", "commit=v1.0.0", "--dry"), data), key, shown, id=case_id)
    for case_id, data, key, shown in BAD_NAMES
])
def test_a_name_with_shell_or_sql_metacharacters_in_host_data_is_refused_before_any_remote_command(runs, case, key,
                                                                                                  shown):
    assert_refused_before_any_remote_command(runs[case], f"host data '{key}", "must", shown)


# Malformed host data: missing keys, wrong types

# (case id, deploy, host data, the key the error names, what it says is expected)
MALFORMED = [
    ("components-a-list", "rollback.py", {"layra_components": ["mysql"]}, "layra_components",
     "must be a mapping of component name to settings, got ['mysql']"),
    ("a-component-without-engine", "backup.py", component("mysql", service="mysql", databases=["layra"]),
     "layra_components.mysql.engine", "must be one of mysql, mongo, redis, qdrant, volumes, got None"),
    ("an-unknown-engine", "rollback.py", component("mysql", engine="postgres", service="mysql"),
     "layra_components.mysql.engine", "must be one of mysql, mongo, redis, qdrant, volumes, got 'postgres'"),
    ("a-component-with-an-empty-service", "migrate.py", component("mysql", engine="mysql", service=""),
     "layra_components.mysql.service", "must be a compose service name"),
    ("volume-services-a-string", "backup.py", component("milvus", engine="volumes", services="milvus-standalone"),
     "layra_components.milvus.services", "must be a non-empty list of compose service names"),
    ("databases-a-string", "rollback.py", mysql(databases="layra"), "layra_components.mysql.databases",
     "must be a list of plain database names"),
    ("snapshot-root-relative", "backup.py", {"layra_snapshot_root": "backups/layra"}, "layra_snapshot_root",
     "must be an absolute directory"),
    ("snapshot-root-with-a-newline", "rollback.py", {"layra_snapshot_root": "/var/backups\n/etc"},
     "layra_snapshot_root", "must be an absolute directory"),
    ("compose-files-empty", "rollback.py", {"layra_compose_files": []}, "layra_compose_files",
     "must be a non-empty list of paths, got []"),
    ("compose-files-a-string", "migrate.py", {"layra_compose_files": "docker-compose.yml"}, "layra_compose_files",
     "must be a list of compose file paths"),
    ("stack-dir-an-int", "rollback.py", {"layra_stack_dir": 5}, "layra_stack_dir",
     "must be the stack's directory (a string), got 5"),
    ("maintenance-with-an-unknown-key", "rollback.py", {"layra_maintenance": {"service": "backend",
                                                                             "nginx": "nginx"}},
     "layra_maintenance", "must be a mapping with service, nginx_service, dropin and backend_writes"),
    ("functional-checks-a-string", "rollback.py", {"layra_functional_checks": "yes"}, "layra_functional_checks",
     "must be a mapping with base_url"),
    ("functional-checks-login-a-string", "rollback.py",
     {"layra_functional_checks": {"base_url": "http://127.0.0.1:8090", "login": "demo"}},
     "layra_functional_checks.login", "must be a mapping with path, username, password_key"),
    ("kafka-a-string", "rollback.py", {"layra_kafka": "kafka"}, "layra_kafka", "must be a mapping"),
    ("kafka-bootstrap-with-a-command", "migrate.py", {"layra_kafka": {"service": "kafka",
                                                                    "bootstrap": "kafka:9092;id"}},
     "layra_kafka.bootstrap", "must be host:port"),
    ("ready-timeout-a-string", "rollback.py", {"layra_ready_timeout": "3m"}, "layra_ready_timeout",
     "must be a whole number of seconds"),
    ("min-disk-free-a-string", "rollback.py", {"layra_min_disk_free_pct": "ten"}, "layra_min_disk_free_pct",
     "must be a percentage"),
]
DATA_FOR = {"rollback.py": "commit=v1.0.0", "migrate.py": "commit=v1.0.0", "backup.py": "label=never-taken"}


@pytest.mark.parametrize("case, key, expected", [
    pytest.param(Case(case_id, (deploy, "--data", DATA_FOR[deploy], "--dry"), data), key, expected,
                 id=f"{deploy.removesuffix('.py')}-{case_id}")
    for case_id, deploy, data, key, expected in MALFORMED
])
def test_malformed_host_data_is_refused_naming_the_key_before_any_remote_command(runs, case, key, expected):
    assert_refused_before_any_remote_command(runs[case], f"host data '{key}'", expected)


# Semantic bad input: well-formed, but the host does not have it

STATE = {
    "stack commit": f"git -C {STACK_DIR} rev-parse HEAD",
    "stack tags": f"git -C {STACK_DIR} tag -l",
    "snapshots": f"ls -A {SNAPSHOT_ROOT} 2>/dev/null || true",
    "rollback lock": f"head -c 300 {LOCK} 2>/dev/null || echo absent",
    "maintenance": f"grep -c '^MAINTENANCE_MODE=true' {STACK_DIR}/.env || true",
}
ATTEMPTS = 3


def host_state(host) -> dict[str, str]:
    """What a run that went too far would change on the host (one SSH round trip)."""
    marker = "--- layra:state ---"
    output = host.ssh(f"; echo '{marker}'; ".join(STATE.values()))
    return dict(zip(STATE, (part.strip() for part in output.split(marker))))


def another_run(before: dict, after: dict) -> list[str]:
    """What shows that another run changed the host meanwhile (the sandbox is shared while
    the suite is written; under `make test` nothing else runs): a lock, a tag or a snapshot.
    A run of ours that got that far would have executed and written a run record, and
    both are asserted absent first."""
    signs = [f"lock {before['rollback lock'][:100]} -> {after['rollback lock'][:100]}"
             for _ in range(before["rollback lock"] != after["rollback lock"])]
    for key in ("stack tags", "snapshots"):
        signs += [f"{key}: {name}" for name in set(after[key].split()) ^ set(before[key].split())]
    return signs


def assert_only_planned(result: Counted, reads_only=()):
    """Refused after facts only: nothing executed (``reads_only``: the command is itself a
    read-only operation, `snapshots verify`, so every command must start with one of these),
    no run record, no file transferred, no traceback."""
    assert result.returncode != 0, f"accepted (exit 0):\n{result.output[-4000:]}"
    assert "Traceback" not in result.output, result.output[-4000:]
    records = sorted(str(path) for path in (result.directory / "runs").glob("*/record.json"))
    assert not records, f"a run that executes writes a record: {records}"
    assert result.remote, "the host was never asked: this is not the host's answer"
    assert not [entry for entry in result.remote if entry["kind"] != "run"], "a file was transferred"
    if reads_only:
        # besides the reads, at most the refusal itself: a command that prints it and fails
        # (operations.decorator), which changes nothing
        others = [unwrapped(entry["what"])[:160] for entry in result.remote
                  if not unwrapped(entry["what"]).startswith(reads_only)
                  and not re.fullmatch(r"echo .* >&2; exit 1", unwrapped(entry["what"]).strip(), re.S)]
        assert not others, f"commands besides the reads {reads_only}: {others}"
    else:
        assert not result.executed, f"the run reached execution:\n{result.output[-4000:]}"


def unchanged(runs, case: Case, reads_only=()) -> Counted:
    """The observed run of ``case``, only planned, with sandbox-1 as it was (run again, up to
    ATTEMPTS times, while another run visibly changes it meanwhile)."""
    result = runs[case]
    for attempt in range(ATTEMPTS):
        assert_only_planned(result, reads_only)
        if result.after == result.before:
            return result
        signs = another_run(result.before, result.after)
        changed = {key: f"{result.before[key]!r} -> {result.after[key]!r}" for key in STATE
                   if result.before[key] != result.after[key]}
        assert signs, f"{HOST} changed and no other run shows: {changed}"
        result = runs.again(case)
    raise AssertionError(f"{HOST} changed during each of {ATTEMPTS} runs, each time by another run ({signs}): "
                         "run this again once the sandbox is quiet")


UNKNOWN_SNAPSHOT = "20200101T000000Z-never-taken"
UNKNOWN_COMMIT = "deadbeef" * 5


@pytest.mark.parametrize("case", [
    param("rollback-unknown-snapshot", ["rollback.py", "--data", f"snapshot={UNKNOWN_SNAPSHOT}"], observed=True)])
def test_a_well_formed_snapshot_id_the_host_does_not_have_is_refused_after_facts_only(runs, case):
    result = unchanged(runs, case)
    error_line(result, HOST, f"no snapshot {UNKNOWN_SNAPSHOT!r} under {SNAPSHOT_ROOT}", "(this host has")


@pytest.mark.parametrize("case", [
    param("rollback-unknown-sha", ["rollback.py", "--data", f"commit={UNKNOWN_COMMIT}"], observed=True),
    param("rollback-unknown-tag", ["rollback.py", "--data", "commit=v9.9.9-never-released"], observed=True),
])
def test_a_well_formed_commit_the_stack_repository_lacks_is_refused_after_facts_only(runs, case):
    result = unchanged(runs, case)
    ref = case.arguments[2].split("=", 1)[1]
    error_line(result, HOST, f"commit {ref!r} is not in the repository at {STACK_DIR}", "nothing was changed",
               f"(the stack is at {result.before['stack commit'][:12]})")


@pytest.mark.parametrize("case", [
    param("migrate-unknown-sha", ["migrate.py", "--data", f"commit={UNKNOWN_COMMIT}"], observed=True)])
def test_a_guarded_release_of_a_commit_the_repository_lacks_is_refused_before_its_snapshot(runs, case):
    result = unchanged(runs, case)
    error_line(result, HOST, f"commit {UNKNOWN_COMMIT!r} is not in the repository at {STACK_DIR}",
               "nothing was changed")


@pytest.mark.parametrize("case", [
    param("snapshots-verify-unknown", ["snapshots", "verify", "{inventory}", UNKNOWN_SNAPSHOT], cli=True,
         observed=True)])
def test_the_cli_refuses_to_verify_a_snapshot_the_host_does_not_have_after_reading_only(runs, case):
    # its manifest (SnapshotManifest), then the catalog, to say what the host has (SnapshotCatalog)
    reads = (f"cat -- {SNAPSHOT_ROOT}/{UNKNOWN_SNAPSHOT}/manifest.json ", f"cd -- {SNAPSHOT_ROOT} ")
    result = unchanged(runs, case, reads)
    error_line(result, f"no snapshot {UNKNOWN_SNAPSHOT} under {SNAPSHOT_ROOT}", "(there")


# Positive controls: the wrapper counts, so the zero counts above mean something


@pytest.mark.parametrize("case", [
    param("a-fact", ["fact", "facts.snapshots.SnapshotCatalog", f"root={SNAPSHOT_ROOT}"]),
    param("the-cli-listing-snapshots", ["snapshots", "list", "{inventory}"], cli=True),
])
def test_a_read_only_run_is_counted_command_by_command(sandbox, runs, case):
    result = runs[case]
    assert result.returncode == 0, result.output[-4000:]
    address = host_named(sandbox, HOST).address  # this test lane's sandbox-1
    assert [entry["what"] for entry in result.log if entry["kind"] == "connect"] == [address]
    assert any("manifest.json" in entry["what"] for entry in result.remote), result.log
    assert not result.executed


@pytest.mark.parametrize("case", [param("exec-true", ["exec", "--", "true"])])
def test_an_executed_command_is_counted_with_the_execution_stage(runs, case):
    result = runs[case]
    assert result.returncode == 0, result.output[-4000:]
    assert result.executed and EXECUTING in result.output
    assert [entry["what"] for entry in result.remote] == ["true"], result.log
