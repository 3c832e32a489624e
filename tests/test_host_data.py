"""Validators of what operators type and inventories hold: every refusal names the key (or
the value) and what it must be. The same inputs through the real CLI, against a host, are
tests/reliability/test_bad_input.py."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from facts.compose import valid_service
from facts.http import PATH
from facts.metrics import kafka_spec
from facts.qdrant import valid_name, valid_url
from facts.secrets import KEY_PATTERN
from facts.shadow import DATABASE_PATTERN as MONGO_DATABASE
from facts.shadow import valid_database
from facts.snapshots import valid_label, valid_root, valid_snapshot_id
from facts.stack import valid_ref
from operations.stack import unknown_commit
from pyinfra_deploys.config import (
    components_from,
    kafka_from,
    ready_timeout,
    snapshot_root,
    stack_from,
    verify_settings,
)
from pyinfra_deploys.triggers import NAME as RULE_NAME


def refused(function, data) -> str:
    with pytest.raises(DeployError) as error:
        function(data)
    return str(error.value)


@pytest.mark.parametrize("check, good", [
    (valid_ref, "v1.0.0"), (valid_snapshot_id, "20261121T130000Z-nightly"), (valid_label, "nightly"),
    (valid_database, "layra"), (lambda v: bool(MONGO_DATABASE.match(v)), "layra"), (valid_service, "backend"),
    (lambda v: bool(KEY_PATTERN.match(v)), "MYSQL_ROOT_PASSWORD"), (valid_name, "kb_vectors"),
    (valid_url, "http://127.0.0.1:6333"), (lambda v: bool(PATH.match(v)), "/api/v1/health"),
    (lambda v: bool(RULE_NAME.match(v)), "api-error-rate"),
])
def test_a_trailing_newline_never_passes_a_validator(check, good):
    # `$` also matches before a final newline: every pattern ends in \Z
    assert check(good)
    assert not check(good + "\n")


@pytest.mark.parametrize("ref", ["v1.0.0", "1f0c2d9", "release/1.2", "feature/kb-sharing", "main"])
def test_a_sha_tag_or_branch_is_a_ref(ref):
    assert valid_ref(ref)


@pytest.mark.parametrize("ref", ["", "-x", "a b", "$(id)", "v1..v2", "HEAD@{1}", "a//b", "a/", "a.", "a/.b",
                                 "x.lock", 1234567, None])
def test_what_git_would_not_take_as_a_ref_or_a_shell_would_expand_is_not_a_ref(ref):
    assert not valid_ref(ref)


@pytest.mark.parametrize("label", ["", "x.partial", "a/b", "a b", "x" * 65])
def test_labels_that_would_make_a_bad_id_are_refused(label):
    assert not valid_label(label)


@pytest.mark.parametrize("root, ok", [("/var/backups/layra", True), ("/var/backups/layra/", True),
                                      ("backups", False), ("/", False), ("/var/backups/../../etc", False),
                                      ("/var/backups\n/etc", False), (5, False)])
def test_a_snapshot_root_is_an_absolute_directory_on_one_line_without_dot_dot(root, ok):
    assert valid_root(root) is ok


@pytest.mark.parametrize("data, message", [
    ({"layra_stack_dir": "srv/layra"}, "host data 'layra_stack_dir' must be the stack's directory (an absolute path"),
    ({"layra_stack_dir": "/srv/layra\n/etc"}, "host data 'layra_stack_dir' must be the stack's directory"),
    ({"layra_project": "Layra Prod"}, "host data 'layra_project' must be a compose project name"),
    ({"layra_env_file": ".env\nx"}, "host data 'layra_env_file' must be the stack's env file (a path on one line)"),
    ({"layra_compose_files": ["a.yml", 5]}, "host data 'layra_compose_files' must be a non-empty list of paths"),
    ({"layra_ready_timeout": "3m"}, "host data 'layra_ready_timeout' must be a whole number of seconds"),
    ({"layra_min_disk_free_pct": "ten"}, "host data 'layra_min_disk_free_pct' must be a percentage"),
    ({"layra_snapshot_root": "/var/backups/../etc"}, "host data 'layra_snapshot_root' must be an absolute directory"),
    ({"layra_kafka": {"service": "kafka", "topic": "x"}}, "host data 'layra_kafka.topic' is not a setting"),
])
def test_every_deploy_reads_the_stack_first_so_any_malformed_setting_is_refused_there(data, message):
    assert message in refused(stack_from, data)


@pytest.mark.parametrize("value", ["180", "3m", 0, -5, 1.5, True, 86401])
def test_the_ready_timeout_is_a_whole_number_of_seconds(value):
    assert f"host data 'layra_ready_timeout' must be a whole number of seconds from 1 to 86400 (e.g. 180), " \
           f"got {value!r}" in refused(ready_timeout, {"layra_ready_timeout": value})


def test_the_ready_timeout_defaults_to_three_minutes():
    assert ready_timeout({}) == 180 and ready_timeout({"layra_ready_timeout": 300}) == 300


@pytest.mark.parametrize("key", ["layra_min_disk_free_pct", "layra_max_memory_used_pct"])
@pytest.mark.parametrize("value", ["10", "ten", -1, 100.5, True])
def test_thresholds_are_percentages(key, value):
    assert f"host data {key!r} must be a percentage (a number from 0 to 100), got {value!r}" in refused(
        verify_settings, {key: value})


def test_verify_settings_default_to_the_stacks_own():
    assert verify_settings({}) == {"disk_paths": None, "min_disk_free_pct": 10.0, "max_memory_used_pct": 85.0,
                                   "health_url": "http://127.0.0.1:8090/api/v1/health/check"}


@pytest.mark.parametrize("data, message", [
    ({"layra_disk_paths": "/srv"}, "host data 'layra_disk_paths' must be a non-empty list of absolute paths"),
    ({"layra_disk_paths": ["srv"]}, "host data 'layra_disk_paths' must be a non-empty list of absolute paths"),
    ({"layra_health_url": "localhost:8090/x"}, "host data 'layra_health_url' must be the backend's health URL"),
    ({"layra_health_url": "http://x/$(id) y"}, "host data 'layra_health_url' must be the backend's health URL"),
])
def test_verify_paths_and_url_are_checked(data, message):
    assert message in refused(verify_settings, data)


@pytest.mark.parametrize("kafka, message", [
    ("kafka", "host data 'layra_kafka' must be a mapping with service, group, bootstrap, command, got 'kafka'"),
    ({"group": "g"}, "host data 'layra_kafka.service' must name a compose service, got None"),
    ({"service": "kafka", "bootstrap": "k:9092;id"}, "host data 'layra_kafka.bootstrap' must be host:port"),
    ({"service": "kafka", "command": "kafka-consumer-groups.sh; id"}, "host data 'layra_kafka.command' must be"),
])
def test_kafka_settings_name_the_key(kafka, message):
    assert message in refused(kafka_from, {"layra_kafka": kafka})
    with pytest.raises(ValueError):
        kafka_spec(kafka)


@pytest.mark.parametrize("components, message", [
    ({"my;sql": {"engine": "mysql", "service": "mysql"}}, "host data 'layra_components' names a component 'my;sql'"),
    ({"../x": {"engine": "volumes", "services": ["x"]}}, "names a component '../x'"),
    ({"milvus": {"engine": "volumes", "services": ["milvus"], "milvus": {"client_service": "$(id)"}}},
     "host data 'layra_components.milvus.milvus' must be a mapping with client_service"),
    ({"redis": {"engine": "redis", "service": "redis", "rdb": "yes"}},
     "host data 'layra_components.redis.rdb' must be true (Redis holds state: back it up) or false (cache only), "
     "got 'yes'"),
    ({"mysql": {"engine": "mysql", "service": "db", "user": "root\n"}},
     "host data 'layra_components.mysql.user' must be a name on one line, got 'root\\n'"),
])
def test_component_names_and_settings_name_the_key(components, message):
    assert message in refused(components_from, {"layra_components": components})


def test_a_snapshot_root_keeps_its_one_form():
    assert snapshot_root({"layra_snapshot_root": "/var/backups/layra/"}) == "/var/backups/layra"


def test_an_unknown_commit_says_what_the_stack_is_at_when_known():
    assert unknown_commit("v9", "/srv/layra", [], "1f0c2d9a4b5e6f70") == (
        "commit 'v9' is not in the repository at /srv/layra; nothing was changed (the stack is at 1f0c2d9a4b5e)")
    assert unknown_commit("v9", "/srv/layra", []) == "commit 'v9' is not in the repository at /srv/layra; " \
                                                     "nothing was changed"


def test_a_component_without_a_password_key_gets_its_engines_one_default_and_null_means_none():
    from pyinfra_deploys.config import components_from
    found = components_from({"layra_components": {
        "mongodb": {"engine": "mongo", "service": "mongodb"},
        "mysql": {"engine": "mysql", "service": "mysql"},
        "cache": {"engine": "redis", "service": "redis", "password_key": None},
    }})
    assert [component.password_key for component in found] == ["MONGODB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD", None]


def test_the_plan_says_when_a_component_logs_in_without_credentials():
    from pyinfra_deploys.engines.base import without_credentials
    from pyinfra_deploys.engines.redis import RedisComponent
    from pyinfra_deploys.plan import describe
    component = RedisComponent.from_data("cache", {"password_key": None, "flush_patterns": ["user:session:*"]})
    plan = {"part": None, "component": "cache", "engine": "redis", "flush": {"user:session:*": 2}, "changes": True}
    lines = describe(without_credentials(plan, component))
    assert lines[-1] == "  cache: no credentials (password_key is null): its client logs in without a password"
