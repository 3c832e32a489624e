"""Users and database names read from the stack's env file (``user_key``, ``databases_key``),
as Layra's compose file takes them: read on the host once per run, the user replacing
``user``, the database joining ``databases``; never a key that holds a secret."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from facts.compose import Stack
from pyinfra_deploys.config import LAYRA_COMPONENTS, components_from, with_env_settings

STACK = Stack("/srv/layra")
KEYS = "keys=['MONGODB_DB', 'MONGODB_ROOT_USERNAME', 'MYSQL_DATABASE'], stack=layra:/srv/layra:docker-compose.yml:.env"
DATA = {"layra_components": {
    "mysql": {"engine": "mysql", "databases_key": "MYSQL_DATABASE"},
    "mongodb": {"engine": "mongo", "user_key": "MONGODB_ROOT_USERNAME", "databases": ["audit"],
                "databases_key": "MONGODB_DB"},
    "redis": {"engine": "redis"},
}}


def on_host(data: dict, values: dict):
    host = create_host(FakeState(), facts={"compose.EnvSettings": {KEYS: values}})
    with ctx_state.use(host.state), ctx_host.use(host):
        return {component.name: component for component in with_env_settings(STACK, components_from(data))}


def test_the_user_replaces_user_and_the_database_joins_databases():
    found = on_host(DATA, {"MYSQL_DATABASE": "layra", "MONGODB_ROOT_USERNAME": "admin", "MONGODB_DB": "chat_mongodb"})
    assert found["mysql"].databases == ("layra",)
    assert (found["mongodb"].user, found["mongodb"].databases) == ("admin", ("audit", "chat_mongodb"))


def test_a_database_named_in_both_is_backed_up_once():
    found = on_host(DATA, {"MYSQL_DATABASE": "layra", "MONGODB_ROOT_USERNAME": "root", "MONGODB_DB": "audit"})
    assert found["mongodb"].databases == ("audit",)


def test_a_key_not_set_in_the_env_file_is_refused_naming_the_setting_and_the_file():
    with pytest.raises(DeployError) as error:
        on_host(DATA, {"MYSQL_DATABASE": "layra", "MONGODB_ROOT_USERNAME": "root", "MONGODB_DB": None})
    assert str(error.value) == ("host data 'layra_components.mongodb.databases_key' names MONGODB_DB, which is not "
                                "set in /srv/layra/.env")


def test_a_value_that_cannot_be_a_database_name_is_refused_with_what_it_must_be():
    with pytest.raises(DeployError) as error:
        on_host(DATA, {"MYSQL_DATABASE": "lay-ra; DROP", "MONGODB_ROOT_USERNAME": "root", "MONGODB_DB": "chat"})
    assert str(error.value).startswith("host data 'layra_components.mysql.databases_key' names MYSQL_DATABASE, "
                                       "whose value 'lay-ra; DROP' in /srv/layra/.env cannot be its databases")


def test_without_keys_nothing_is_read_from_the_host():
    host = create_host(FakeState(), facts={})  # any fact asked for would fail: there is none
    with ctx_state.use(host.state), ctx_host.use(host):
        found = with_env_settings(STACK, components_from({"layra_components": {"mysql": {"engine": "mysql",
                                                                                  "databases": ["layra"]}}}))
    assert found[0].databases == ("layra",)


@pytest.mark.parametrize("key", ["MYSQL_ROOT_PASSWORD", "MONGO_SECRET", "API_KEY"])
def test_a_key_that_holds_a_secret_is_refused_before_anything_is_read(key):
    with pytest.raises(DeployError, match="layra_components.mysql.databases_key' must name a variable"):
        components_from({"layra_components": {"mysql": {"engine": "mysql", "databases_key": key}}})


def test_layras_defaults_follow_layras_own_env_keys():
    components = {component.name: component for component in components_from({"layra_components": LAYRA_COMPONENTS})}
    assert components["mysql"].databases_key == "MYSQL_DATABASE"
    assert (components["mongodb"].user_key, components["mongodb"].databases_key) == ("MONGODB_ROOT_USERNAME",
                                                                                     "MONGODB_DB")
