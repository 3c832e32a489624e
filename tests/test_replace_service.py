"""The replace of one service (facts/scripts/replace_service.sh, built by
facts.compose.replaced_command) run for real under bash, with `docker` on the PATH a
stand-in whose containers start as each test says (tests/fake_docker.py): in place
without nginx, rolling behind it, and what is left when the new containers are not ready."""

from __future__ import annotations

import subprocess

import pytest

from facts.compose import Stack, replaced_command
from tests.fake_docker import FakeDocker

TIMEOUT = 5


@pytest.fixture
def docker(tmp_path):
    return FakeDocker(tmp_path, project="layra")


def replace(docker: FakeDocker, tmp_path, nginx: str | None = None) -> subprocess.CompletedProcess:
    command = replaced_command(Stack(str(tmp_path), project="layra"), "backend", nginx, TIMEOUT)
    return subprocess.run(["bash", "-c", command.get_raw_value()], capture_output=True, text=True, env=docker.env,
                          timeout=60)


def steps(docker: FakeDocker) -> list[str]:
    """What was done to containers, in order (reads left out)."""
    done = []
    for call in docker.calls:
        if call[0] == "compose" and "up" in call:
            done.append(" ".join(call[call.index("up"):]))
        elif call[0] == "exec":
            done.append("reload nginx" if "nginx -s reload" in call[-1] else "wait for nginx's old workers")
        elif call[0] in ("stop", "rm"):
            done.append(" ".join(c[:12] for c in call))
    return done


def test_without_nginx_the_service_is_recreated_in_place(docker, tmp_path):
    old = docker.container("backend", health="healthy")
    docker.starts_as("backend", health="healthy")
    run = replace(docker, tmp_path)
    (new,) = docker.ids("backend")
    assert (run.returncode, run.stdout, run.stderr) == (0, f"backend: recreated ({new[:12]})\n", "")
    assert new != old
    assert steps(docker) == ["up -d --no-deps --force-recreate backend"]


def test_without_nginx_a_new_container_that_turns_unhealthy_fails_with_its_last_healthcheck(docker, tmp_path):
    docker.container("backend", health="healthy")
    docker.starts_as("backend", health="unhealthy", log=["starting", "connection refused"])
    run = replace(docker, tmp_path)
    (new,) = docker.ids("backend")
    assert run.returncode == 1
    assert run.stderr == (f"backend: container {new[:12]} is unhealthy after up to {TIMEOUT}s "
                          '(last healthcheck: "connection refused")\n')


def test_behind_nginx_new_containers_serve_before_the_old_ones_stop(docker, tmp_path):
    old = docker.container("backend", health="healthy")
    docker.container("nginx")
    docker.starts_as("backend", health="healthy")
    run = replace(docker, tmp_path, nginx="nginx")
    (new,) = [i for i in docker.ids("backend") if i != old]
    assert (run.returncode, run.stdout, run.stderr) == (0, f"backend: {old[:12]} replaced by {new[:12]} behind nginx\n",
                                                        "")
    assert docker.ids("backend") == [new]
    assert steps(docker) == ["up -d --no-deps --no-recreate --scale backend=2 backend", "reload nginx",
                             "wait for nginx's old workers", f"stop {old[:12]}", "reload nginx", f"rm {old[:12]}"]


def test_behind_nginx_a_new_container_that_is_not_ready_is_removed_and_the_old_one_keeps_serving(docker, tmp_path):
    old = docker.container("backend", health="healthy")
    docker.container("nginx")
    docker.starts_as("backend", health="unhealthy", log=["connection refused"])
    run = replace(docker, tmp_path, nginx="nginx")
    new = steps(docker)[-1].split()[-1]
    assert run.returncode == 1
    assert run.stderr == (f"backend: the new container {new} is unhealthy after up to {TIMEOUT}s (last healthcheck: "
                          '"connection refused"); it was removed, the old one keeps serving\n')
    assert docker.ids("backend") == [old]
    assert steps(docker) == ["up -d --no-deps --no-recreate --scale backend=2 backend", f"rm -f {new}"]


def test_when_nginx_does_not_reload_the_new_container_is_removed(docker, tmp_path):
    old = docker.container("backend", health="healthy")
    docker.container("nginx")
    docker.starts_as("backend", health="healthy")
    docker.set(reload_fails=True)
    run = replace(docker, tmp_path, nginx="nginx")
    assert run.returncode == 1
    assert run.stderr.endswith("backend: nginx (nginx) did not reload; the new container was removed, "
                               "the old one keeps serving\n")
    assert docker.ids("backend") == [old]


def test_replacing_unhealthy_containers_needs_the_new_ones_only_to_run_and_be_checked_once(docker, tmp_path):
    old = docker.container("backend", health="unhealthy", log=["500"])
    docker.container("nginx")
    docker.starts_as("backend", health="starting", log=["500"])
    run = replace(docker, tmp_path, nginx="nginx")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ("backend: its container(s) are unhealthy already; the new ones need only to run and be "
                          "checked once\n")
    assert old not in docker.ids("backend") and len(docker.ids("backend")) == 1


def test_a_stopped_container_of_the_service_is_refused_before_anything_changes(docker, tmp_path):
    docker.container("backend", health="healthy")
    docker.container("backend", status="exited")
    docker.container("nginx")
    run = replace(docker, tmp_path, nginx="nginx")
    assert run.returncode == 1
    assert "backend: has containers that do not run; remove them first (docker compose rm backend)" in run.stderr
    assert steps(docker) == []


def test_behind_nginx_without_an_nginx_container_nothing_is_changed(docker, tmp_path):
    docker.container("backend", health="healthy")
    run = replace(docker, tmp_path, nginx="nginx")
    assert (run.returncode, run.stderr) == (1, "backend: nginx runs no container to reload; nothing was changed\n")
    assert steps(docker) == []
