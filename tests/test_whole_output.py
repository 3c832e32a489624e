"""A fact reads its command's output whole or not at all (``facts.shell.whole``).

pyinfra reads a command's output as UTF-8, line by line, in a greenlet; a byte that is not
UTF-8 kills that greenlet and every line after it is silently lost (a latin1 client once
dropped three tables of seven from a fingerprint this way). Here each engine's
fingerprint fact is read through pyinfra's own ``@local`` connector, with the container's
answer replaced by one that carries such a byte (``docker`` and ``curl`` on the PATH are
small scripts that print it, as a latin1 client in a container would): the fact must fail
naming the host and the fact, never come back built from the lines before the byte.
"""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.context import ctx_host

import facts
from facts import mongo, mysql, qdrant, redis, volumes
from facts.shell import WHOLE_MARKER, UnreadableOutput, WholeOutputFact, whole

STACK = {"dir": "/srv/layra", "project": "layra"}

# What the stub tools answer: a line, then a table name in latin1 (byte 0xe9), then more.
UNDECODABLE = "printf 'users\\t2\\nkb_\\351\\t3\\norder\\t4\\n'"

# The env file's password through `docker compose config --format json`, as compose prints it;
# `SELECT COUNT(*) ... schemata` (does the database exist?) gets 1; Redis's INFO keyspace a
# database with keys; a container's inspection
# a volume at a latin1 path; anything else the bytes.
DOCKER = f"""#!/bin/sh
case "$*" in
  *"config --format json"*) printf '{{\\n  "x-layra-value": "secret"\\n}}\\n' ;;
  *schemata*) echo 1 ;;
  "ps -aq"*) echo 4f2a ;;
  *"redis-cli --no-raw") cat >/dev/null; printf '# Keyspace\\r\\ndb0:keys=3,expires=0\\r\\n' ;;
  inspect*) printf 'milvus-standalone\\trunning\\tmilvus\\t/var/lib/docker/volumes/caf\\351/_data\\t/data\\n' ;;
  *) cat >/dev/null; {UNDECODABLE} ;;
esac
"""
CURL = f"#!/bin/sh\ncat >/dev/null\n{UNDECODABLE}\necho 200\n"


@pytest.fixture
def local_host(tmp_path, monkeypatch):
    for name, text in (("docker", DOCKER), ("curl", CURL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    return inventory.get_host("@local")


ENGINE_FACTS = [
    pytest.param(mysql.MysqlFingerprint, {"stack": STACK, "database": "layra"}, id="mysql"),
    pytest.param(mongo.MongoFingerprint, {"stack": STACK, "database": "layra", "password_key": "MONGO_PASSWORD"},
                 id="mongo"),
    pytest.param(redis.RedisFingerprint, {"stack": STACK}, id="redis"),
    pytest.param(qdrant.QdrantFingerprint, {"stack": STACK}, id="qdrant"),
    pytest.param(volumes.VolumeSet, {"stack": STACK, "services": ["milvus-standalone", "milvus-etcd"]},
                 id="volumes"),
]


@pytest.mark.parametrize(("fact", "kwargs"), ENGINE_FACTS)
def test_an_engines_fact_fails_naming_host_and_fact_when_its_output_is_not_utf8(local_host, fact, kwargs, capfd):
    with pytest.raises(UnreadableOutput) as raised, ctx_host.use(local_host):
        local_host.get_fact(fact, **kwargs)
    message = str(raised.value)
    assert message.startswith(f"@local: fact {fact.__name__} could not read its command's output whole")
    assert "nothing was decided on it" in message
    # iconv stopped the stream at the byte: pyinfra's reader never died on it
    assert "UnicodeDecodeError" not in capfd.readouterr().err


def test_every_fact_of_the_project_reads_its_output_whole():
    found = [cls for module_name in ("capacity", "compose", "http", "lock", "maintenance", "metrics", "mongo",
                                     "mysql", "qdrant", "redis", "snapshots", "stack", "volumes")
             for _, cls in inspect.getmembers(__import__(f"facts.{module_name}", fromlist=["x"]), inspect.isclass)
             if cls.__module__ == f"facts.{module_name}" and hasattr(cls, "command") and hasattr(cls, "process")]
    assert len(found) >= 30
    assert [cls.__name__ for cls in found if not issubclass(cls, WholeOutputFact)] == []
    modules = {path.stem for path in Path(facts.__file__).parent.glob("*.py")} - {"__init__", "shell", "secrets",
                                                                                "gather", "text", "shadow"}
    assert modules == {cls.__module__.split(".")[1] for cls in found}


def run_whole(body: str) -> subprocess.CompletedProcess:
    """``body`` run as a fact's command is, by dash (Debian's sh)."""
    return subprocess.run(["sh", "-c", str(whole(body).get_raw_value())], capture_output=True, timeout=10)


def test_a_whole_utf8_output_ends_with_the_marker_and_keeps_the_commands_status():
    run = run_whole("printf 'caf\\303\\251\\n\\360\\235\\204\\236\\n'; echo oops >&2; exit 3")
    assert run.stdout.decode().splitlines() == ["café", "𝄞", "", WHOLE_MARKER]
    assert run.returncode == 3 and run.stderr == b"oops\n"


def test_output_stops_at_the_first_byte_that_is_not_utf8_and_never_reaches_the_marker():
    run = run_whole("printf 'one\\nkb_\\351\\ntwo\\n'")
    assert run.stdout == b"one\nkb_"
    assert b"illegal input sequence" in run.stderr
    assert run.returncode == 0  # the command itself succeeded: only the missing marker tells


def test_a_command_that_exits_the_shell_still_reports_its_status():
    run = run_whole("echo partial; exit 7")
    assert run.stdout.decode().splitlines() == ["partial", "", WHOLE_MARKER] and run.returncode == 7


def test_a_last_line_without_its_newline_is_read_whole_the_marker_on_a_line_of_its_own():
    run = run_whole("printf '{\"a\": 1}'")
    lines = run.stdout.decode().splitlines()
    assert lines == ['{"a": 1}', WHOLE_MARKER]
    assert facts.snapshots.SnapshotManifest().process(lines) == {"a": 1}


def test_process_refuses_lines_without_the_marker_and_gives_the_default_for_an_empty_output():
    fact = mysql.MysqlPing()
    with pytest.raises(UnreadableOutput, match="MysqlPing could not read .* the last 'kb_'"):
        fact.process(["--- layra:output ---", "kb_"])
    assert facts.stack.ImagesPresent().process([WHOLE_MARKER]) == []
