"""How a rollback waits for a Redis copy served beside the live data (facts.redis.copy_served,
facts/scripts/redis_served.sh), run for real under sh with `docker` on the PATH a stand-in
(tests/fake_docker.py): a server still loading is waited for however long its load takes;
one that answers nothing at all for the quiet limit fails, and the throwaway container is
removed in every case."""

from __future__ import annotations

import subprocess
import time

import pytest
from pyinfra.api import StringCommand

from facts.compose import Stack
from facts.redis import COPY_QUIET_SECONDS, copy_served
from tests.fake_docker import FakeDocker

STACK = Stack("/srv/layra", project="layra")
LAYOUT = {"dir": "/data", "dbfilename": "dump.rdb", "appendonly": False, "appenddirname": "",
          "appendfilename": "appendonly.aof"}
LOADING = "LOADING Redis is loading the dataset in memory"


def served(docker: FakeDocker, quiet: int = 2) -> tuple[subprocess.CompletedProcess, float]:
    command = StringCommand(copy_served(STACK, "redis", LAYOUT, "displaced", absent="echo absent; exit 0",
                                        quiet=quiet), 'echo "served by $cid"')
    start = time.monotonic()
    run = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, env=docker.env,
                         timeout=60)
    return run, time.monotonic() - start


@pytest.fixture
def docker(tmp_path) -> FakeDocker:
    return FakeDocker(tmp_path)


def removed(docker: FakeDocker) -> bool:
    return docker.load()["containers"] == [] and any(call[:2] == ["rm", "-f"] for call in docker.calls)


def test_a_copy_still_loading_past_the_quiet_limit_is_waited_for_until_it_answers(docker):
    docker.starts_as("redis", pings=["", *[LOADING] * 10, "PONG"])  # a call takes 0.3 s or more
    run, took = served(docker)
    assert run.returncode == 0, run.stderr
    assert took > 3 and run.stdout.startswith("served by ")
    assert removed(docker)


def test_a_displaced_aof_still_being_copied_past_the_quiet_limit_is_waited_for(docker):
    docker.starts_as("redis", pings=[""] * 10 + ["PONG"], copying=10)  # no server until the copy is made
    run, took = served(docker)
    assert run.returncode == 0, run.stderr
    assert took > 3
    assert removed(docker)


def test_a_server_that_answers_nothing_for_the_quiet_limit_fails_with_its_last_lines(docker):
    docker.starts_as("redis", pings=[""], output=["Fatal: the disk is gone"])
    run, took = served(docker)
    assert run.returncode == 1
    assert "the displaced copy's server answered nothing for 2 s, not even that it is loading" in run.stderr
    assert "Fatal: the disk is gone" in run.stderr and took >= 1
    assert removed(docker)


def test_a_copy_that_does_not_load_fails_at_once_with_the_servers_last_lines(docker):
    docker.starts_as("redis", status="exited", exit_code=1, output=["Bad file format reading the append only file"])
    run, _ = served(docker, quiet=30)
    assert run.returncode == 1
    assert "Bad file format" in run.stderr and "the displaced copy does not load" in run.stderr
    assert removed(docker)


def test_no_such_copy_runs_what_the_caller_does_then(docker):
    docker.starts_as("redis", status="exited", exit_code=3)
    run, _ = served(docker, quiet=30)
    assert (run.returncode, run.stdout) == (0, "absent\n")
    assert removed(docker)


def test_the_quiet_limit_on_hosts_is_a_minute():
    assert COPY_QUIET_SECONDS == 60
