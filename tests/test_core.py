"""The plain-Python core: host data validation and the dry-run plan."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import DeployError

from pyinfra_deploys.config import components_from, stack_from
from pyinfra_deploys.plan import PlanFile, describe, stack_plan

GOOD, BAD = "1f0c2d9" + "a" * 33, "9e8d7c6" + "b" * 33


def service(state="running", config_hash="h1", desired_hash="h1"):
    return {"name": "x", "state": state, "health": "healthy", "health_output": "", "image": "sha256:1",
            "config_hash": config_hash, "desired_hash": desired_hash}


def test_stack_data_defaults_to_layras_shape():
    stack = stack_from({})
    assert (stack.dir, stack.project, stack.files, stack.env_path) == (
        "/srv/layra", "layra", ("docker-compose.yml",), "/srv/layra/.env")


@pytest.mark.parametrize("data, message", [
    ({"layra_stack_dir": 5}, "host data 'layra_stack_dir' must be the stack's directory (a string), got 5"),
    ({"layra_compose_files": "docker-compose.yml"}, "host data 'layra_compose_files' must be a list of compose file paths"),
    ({"layra_compose_files": []}, "host data 'layra_compose_files' must be a non-empty list of paths, got []"),
])
def test_malformed_stack_data_is_rejected_naming_the_key(data, message):
    with pytest.raises(DeployError) as error:
        stack_from(data)
    assert message in str(error.value)


@pytest.mark.parametrize("components, message", [
    ({"mysql": {"engine": "postgres", "service": "db"}}, "'layra_components.mysql.engine' must be one of"),
    ({"mysql": {"engine": "mysql", "service": "my sql"}}, "'layra_components.mysql.service' must be a compose service name"),
    ({"mysql": {"engine": "mysql", "databse": ["layra"]}},
     "'layra_components.mysql.databse' is not a setting of the mysql engine (it takes service, user, password_key, "
     "databases, user_key, databases_key)"),
    ({"milvus": {"engine": "volumes", "services": "milvus"}}, "'layra_components.milvus.services' must be a non-empty list"),
    ({"mysql": {"engine": "mysql", "service": "mysql", "password_key": "PW; rm -rf /"}},
     "'layra_components.mysql.password_key' must name a variable"),
    ({"redis": "redis"}, "'layra_components.redis' must be a mapping"),
])
def test_malformed_components_are_rejected_naming_the_key(components, message):
    with pytest.raises(DeployError) as error:
        components_from({"layra_components": components})
    assert message in str(error.value)


def test_plan_from_a_bad_release_lists_undone_commits_rebuilds_and_recreates():
    repo = {"commit": BAD, "dirty": [], "remotes": []}
    target = {"commit": GOOD, "subject": "release 1.0.0", "added": [],
              "undone": [{"commit": BAD, "subject": "release 1.1.0: kb sharing (broken)"}],
              "changed_files": ["backend/app.py", "docker-compose.yml"]}
    services = {"backend": service(config_hash="h2", desired_hash="h2"), "mysql": service(), "worker": service()}
    target_config = {"hashes": {"backend": "h1", "mysql": "h1"}, "build_contexts": {"backend": "backend"}}

    plan = stack_plan("v1.0.0", "/srv/layra", repo, target, services, target_config)

    assert (plan["rebuild"], plan["recreate"], plan["remove"], plan["changes"]) == (
        ["backend"], ["backend"], ["worker"], True)
    assert describe(plan) == [
        "stack: commit 9e8d7c6 -> 1f0c2d9 (1 commit undone)",
        "  - 9e8d7c6 release 1.1.0: kb sharing (broken)",
        "  rebuild: backend",
        "  recreate: backend",
        "  remove: worker",
    ]


def test_plan_at_the_target_says_there_is_no_change():
    repo = {"commit": GOOD, "dirty": [], "remotes": []}
    target = {"commit": GOOD, "subject": "release 1.0.0", "added": [], "undone": [], "changed_files": []}
    plan = stack_plan(GOOD, "/srv/layra", repo, target, {"mysql": service()}, {"hashes": {"mysql": "h1"}, "build_contexts": {}})

    assert plan["changes"] is False
    assert describe(plan)[-1] == "  no change: the stack is already there"


def test_plan_for_an_unknown_commit_says_so_and_keeps_the_current_one():
    plan = stack_plan("0badc0ffee", "/srv/layra", {"commit": GOOD, "dirty": [], "remotes": []}, None, {}, None)

    assert describe(plan) == [
        "stack: commit '0badc0ffee' is not in the repository at /srv/layra; nothing was changed "
        f"(the stack is at {GOOD[:12]})"]


def test_plan_file_holds_every_host_planned_so_far(tmp_path):
    plans, path = PlanFile(), tmp_path / "out" / "plan.json"
    plans.add("sandbox-1", [{"component": "stack"}], str(path))
    plans.add("sandbox-2", [{"component": "stack"}], str(path))

    assert sorted(json.loads(path.read_text())["hosts"]) == ["sandbox-1", "sandbox-2"]
