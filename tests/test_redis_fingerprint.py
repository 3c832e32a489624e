"""RedisFingerprint's whole command (``scripts/redis_fingerprint.sh`` inside it) against this
machine's redis-server, read through pyinfra's ``@local`` connector: ``docker`` on the PATH
is a small script that runs the ``redis-cli`` it was asked for against the local server, as
``docker compose exec`` runs it in the service's container."""

from __future__ import annotations

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_host

from facts.redis import RedisFingerprint, same_data
from tests.local_redis import redis_server, tool

STACK = {"dir": "/srv/layra", "project": "layra"}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local redis-server, and the ``@local`` host whose ``docker compose exec`` reaches it."""
    with redis_server(tmp_path) as cli:
        stub = tmp_path / "bin" / "docker"
        stub.parent.mkdir()
        stub.write_text('#!/bin/sh\nwhile [ "$1" != redis-cli ]; do shift; done; shift\n'
                        f'exec {tool("redis-cli")} -s {cli.sock} "$@"\n')
        stub.chmod(0o755)
        monkeypatch.setenv("PATH", f"{stub.parent}:/usr/bin:/bin")
        inventory = Inventory((["@local"], {}))
        connect_all(State(inventory, Config()))
        yield cli, inventory.get_host("@local")


def fingerprint(host, **kwargs) -> dict:
    with ctx_host.use(host):
        return host.get_fact(RedisFingerprint, stack=STACK, password_key=None, **kwargs)


def test_every_database_with_keys_is_read_each_on_its_own(server):
    cli, host = server
    cli("-n", "1", "SET", "user:session:1", "s")
    cli("-n", "1", "SET", "user:1", "ada")
    cli("-n", "2", "HSET", "task:7", "state", "done")
    found = fingerprint(host)
    assert sorted(found["databases"]) == ["1", "2"]
    assert (found["dbsize"], found["databases"]["1"]["dbsize"], found["databases"]["2"]["sample"]) == (3, 2, 1)


def test_a_volatile_pattern_leaves_its_keys_out_of_its_own_database_only(server):
    cli, host = server
    cli("-n", "1", "SET", "user:session:1", "s")
    cli("-n", "1", "SET", "user:1", "ada")
    cli("-n", "2", "SET", "user:session:1", "kept: not a cache in database 2")
    found = fingerprint(host, volatile=[[1, "user:session:*"]])
    assert (found["databases"]["1"]["dbsize"], found["databases"]["2"]["dbsize"]) == (1, 1)


def test_a_changed_value_in_one_database_changes_the_fingerprint(server):
    cli, host = server
    cli("-n", "1", "SET", "user:1", "ada")
    cli("-n", "2", "SET", "task:1", "queued")
    before = fingerprint(host)
    cli("-n", "2", "SET", "task:1", "done")
    after = fingerprint(host)
    assert before["databases"]["1"] == after["databases"]["1"]
    assert not same_data(after, before)


@pytest.mark.parametrize("build, change", [
    pytest.param(["MSET", *[f"k{i:04d} {i}" for i in range(1500)]], ["SET", "k0001", "changed"],
                 id="a key the sample skips (every 2nd of 1500)"),
    pytest.param(["HSET", "big", *[f"f{i:04d} {i}" for i in range(1500)]], ["HSET", "big", "f1200", "changed"],
                 id="a field of a hash the sample counts only"),
    pytest.param(["RPUSH", "log", *map(str, range(1500))], ["LSET", "log", "1200", "changed"],
                 id="a list element past the sample's first 1000"),
    pytest.param(["XADD", "events", "1-1", "a", "1"], ["XDEL", "events", "1-1"],
                 id="a stream entry (the sample counts entries only)"),
    pytest.param(["HSET", "h", "a", "b=c"], ["HSET", "h", "a=b", "c"],
                 id="a hash whose field and value split elsewhere (the sample joins them with =)"),
])
def test_a_change_the_sample_does_not_read_changes_the_fingerprint(server, build, change):
    cli, host = server
    cli(*[word for arg in build for word in arg.split(" ")])
    before = fingerprint(host)["databases"]["0"]
    cli(*change)
    if change[0] == "XDEL":  # as many entries, another one
        cli("XADD", "events", "1-2", "a", "1")
    if change[:2] == ["HSET", "h"]:  # the one field replaced
        cli("HDEL", "h", "a")
    after = fingerprint(host)["databases"]["0"]
    assert (after["dbsize"], after["keys_sha256"], after["sample_sha256"]) == (
        before["dbsize"], before["keys_sha256"], before["sample_sha256"])
    assert after["values_sha256"] != before["values_sha256"]
    assert not same_data({"databases": {"0": after}}, {"databases": {"0": before}})
    # a snapshot taken before every value was hashed is compared by its sample
    old = {key: value for key, value in before.items() if key != "values_sha256"}
    assert same_data({"databases": {"0": after}}, {"databases": {"0": old}})


def test_the_same_data_in_other_databases_is_other_data(server):
    cli, host = server
    cli("-n", "1", "SET", "user:1", "ada")
    in_one = fingerprint(host)
    cli("-n", "1", "MOVE", "user:1", "3")
    assert not same_data(fingerprint(host), in_one)


def test_the_databases_named_are_read_even_when_empty_and_no_other(server):
    cli, host = server
    cli("-n", "1", "SET", "user:1", "ada")
    cli("-n", "5", "SET", "other", "x")
    found = fingerprint(host, databases=[1, 2])
    assert sorted(found["databases"]) == ["1", "2"]
    assert found["databases"]["2"]["dbsize"] == 0


def test_an_empty_server_has_no_database(server):
    _, host = server
    assert fingerprint(host) == {"dbsize": 0, "databases": {}}


def test_a_server_that_refuses_the_client_fails_the_fact_instead_of_reading_as_empty(server):
    cli, host = server
    cli("CONFIG", "SET", "requirepass", "not-given")
    with pytest.raises(PyinfraError):
        fingerprint(host)
