"""
Stack at commit X, over real SSH on the sandbox hosts: rollback, dry run, refusals,
and verification phases 1 and 2.
"""

from __future__ import annotations

import json
import re

from .conftest import Sandbox


def test_rollback_brings_every_host_from_the_bad_release_to_the_good_one(sandbox: Sandbox):
    for host in sandbox.hosts:
        host.deploy_by_hand("v1.1.0")
        assert host.commit() == host.commit("v1.1.0")

    run = sandbox.pyinfra("rollback.py", "--data", "commit=v1.0.0")

    assert run.ok, run.output
    for host in sandbox.hosts:
        assert host.commit() == host.commit("v1.0.0")
        assert host.health() == "200"


def test_a_second_rollback_at_the_target_changes_nothing_on_any_host(sandbox: Sandbox):
    sandbox.at_good_release()
    before = {host.name: host.containers() for host in sandbox.hosts}

    run = sandbox.pyinfra("rollback.py", "--data", "commit=v1.0.0", "-v")

    assert run.ok, run.output
    totals = run.totals()
    assert (totals["changed"], totals["error"], totals["no_change"]) == (0, 0, totals["hosts"]), run.output
    for host in sandbox.hosts:
        assert re.search(rf"\[{host.name}\] noop: stack at [0-9a-f]{{12}} and all 8 services up to date", run.output)
    assert {host.name: host.containers() for host in sandbox.hosts} == before


def test_dry_run_prints_the_concrete_change_and_changes_nothing(sandbox: Sandbox, tmp_path):
    for host in sandbox.hosts:
        host.deploy_by_hand("v1.1.0")
    before = {host.name: (host.commit(), host.containers()) for host in sandbox.hosts}
    plan_file = tmp_path / "plan.json"

    run = sandbox.pyinfra("rollback.py", "--data", "commit=v1.0.0", "--data", f"plan_out={plan_file}", "--dry")

    assert run.ok, run.output
    host = sandbox.hosts[0]
    bad, good = host.commit("v1.1.0"), host.commit("v1.0.0")
    assert f"stack: commit {bad[:7]} -> {good[:7]} (1 commit undone)" in run.output
    assert f"- {bad[:7]} release 1.1.0: kb sharing (broken)" in run.output
    assert "rebuild: backend" in run.output
    assert "recreate: backend" in run.output
    assert {h.name: (h.commit(), h.containers()) for h in sandbox.hosts} == before
    plan = json.loads(plan_file.read_text())
    assert sorted(plan["hosts"]) == sorted(h.name for h in sandbox.hosts)
    stack_plan = plan["hosts"][host.name][0]
    assert (stack_plan["current"], stack_plan["target"], stack_plan["recreate"]) == (bad, good, ["backend"])


def test_a_dirty_working_tree_is_refused_naming_what_is_uncommitted(sandbox: Sandbox):
    sandbox.at_good_release()
    host = sandbox.hosts[0]
    host.stack("echo '# local edit' >> docker-compose.yml")
    try:
        run = sandbox.pyinfra("rollback.py", "--data", "commit=v1.1.0", "--limit", host.name)
        assert not run.ok
        assert "/srv/layra has uncommitted changes (M docker-compose.yml)" in run.output
        assert host.commit() == host.commit("v1.0.0")
    finally:
        host.stack("git checkout -- docker-compose.yml")


def test_a_release_that_never_gets_healthy_fails_naming_the_service_and_the_old_one_keeps_serving(
        sandbox: Sandbox):
    sandbox.at_good_release()
    host = sandbox.hosts[0]

    # the backend is unhealthy after its start period and 5 failed checks, 4 s apart (about
    # 24 s): reported at once, before the 60 s are up
    run = sandbox.pyinfra("rollback.py", "--data", "commit=v1.1.0", "--data", "layra_ready_timeout=60",
                          "--limit", host.name)

    assert not run.ok
    assert re.search(r"backend: the new container \w+ is unhealthy after up to 60s \(last healthcheck: .*kb_shares"
                     r".*the old one keeps serving", run.output), run.output
    assert host.health() == "200"   # the rolling replace kept the running release behind nginx
    assert f"MAINTENANCE MODE IS STILL ON on {host.name}" in run.output
    sandbox.at_good_release()
    assert host.health() == "200"


def test_verify_passes_after_a_rollback_with_every_observed_value(sandbox: Sandbox):
    sandbox.at_good_release()

    run = sandbox.pyinfra("verify.py")

    assert run.ok, run.output
    for check in ("service backend: running, healthy", "disk free", "memory used", "health endpoint: HTTP 200",
                  "mysql ping: mysqld is alive", "redis ping: PONG", "qdrant healthcheck: healthy"):
        assert check in run.output, check
    assert "FAIL" not in run.output


def test_verify_fails_naming_the_check_when_a_service_is_stopped(sandbox: Sandbox):
    sandbox.at_good_release()
    host = sandbox.hosts[0]
    host.stack("docker compose stop redis 2>&1")
    try:
        run = sandbox.pyinfra("verify.py", "--limit", host.name)
        assert not run.ok
        assert "FAIL phase 1 service redis: exited" in run.output
        assert "checks failed: service redis is exited" in run.output
    finally:
        host.stack("docker compose start redis 2>&1")
    sandbox.at_good_release()
