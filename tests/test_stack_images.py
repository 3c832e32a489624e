"""The stack plan given the images a snapshot recorded: which services return to them."""

from __future__ import annotations

from pyinfra_deploys.plan import describe, stack_plan

GOOD, BAD = "1f0c2d9" + "a" * 33, "9e8d7c6" + "b" * 33
BACKEND, WORKER = "sha256:1a2b3c4d5e6f" + "0" * 52, "sha256:7e7e7e7e7e7e" + "3" * 52
MYSQL, NEW = "sha256:c0ffee" + "2" * 58, "sha256:bbbbbbbbbbbb" + "4" * 52
TARGET_CONFIG = {
    "hashes": {"backend": "h1", "worker": "h1", "mysql": "h1"},
    "build_contexts": {"backend": "backend", "worker": "worker"},
    "images": {"backend": "layra-backend", "worker": "layra-worker", "mysql": "mariadb:10.11"},
}
RECORDED = {"backend": BACKEND, "worker": WORKER, "mysql": MYSQL}


def service(image, config_hash="h1"):
    return {"name": "x", "state": "running", "health": "", "health_output": "", "image": image,
            "config_hash": config_hash, "desired_hash": config_hash}


def rollback_plan(head, services, present, target_config=TARGET_CONFIG):
    repo = {"commit": head, "dirty": [], "remotes": []}
    undone = [{"commit": BAD, "subject": "release 1.1.0"}] if head == BAD else []
    target = {"commit": GOOD, "subject": "release 1.0.0", "added": [], "undone": undone,
              "changed_files": ["backend/app.py", "worker/main.py"] if undone else []}
    return stack_plan(GOOD, "/srv/layra", repo, target, services, target_config,
                      images=RECORDED, present=present)


def test_services_whose_recorded_image_exists_go_back_to_it_without_a_rebuild():
    running = {name: service(NEW) for name in RECORDED}
    plan = rollback_plan(BAD, running, [BACKEND, WORKER, MYSQL])

    assert plan["rebuild"] == []
    assert plan["recreate"] == ["backend", "mysql", "worker"]
    assert describe(plan)[-3:] == [
        "  backend: back to image sha256:1a2b3c4d5e6f (recorded in the snapshot; no rebuild)",
        "  mysql: back to image sha256:c0ffee222222 (recorded in the snapshot; no rebuild)",
        "  worker: back to image sha256:7e7e7e7e7e7e (recorded in the snapshot; no rebuild)",
    ]


def test_a_service_whose_recorded_image_is_gone_is_rebuilt_from_the_commit():
    running = {name: service(NEW) for name in RECORDED}
    plan = rollback_plan(BAD, running, [BACKEND])

    assert plan["rebuild"] == ["worker"]
    assert plan["images"]["mysql"]["action"] == "compose"
    assert describe(plan)[-3:] == [
        "  backend: back to image sha256:1a2b3c4d5e6f (recorded in the snapshot; no rebuild)",
        "  mysql: image mariadb:10.11 as the commit names it (recorded image sha256:c0ffee222222 is gone)",
        "  worker: rebuilt from the commit (recorded image sha256:7e7e7e7e7e7e is gone)",
    ]


def test_an_interpolated_image_name_cannot_be_pinned_and_is_rebuilt():
    config = {**TARGET_CONFIG, "images": {**TARGET_CONFIG["images"], "worker": "${REGISTRY}/worker:${TAG}"}}
    plan = rollback_plan(BAD, {name: service(NEW) for name in RECORDED}, [BACKEND, WORKER, MYSQL], config)

    assert plan["rebuild"] == ["worker"]
    assert describe(plan)[-1] == ("  worker: rebuilt from the commit (its image name ${REGISTRY}/worker:${TAG} "
                                  "cannot be pinned to the recorded sha256:7e7e7e7e7e7e)")


def test_at_the_commit_on_the_recorded_images_nothing_changes():
    running = {"backend": service(BACKEND), "worker": service(WORKER), "mysql": service(MYSQL)}
    plan = rollback_plan(GOOD, running, [BACKEND, WORKER, MYSQL])

    assert (plan["rebuild"], plan["recreate"], plan["changes"]) == ([], [], False)
    assert describe(plan)[-1] == "  no change: the stack is already there"


def test_a_gone_recorded_image_does_not_keep_a_rebuilt_service_changing():
    running = {"backend": service(BACKEND), "worker": service(NEW), "mysql": service(MYSQL)}
    plan = rollback_plan(GOOD, running, [BACKEND, MYSQL])

    assert plan["changes"] is False
    assert "  worker: image layra-worker as the commit names it (recorded image sha256:7e7e7e7e7e7e is gone)" \
        in describe(plan)


def test_at_the_commit_a_service_on_another_image_is_recreated_on_its_recorded_one():
    running = {"backend": service(NEW), "worker": service(WORKER), "mysql": service(MYSQL)}
    plan = rollback_plan(GOOD, running, [BACKEND, WORKER, MYSQL])

    assert (plan["recreate"], plan["changes"]) == (["backend"], True)


def test_a_service_recreated_because_its_configuration_changed_says_so_not_that_its_image_moves():
    running = {"backend": service(BACKEND, config_hash="h0"), "worker": service(WORKER), "mysql": service(MYSQL)}
    plan = rollback_plan(GOOD, running, [BACKEND, WORKER, MYSQL])

    assert plan["recreate"] == ["backend"]
    assert describe(plan)[-1] == (
        "  backend: recreated: its configuration at the commit differs from the running one's (compose file or "
        "env file) (on its recorded image sha256:1a2b3c4d5e6f, no rebuild)")
