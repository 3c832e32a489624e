"""HostMetrics beyond its case files: what reaches the shell, and a host where every probe fails."""

import shlex
import subprocess

import pytest
from pyinfra.api import StringCommand
from pyinfra_testing.util import get_command_string

from facts.metrics import HostMetrics

STACK = {"dir": "/srv/my layra", "project": "layra"}
URL = "http://127.0.0.1:8090/api/v1/health/check?who='me'"


def command(**kwargs) -> str:
    arguments = {"stack": STACK, "health_url": URL, "disk_paths": ["/var/backups/my layra"], **kwargs}
    return get_command_string(StringCommand(HostMetrics().command(**arguments)))


def test_every_value_reaches_the_shell_quoted():
    text = command(kafka={"service": "kafka", "group": "layra consumers; rm -rf /", "bootstrap": "kafka:9092"})
    for value in ("/srv/my layra", URL, "/var/backups/my layra", "layra consumers; rm -rf /"):
        assert shlex.quote(value) in text
    assert subprocess.run(["bash", "-n", "-c", text]).returncode == 0


@pytest.mark.parametrize("kafka, key", [
    ({"service": "kafka", "topic": "x"}, "kafka.topic"),
    ({"service": "kafka; reboot"}, "kafka.service"),
    ({"service": "kafka", "bootstrap": "kafka:9092 --command-config /etc/x"}, "kafka.bootstrap"),
    ({"service": "kafka", "command": "kafka-consumer-groups.sh --all-groups"}, "kafka.command"),
    ({"service": "kafka", "group": "two\nlines"}, "kafka.group"),
])
def test_bad_kafka_settings_are_refused_naming_the_key(kafka, key):
    with pytest.raises(ValueError, match=key):
        command(kafka=kafka)


def test_relative_disk_paths_are_refused():
    with pytest.raises(ValueError, match="disk_paths"):
        command(disk_paths=["var/backups"])


def test_a_host_where_every_probe_fails_gives_missing_samples_and_exits_0(tmp_path):
    for tool in ("docker", "df", "curl"):
        (tmp_path / tool).write_text(f"#!/bin/sh\necho '{tool}: broken' >&2\nexit 1\n")
        (tmp_path / tool).chmod(0o755)
    text = command(kafka={"service": "kafka"}, timeout=2)
    run = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert run.returncode == 0
    assert HostMetrics().process(run.stdout.splitlines()) == {
        "health": None, "memory_pct": None, "disk_free_pct": {"/var/backups/my layra": None}, "kafka_lag": None,
    }
