"""
The e2e harness: the sandbox's SSH test hosts (`make sandbox-up`), reached for real.

pyinfra runs as operators run it (`pyinfra -y inventories/sandbox.py rollback.py ...`);
the harness itself sets scenes on the hosts over plain ssh with the sandbox's key and
known_hosts (host keys checked). These tests never skip: without a sandbox they fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LAYRA_SANDBOX_DIR", ROOT / ".sandbox"))
STACK = "/srv/layra"
# A lane: the two hosts one pytest process drives. `make test` runs two lanes side by side
# on a sandbox of four hosts (tests/lanes.py): lane N (LAYRA_TEST_LANE) takes the sandbox's
# hosts 2N+1 and 2N+2, named sandbox-1 and sandbox-2 for it, as the tests and the sandbox
# inventories know them (LAYRA_SANDBOX_HOSTS: the lane's hosts file). Alone, a process is
# lane 0: the first two.
LANE = os.environ.get("LAYRA_TEST_LANE", "0")
# Run records of the e2e runs: beside the sandbox's state, not in the operator's runs/.
RUNS = STATE / "e2e-runs" / f"lane{LANE}"
RUN_LINE = re.compile(r"--> Run (\S+) (succeeded|failed): record (\S+)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def record(self) -> dict:
        """The run record this run wrote (its path is printed at the end)."""
        match = RUN_LINE.search(self.output)
        assert match, f"no run record line in pyinfra's output:\n{self.output[-3000:]}"
        return json.loads(Path(match.group(3)).read_text())

    def totals(self) -> dict[str, int]:
        """pyinfra's closing "Grand total" row: operations per host that changed, failed, did not."""
        for line in self.output.splitlines():
            if line.strip().startswith("Grand total"):
                cells = re.split(r"\s{2,}", line.strip())[1:]
                hosts, changed, error, no_change = (0 if c == "-" else int(c) for c in cells)
                return {"hosts": hosts, "changed": changed, "error": error, "no_change": no_change}
        raise AssertionError(f"no results table in pyinfra's output:\n{self.output}")


@dataclass
class SandboxHost:
    name: str
    address: str
    port: int
    container: str = ""  # the Docker-in-Docker container that is this host, on this machine

    def ssh(self, command: str, check: bool = True, timeout: int = 300) -> str:
        result = subprocess.run(
            ["ssh", "-i", str(STATE / "id_ed25519"), "-p", str(self.port),
             "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
             "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", f"root@{self.address}", command],
            capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name}: {command!r} failed: {result.stderr or result.stdout}")
        return result.stdout.strip()

    def stack(self, command: str, check: bool = True) -> str:
        return self.ssh(f"cd {STACK} && {command}", check=check)

    def commit(self, ref: str = "HEAD") -> str:
        return self.stack(f"git rev-parse {shlex.quote(ref + '^{commit}')}")

    def containers(self) -> dict[str, str]:
        """service -> container id, for the stack's running containers."""
        out = self.ssh("docker ps --filter label=com.docker.compose.project=layra "
                       "--format '{{.Label \"com.docker.compose.service\"}} {{.ID}}'")
        return dict(line.split() for line in out.splitlines() if line.strip())

    def health(self) -> str:
        return self.ssh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8090/api/v1/health/check",
                        check=False)

    def deploy_by_hand(self, ref: str):
        """What an operator did to ship a release: checkout, compose up, and nginx reloaded
        (it resolves the recreated backend again), no waiting."""
        self.stack(f"git checkout -q {shlex.quote(ref)} && docker compose up -d --build --quiet-pull 2>&1 && "
                   "docker compose exec -T nginx nginx -s reload 2>&1")


def sql(host: SandboxHost, statement: str, database: str = "layra") -> str:
    """A statement run by the host's MariaDB client as root (its password read there, from the env file),
    speaking utf8mb4 whatever the container's locale."""
    return host.stack(
        'MYSQL_PWD=$(sed -n "s/^MYSQL_ROOT_PASSWORD=//p" .env) docker compose exec -T -e MYSQL_PWD mysql '
        f"mariadb -uroot --default-character-set=utf8mb4 -N -B {shlex.quote(database) if database else ''} "
        f"-e {shlex.quote(statement)} </dev/null"
    )


def redis_cli(host: SandboxHost, *args: str) -> str:
    return host.stack(
        'REDISCLI_AUTH=$(sed -n "s/^REDIS_PASSWORD=//p" .env) docker compose exec -T -e REDISCLI_AUTH redis '
        "redis-cli " + " ".join(shlex.quote(arg) for arg in args) + " </dev/null"
    )


def every_host() -> list[dict]:
    hosts_file = STATE / "hosts.json"
    if not hosts_file.exists():
        pytest.fail(f"no sandbox at {STATE}: run `make sandbox-up` (make test does it)", pytrace=False)
    return json.loads(hosts_file.read_text())


def lane_hosts() -> list[dict]:
    """This process's two hosts (``LANE``), written as the lane's hosts file, which every
    pyinfra run of this process reads (LAYRA_SANDBOX_HOSTS)."""
    every = every_host()
    index = int(LANE)
    mine = every[2 * index:2 * index + 2]
    if len(mine) < 2:
        pytest.fail(f"test lane {LANE} drives sandbox hosts {2 * index + 1} and {2 * index + 2}, and the "
                    f"sandbox has {len(every)}: SANDBOX_HOSTS={2 * index + 2} make sandbox-up", pytrace=False)
    lane = [{**host, "name": f"sandbox-{number}"} for number, host in enumerate(mine, start=1)]
    lane_file = STATE / "lanes" / LANE / "hosts.json"
    lane_file.parent.mkdir(parents=True, exist_ok=True)
    lane_file.write_text(json.dumps(lane))
    os.environ["LAYRA_SANDBOX_HOSTS"] = str(lane_file)
    return lane


class Sandbox:
    def __init__(self, hosts: list[dict] | None = None):
        """The sandbox's hosts (every one: benchmarks), or those given (a test lane)."""
        self.hosts = [SandboxHost(h["name"], h["address"], int(h.get("port", 22)), h.get("container", ""))
                      for h in (every_host() if hosts is None else hosts)]

    def pyinfra(self, deploy: str, *args: str, timeout: int = 600, inventory: str = "inventories/sandbox.py") -> Run:
        result = subprocess.run(
            [sys.executable, "-m", "pyinfra", "-y", inventory, deploy, *args],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "LAYRA_SANDBOX_DIR": str(STATE), "LAYRA_RUNS_DIR": str(RUNS), "COLUMNS": "200"},
        )
        return Run(result.returncode, result.stdout + result.stderr)

    def at_good_release(self):
        """Every host at v1.0.0 and healthy, whatever an earlier test left."""
        run = self.pyinfra("rollback.py", "--data", "commit=v1.0.0")
        assert run.ok, run.output


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox(lane_hosts())
