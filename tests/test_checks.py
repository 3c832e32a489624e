"""Verify phases 2 and 4 as the engines probe them: the checks operations run the probes
an engine gives (``Engine.ping``, ``Engine.integrity``), read with the facts of
``tests/fixtures/checks/<operation>.<case>.json`` as case files give them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.operations import parse_commands
from pyinfra_testing.util import FakeState, create_host

from facts.compose import Stack
from operations import checks
from pyinfra_deploys.engines import ENGINES
from pyinfra_deploys.engines.mysql import MysqlComponent
from pyinfra_deploys.engines.qdrant import QdrantComponent
from pyinfra_deploys.engines.redis import RedisComponent

FIXTURES = Path(__file__).parent / "fixtures" / "checks"
STACK = Stack("/srv/layra")
MYSQL = MysqlComponent.from_data("mysql", {"databases": ["layra"]})
REDIS = RedisComponent.from_data("redis", {})
QDRANT = QdrantComponent.from_data("qdrant", {})
MYSQL_PART = {"database": "layra", "fingerprint": {
    "exists": True, "schema_sha256": "d4e6" * 16, "tables": {"knowledge_bases": {"rows": 3, "checksum": 97755827}},
    "views": [], "routines": [], "triggers": []}}
REDIS_PART = {"fingerprint": {"dbsize": 42, "keys_sha256": "ab" * 32}}


def run(case: str, operation, **kwargs):
    """The commands ``operation`` yields with the case's facts, and the noop reason it gave."""
    data = json.loads((FIXTURES / f"{case}.json").read_text())
    host = create_host(FakeState(), facts=data["facts"])
    with ctx_state.use(host.state), ctx_host.use(host):
        commands = parse_commands(list(operation._inner(stack=STACK, **kwargs)))
    return commands, host.noop_description, data


@pytest.mark.parametrize("case, probes", [
    ("connectivity.is_a_noop_when_the_endpoint_and_every_database_answer", [MYSQL, REDIS, QDRANT]),
    ("connectivity.fails_naming_the_health_endpoint_and_the_silent_database", [REDIS]),
])
def test_phase_2_asks_each_engine_whether_its_component_answers(case, probes):
    commands, noop, data = run(case, checks.connectivity, health_url="http://127.0.0.1:8090/api/v1/health/check",
                               probes=[ENGINES[c.engine].ping(STACK, c) for c in probes])
    assert commands == data["commands"]
    assert noop == data["noop_description"]


@pytest.mark.parametrize("case", [
    "integrity.is_a_noop_when_every_fingerprint_equals_the_snapshots",
    "integrity.fails_naming_the_component_whose_fingerprint_differs",
])
def test_phase_4_compares_each_parts_live_fingerprint_with_the_snapshots(case):
    probes = [ENGINES["mysql"].integrity(STACK, MYSQL, MYSQL_PART, {}),
              ENGINES["redis"].integrity(STACK, REDIS, REDIS_PART, {})]
    commands, noop, data = run(case, checks.integrity, probes=probes)
    assert commands == data["commands"]
    assert noop == data["noop_description"]


def test_probes_that_are_not_probes_are_refused():
    with pytest.raises(Exception, match="probes must be a list of checks.Probe"):
        run("integrity.is_a_noop_when_every_fingerprint_equals_the_snapshots", checks.integrity,
            probes=[{"name": "mysql/layra", "engine": "mysql"}])
