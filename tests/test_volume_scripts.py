"""The volume engine's shell (facts/scripts/volume_library.sh, volume_inspect.sh) run for
real under bash: fingerprints of directories on this machine, and VolumeSet's inspection
of volumes whose data are real directories (du and find run on them), with `docker` on
the PATH a stand-in that answers from a small world (tests/fake_docker.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pyinfra.api import QuoteString, StringCommand

from facts.compose import Stack
from facts.volumes import (
    RESTORED_MARKER,
    inspect_command,
    library,
    parse_inspect,
    volume_problems,
)
from tests.fake_docker import FakeDocker

STACK = Stack("/srv/layra", project="layra")
MTIME = 1_760_000_000


def bash(command: StringCommand, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command.get_raw_value()], capture_output=True, text=True, env=env,
                          timeout=60)


def in_library(*words) -> StringCommand:
    """A call of one of the library's functions, after the library."""
    return StringCommand(library(STACK), *(QuoteString(str(w)) for w in words))


def fingerprint(directory: Path) -> dict:
    run = bash(in_library("fingerprint", directory))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def make_tree(root: Path) -> Path:
    """A volume's data: files, a subdirectory, a symlink, every mtime fixed."""
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"x" * 1000)
    (root / "sub" / "b.txt").write_text("hello")
    (root / "link").symlink_to("sub/b.txt")
    for path in (root / "a.bin", root / "sub" / "b.txt", root / "sub", root):
        os.utime(path, (MTIME, MTIME))
    return root


def test_the_fingerprint_counts_the_files_and_their_bytes_and_prints_sorted_json(tmp_path):
    data = make_tree(tmp_path / "data")
    run = bash(in_library("fingerprint", data))
    found = json.loads(run.stdout)
    assert (found["files"], found["bytes"], len(found["sha256"])) == (2, 1005, 64)
    # the descriptor's fingerprint is compared as Python prints it (facts.volumes.fingerprint_text)
    assert run.stdout == json.dumps(found, sort_keys=True)


def test_the_same_tree_and_a_copy_keeping_modes_and_mtimes_have_the_same_fingerprint(tmp_path):
    data = make_tree(tmp_path / "data")
    subprocess.run(["cp", "-a", str(data), str(tmp_path / "copy")], check=True)
    assert fingerprint(data) == fingerprint(data) == fingerprint(tmp_path / "copy")


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: os.utime(d / "a.bin", (MTIME + 1, MTIME + 1)), id="mtime"),
    pytest.param(lambda d: (d / "a.bin").write_bytes(b"x" * 1001) and os.utime(d / "a.bin", (MTIME, MTIME)),
                 id="size"),
    pytest.param(lambda d: (d / "a.bin").rename(d / "c.bin"), id="name"),
    pytest.param(lambda d: (d / "a.bin").chmod(0o600), id="mode"),
    pytest.param(lambda d: ((d / "link").unlink(), (d / "link").symlink_to("a.bin")), id="link-target"),
    pytest.param(lambda d: (d / "empty").mkdir(), id="new-directory"),
])
def test_a_change_of_mtime_size_name_mode_or_link_changes_the_fingerprint(tmp_path, change):
    data = make_tree(tmp_path / "data")
    before = fingerprint(data)
    change(data)
    assert fingerprint(data)["sha256"] != before["sha256"]


def test_a_rewrite_keeping_size_and_mtime_is_not_seen_the_quick_check_reads_no_file(tmp_path):
    data = make_tree(tmp_path / "data")
    before = fingerprint(data)
    (data / "a.bin").write_bytes(b"y" * 1000)
    os.utime(data / "a.bin", (MTIME, MTIME))
    assert fingerprint(data) == before


def test_sockets_are_left_out_of_the_fingerprint(tmp_path, monkeypatch):
    data = make_tree(tmp_path / "data")
    before = fingerprint(data)
    monkeypatch.chdir(data)  # a short path for the socket
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("etcd.sock")
        os.utime(data, (MTIME, MTIME))
        assert (data / "etcd.sock").is_socket()
        assert fingerprint(data) == before


def test_a_directory_that_does_not_exist_has_a_fingerprint_saying_so(tmp_path):
    assert fingerprint(tmp_path / "nowhere") == {"exists": False}


def test_containers_lists_the_services_containers_of_the_project_only(tmp_path):
    docker = FakeDocker(tmp_path)
    etcd = docker.container("milvus-etcd")
    docker.container("milvus-etcd", project="other")
    docker.container("milvus-etcd", oneoff=True)
    docker.container("milvus-minio")
    run = bash(in_library("containers", "milvus-etcd"), docker.env)
    assert (run.returncode, run.stdout.split()) == (0, [etcd[:12]])


def test_running_names_the_services_with_a_running_container(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.container("milvus-etcd")
    docker.container("milvus-minio", status="exited")
    run = bash(in_library("running", "milvus-etcd", "milvus-minio", "milvus-standalone"), docker.env)
    assert run.stdout == "milvus-etcd "


def test_wait_ready_returns_once_every_container_runs_healthy_or_has_no_healthcheck(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.container("milvus-etcd", health="healthy")
    docker.container("milvus-minio")
    run = bash(in_library("wait_ready", 5, "milvus-etcd", "milvus-minio"), docker.env)
    assert (run.returncode, run.stderr) == (0, "")


def test_wait_ready_names_the_container_still_starting_when_the_time_is_up(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.container("milvus-etcd", health="healthy")
    docker.container("milvus-minio", health="starting")
    run = bash(in_library("wait_ready", 0, "milvus-etcd", "milvus-minio"), docker.env)
    assert run.returncode == 1
    minio, = docker.ids("milvus-minio")
    assert run.stderr == f"not ready: milvus-minio: container {minio[:12]} is starting after up to 0s\n"


def test_wait_ready_fails_at_once_for_an_exited_or_unhealthy_container_however_long_it_may_wait(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.container("milvus-etcd", health="unhealthy", log=["connection refused"])
    started = time.monotonic()
    run = bash(in_library("wait_ready", 60, "milvus-etcd"), docker.env)
    assert run.returncode == 1 and time.monotonic() - started < 30
    etcd, = docker.ids("milvus-etcd")
    assert run.stderr == (f"not ready: milvus-etcd: container {etcd[:12]} is unhealthy after up to 60s "
                          '(last healthcheck: "connection refused")\n')


def test_wait_ready_names_a_service_without_a_container(tmp_path):
    docker = FakeDocker(tmp_path)
    docker.container("milvus-etcd", health="healthy")
    run = bash(in_library("wait_ready", 5, "milvus-etcd", "milvus-minio"), docker.env)
    assert (run.returncode, run.stderr) == (1, "not ready: milvus-minio: it has no container\n")


def du_bytes(root: Path) -> int:
    """What `du -sb` counts: the apparent size of every entry, the directory's own included."""
    return sum(os.lstat(p).st_size for p in [root, *root.rglob("*")])


@pytest.fixture
def milvus(tmp_path):
    """A Milvus set whose volumes' data are directories here: standalone (running, its volume
    marked as restored), etcd (exited), and a volume gone since its container mounted it."""
    docker = FakeDocker(tmp_path)
    volumes = tmp_path / "volumes"
    milvus_data = make_tree(volumes / "layra_milvus" / "_data")
    etcd_data = make_tree(volumes / "layra_etcd" / "_data")
    (etcd_data / "member.wal").write_bytes(b"w" * 4096)
    marker = {"archive_sha256": "5f1c" * 16, "settled": {"bytes": 1, "files": 1, "sha256": "ab"}}
    (volumes / "layra_milvus" / f"_data{RESTORED_MARKER}").write_text(json.dumps(marker))
    docker.volume("layra_milvus")
    docker.volume("layra_etcd")
    standalone = docker.container("milvus-standalone", mounts=[("layra_milvus", str(milvus_data), "/var/lib/milvus"),
                                                               ("layra_gone", str(volumes / "gone"), "/gone")])
    docker.container("milvus-etcd", status="exited", mounts=[("layra_etcd", str(etcd_data), "/etcd")])
    docker.container("milvus-etcd", project="other", mounts=[("other_etcd", str(etcd_data), "/etcd")])
    return {"docker": docker, "standalone": standalone, "marker": marker, "milvus": milvus_data, "etcd": etcd_data}


def inspected(milvus, with_fingerprint: bool = True) -> tuple[dict, subprocess.CompletedProcess]:
    command = inspect_command(STACK, ["milvus-standalone", "milvus-etcd", "milvus-minio"], with_fingerprint)
    run = bash(command, milvus["docker"].env)
    assert run.returncode == 0, run.stderr
    return parse_inspect(run.stdout.splitlines()), run


def test_inspect_reads_each_volume_where_it_is_on_the_host_with_four_docker_calls(milvus):
    found, _ = inspected(milvus)
    assert found["zstd"] == (shutil.which("zstd") is not None)
    assert found["services"] == {"milvus-standalone": {"state": "running"}, "milvus-etcd": {"state": "exited"},
                                 "milvus-minio": {"state": "missing"}}
    assert found["volumes"]["layra_milvus"] == {
        "services": ["milvus-standalone"], "path": str(milvus["milvus"]), "target": "/var/lib/milvus",
        "driver": "local", "options": {}, "in_use_by": [milvus["standalone"][:12]],
        "bytes": du_bytes(milvus["milvus"]), "fingerprint": fingerprint(milvus["milvus"]),
        "restored": milvus["marker"]}
    etcd = found["volumes"]["layra_etcd"]
    assert (etcd["in_use_by"], etcd["bytes"], etcd["fingerprint"]) == ([], du_bytes(milvus["etcd"]),
                                                                       fingerprint(milvus["etcd"]))
    assert "restored" not in etcd
    assert [call[:2] for call in milvus["docker"].calls] == [["ps", "-aq"], ["inspect", "-f"], ["volume", "inspect"],
                                                             ["ps", "--no-trunc"]]


def test_inspect_leaves_a_volume_removed_since_without_a_driver_for_volume_problems_to_name(milvus):
    found = inspected(milvus)[0]
    gone = found["volumes"]["layra_gone"]
    assert ("driver" in gone, gone["fingerprint"]) == (False, {"exists": False})
    assert "volume layra_gone uses driver None with options None: only plain local volumes are archived on the host" \
        in volume_problems(found)


def test_inspect_without_fingerprints_reads_sizes_only(milvus):
    found, run = inspected(milvus, with_fingerprint=False)
    assert found["volumes"]["layra_etcd"]["bytes"] == du_bytes(milvus["etcd"])
    assert not any(line.startswith(("fingerprint\t", "restored\t")) for line in run.stdout.splitlines())


def test_wait_ready_runs_a_starting_containers_own_healthcheck_instead_of_waiting_for_dockers_first(tmp_path):
    docker = FakeDocker(tmp_path)
    redis = docker.container("redis", health="starting",
                             healthcheck=["CMD-SHELL", "redis-cli -h 127.0.0.1 ping | grep -q PONG"])
    started = time.monotonic()
    run = bash(in_library("wait_ready", 60, "redis"), docker.env)
    assert (run.returncode, run.stderr) == (0, "") and time.monotonic() - started < 30
    assert ["exec", redis[:12], "/bin/sh", "-c", "redis-cli -h 127.0.0.1 ping | grep -q PONG"] in docker.calls


def test_a_healthcheck_given_as_cmd_runs_with_its_arguments_as_they_are(tmp_path):
    docker = FakeDocker(tmp_path)
    etcd = docker.container("milvus-etcd", health="starting",
                            healthcheck=["CMD", "etcdctl", "--endpoints=http://127.0.0.1:2379", "endpoint health"])
    run = bash(in_library("wait_ready", 60, "milvus-etcd"), docker.env)
    assert (run.returncode, run.stderr) == (0, "")
    assert ["exec", etcd[:12], "etcdctl", "--endpoints=http://127.0.0.1:2379", "endpoint health"] in docker.calls


def test_a_starting_container_whose_own_healthcheck_fails_is_still_waited_for(tmp_path):
    docker = FakeDocker(tmp_path)
    minio = docker.container("milvus-minio", health="starting", healthcheck=["CMD", "false"], probe=1)
    run = bash(in_library("wait_ready", 0, "milvus-minio"), docker.env)
    assert run.returncode == 1
    assert run.stderr == f"not ready: milvus-minio: container {minio[:12]} is starting after up to 0s\n"


MILVUS_CHECK = ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9091"]
ETCD_CHECK = ["CMD", "etcdctl", "endpoint", "health"]


def stopped_set(docker: FakeDocker, standalone_depends: str = "milvus-etcd:service_healthy:false"):
    """Milvus and its etcd stopped; once started Docker calls both starting (its first check
    is an interval away) while their own checks pass."""
    docker.container("milvus-standalone", status="exited", health="healthy", healthcheck=MILVUS_CHECK,
                     depends_on=standalone_depends)
    docker.container("milvus-etcd", status="exited", health="healthy", healthcheck=ETCD_CHECK)
    docker.starts_as("milvus-standalone", health="starting")
    docker.starts_as("milvus-etcd", health="starting")


def started(docker: FakeDocker) -> list[list[str]]:
    """The services of each `docker start`, in order."""
    by_id = {c["id"][:12]: c["service"] for c in docker.load()["containers"]}
    return [[by_id[i[:12]] for i in call[1:]] for call in docker.calls if call[0] == "start"]


def test_start_ready_starts_the_dependency_first_and_the_dependent_once_its_own_check_passes(tmp_path):
    docker = FakeDocker(tmp_path)
    stopped_set(docker)
    run = bash(in_library("start_ready", 5, "milvus-standalone", "milvus-etcd"), docker.env)
    assert (run.returncode, run.stderr) == (0, "")
    assert started(docker) == [["milvus-etcd"], ["milvus-standalone"]]
    etcd, = docker.ids("milvus-etcd")
    probe_of_etcd = next(i for i, call in enumerate(docker.calls)
                         if call[:1] == ["exec"] and etcd.startswith(call[1]) and call[2:] == ETCD_CHECK[1:])
    start_of_milvus = max(i for i, call in enumerate(docker.calls) if call[0] == "start")
    assert probe_of_etcd < start_of_milvus, "etcd's own check passed before Milvus started"
    assert not [call for call in docker.calls if call[0] == "compose"], "no compose start: it waits for Docker"


def test_start_ready_leaves_the_dependent_stopped_when_its_dependency_does_not_come_up(tmp_path):
    docker = FakeDocker(tmp_path)
    stopped_set(docker)
    docker.starts_as("milvus-etcd", status="exited")
    run = bash(in_library("start_ready", 60, "milvus-standalone", "milvus-etcd"), docker.env)
    etcd, = docker.ids("milvus-etcd")
    assert run.returncode == 1
    assert run.stderr == f"not ready: milvus-etcd: container {etcd[:12]} is exited after up to 60s\n"
    assert started(docker) == [["milvus-etcd"]]


def test_start_ready_starts_at_once_a_service_whose_dependency_is_outside_the_set(tmp_path):
    docker = FakeDocker(tmp_path)
    stopped_set(docker, standalone_depends="milvus-minio:service_healthy:false,milvus-etcd:service_started:false")
    run = bash(in_library("start_ready", 5, "milvus-standalone"), docker.env)
    assert (run.returncode, run.stderr) == (0, "")
    assert started(docker) == [["milvus-standalone"]]


def test_a_set_whose_containers_do_not_say_what_they_depend_on_is_started_by_compose_in_its_order(tmp_path):
    from operations.volumes import stop_start
    docker = FakeDocker(tmp_path)
    stopped_set(docker, standalone_depends=None)
    alone = bash(in_library("start_ready", 5, "milvus-standalone", "milvus-etcd"), docker.env)
    assert alone.returncode == 2 and started(docker) == [], "nothing started: the order is unknown"
    run = bash(StringCommand(library(STACK), stop_start(STACK, 5), "start_set milvus-standalone milvus-etcd"),
               docker.env)
    assert (run.returncode, run.stderr) == (0, "")
    assert [call[call.index("start"):] for call in docker.calls if call[0] == "compose"] == \
        [["start", "milvus-standalone", "milvus-etcd"]]


def probed(docker: FakeDocker, *containers: str) -> subprocess.CompletedProcess:
    """wait_ready.sh's layra_probed on the containers, as ComposeServices runs it."""
    return bash(StringCommand(library(STACK), "layra_probed", *containers), docker.env)


def test_a_starting_container_whose_own_check_fails_once_and_then_passes_is_reported_passed(tmp_path):
    docker = FakeDocker(tmp_path)
    milvus = docker.container("milvus-standalone", health="starting", healthcheck=MILVUS_CHECK, probe=[1, 1, 0])
    run = probed(docker, milvus)
    assert (run.returncode, run.stdout) == (0, "layra-milvus-standalone-1 passed\n")
    assert len([call for call in docker.calls if call[0] == "exec"]) == 3, "run again until it passed"


def test_a_starting_container_whose_own_check_keeps_failing_is_reported_failed_after_five_seconds(tmp_path):
    docker = FakeDocker(tmp_path)
    milvus = docker.container("milvus-standalone", health="starting", healthcheck=MILVUS_CHECK, probe=1)
    started = time.monotonic()
    run = probed(docker, milvus)
    assert (run.returncode, run.stdout) == (0, "layra-milvus-standalone-1 failed\n")
    assert 5 <= time.monotonic() - started < 30
    assert len([call for call in docker.calls if call[0] == "exec"]) == 6
