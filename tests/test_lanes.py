"""The e2e lanes (tests/e2e/conftest.py): each pytest worker drives two hosts of its own,
named as the tests and the sandbox inventories know them."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import pytest

from tests.e2e import conftest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox_of(tmp_path, monkeypatch):
    def make(count: int, lane: str):
        hosts = [{"name": f"sandbox-{n}", "address": f"198.18.1.{10 + n}", "port": 22, "user": "root",
                  "container": f"layra-sandbox-{n}"} for n in range(1, count + 1)]
        (tmp_path / "hosts.json").write_text(json.dumps(hosts))
        (tmp_path / "id_ed25519").write_text("")
        monkeypatch.setattr(conftest, "STATE", tmp_path)
        monkeypatch.setattr(conftest, "LANE", lane)
        monkeypatch.setenv("LAYRA_SANDBOX_HOSTS", "")  # restored after the test: lane_hosts sets it
        monkeypatch.setenv("LAYRA_SANDBOX_DIR", str(tmp_path))
        return tmp_path
    return make


def test_the_second_lane_drives_hosts_3_and_4_named_as_the_first_two(sandbox_of):
    sandbox_of(4, "1")
    lane = conftest.lane_hosts()
    assert [(h["name"], h["address"], h["container"]) for h in lane] == [
        ("sandbox-1", "198.18.1.13", "layra-sandbox-3"), ("sandbox-2", "198.18.1.14", "layra-sandbox-4")]


def test_the_sandbox_inventory_holds_only_the_lanes_hosts(sandbox_of):
    sandbox_of(4, "1")
    conftest.lane_hosts()
    inventory = runpy.run_path(str(ROOT / "inventories" / "sandbox.py"))
    assert [(name, data["ssh_hostname"]) for name, data in inventory["app"]] == [
        ("sandbox-1", "198.18.1.13"), ("sandbox-2", "198.18.1.14")]
    assert os.environ["LAYRA_SANDBOX_HOSTS"].endswith("lanes/1/hosts.json")


def test_a_lane_without_hosts_of_its_own_fails_saying_how_many_to_start(sandbox_of):
    sandbox_of(2, "1")
    with pytest.raises(pytest.fail.Exception, match="SANDBOX_HOSTS=4 make sandbox-up"):
        conftest.lane_hosts()
