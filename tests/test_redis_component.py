"""A Redis component as Layra runs it: several logical databases, cache patterns that name
theirs (``{db: 1, pattern: "user:session:*"}``; a bare pattern is in database 0)."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from facts.compose import Stack
from facts.redis import databases_of, same_data
from pyinfra_deploys.config import LAYRA_COMPONENTS, components_from
from pyinfra_deploys.engines.redis import ENGINE, RedisComponent, key_counts

STACK = Stack("/srv/layra", project="layra")


def component(**settings) -> RedisComponent:
    return RedisComponent.from_data("redis", settings)


def refusal(**settings) -> str:
    with pytest.raises(DeployError) as error:
        components_from({"layra_components": {"redis": {"engine": "redis", **settings}}})
    return str(error.value)


def test_a_pattern_names_its_database_as_a_mapping_or_a_pair_and_a_bare_one_is_in_database_0():
    found = component(flush_patterns=[{"db": 1, "pattern": "user:session:*"}, [2, "kb:cache:*"], "embedding:*"])
    assert found.flush_patterns == ((1, "user:session:*"), (2, "kb:cache:*"), (0, "embedding:*"))
    assert found.caches == {1: ["user:session:*"], 2: ["kb:cache:*"], 0: ["embedding:*"]}


@pytest.mark.parametrize("patterns", [
    [{"db": 1024, "pattern": "user:*"}], [{"db": "1", "pattern": "user:*"}], [{"db": 1}],
    [{"db": 1, "pattern": "a\nFLUSHALL"}], "user:*",
])
def test_a_pattern_in_no_database_redis_can_have_is_refused_naming_the_key(patterns):
    assert "layra_components.redis.flush_patterns" in refusal(flush_patterns=patterns)


@pytest.mark.parametrize("databases", [[1, "2"], [-1], [True], "1"])
def test_databases_are_numbers_redis_can_have(databases):
    assert "layra_components.redis.databases" in refusal(databases=databases)


def test_where_redis_holds_state_its_fingerprint_reads_the_databases_named_without_their_caches():
    found = component(rdb=True, databases=[0, 1, 2], flush_patterns=[{"db": 1, "pattern": "user:session:*"},
                                                                      "tmp:*"])
    assert found.state["volatile"] == [[1, "user:session:*"], "tmp:*"]
    assert found.state["databases"] == [0, 1, 2]
    assert "databases" not in component(rdb=True).state


def test_layras_default_caches_are_sessions_in_database_1_and_task_caches_in_database_2():
    found = RedisComponent.from_data("redis", LAYRA_COMPONENTS["redis"])
    assert found.caches == {1: ["user:session:*"], 2: ["kb:cache:*", "embedding:*"]}


def test_the_dry_run_counts_each_databases_patterns_in_that_database_and_names_it():
    facts = {"redis.RedisKeyCounts": {
        "db=1, password_key=REDIS_PASSWORD, patterns=['user:session:*'], service=redis, "
        "stack=layra:/srv/layra:docker-compose.yml:.env": {"user:session:*": 1234},
        "db=2, password_key=REDIS_PASSWORD, patterns=['kb:cache:*', 'embedding:*'], service=redis, "
        "stack=layra:/srv/layra:docker-compose.yml:.env": {"kb:cache:*": 0, "embedding:*": 7},
    }}
    host = create_host(FakeState(), facts=facts)
    with ctx_state.use(host.state), ctx_host.use(host):
        plan = ENGINE.cache_plan(STACK, RedisComponent.from_data("redis", LAYRA_COMPONENTS["redis"]))
    assert ENGINE.describe(plan) == ["redis: 1,234 keys match db1 user:session:* (flush)",
                                     "redis: 0 keys match db2 kb:cache:*",
                                     "redis: 7 keys match db2 embedding:* (flush)"]


def database(keys: int, sha: str = "k") -> dict:
    return {"dbsize": keys, "keys_sha256": sha, "sample": keys, "sample_sha256": "s"}


def test_phase_4_says_how_many_keys_each_database_holds():
    fingerprint = {"dbsize": 45, "databases": {"2": database(5), "1": database(40)}}
    assert key_counts(fingerprint) == "2 databases, 45 keys (db1 40, db2 5)"


def test_a_fingerprint_from_before_databases_were_read_is_database_0():
    flat = database(3)
    assert databases_of(flat) == {"0": flat}
    assert same_data({"dbsize": 3, "databases": {"0": database(3)}}, flat)


def test_an_empty_database_is_no_difference_but_a_missing_one_is():
    with_empty = {"dbsize": 3, "databases": {"0": database(3), "4": database(0)}}
    assert same_data(with_empty, {"dbsize": 3, "databases": {"0": database(3)}})
    assert not same_data({"dbsize": 3, "databases": {"0": database(3)}},
                         {"dbsize": 5, "databases": {"0": database(3), "2": database(2)}})
