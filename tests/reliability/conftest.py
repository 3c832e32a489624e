"""
The fault and abuse suite: faults injected into real runs, bad input, and secrets, over
the sandbox's SSH hosts as the e2e tier reaches them (never skipped; `make test` runs it).

Each case asserts the exact outcome: live data untouched or fully at the target
(fingerprints say which), services running, snapshots intact, one clear error naming the
cause, and a rerun that converges. `pytest -m reliability` runs the suite alone.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Sandbox, SandboxHost, sandbox  # noqa: F401 - the shared fixture

SANDBOX_INVENTORY = ROOT / "inventories" / "sandbox.py"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/reliability/" in str(item.fspath):
            # it needs the sandbox, as the e2e tier does: out of `make test-unit`
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.e2e)


def host_named(sandbox: Sandbox, name: str) -> SandboxHost:
    return next(host for host in sandbox.hosts if host.name == name)


def inventory_file(directory: Path, hosts: dict[str, dict], extra_hosts: list[tuple[str, dict]] = (),
                   name: str = "inventory") -> str:
    """An inventory file ``<directory>/<name>.py`` of sandbox hosts, each with its host data
    updated (bad data too: values are written as Python literals), plus ``extra_hosts`` as given."""
    path = directory / f"{name}.py"
    path.write_text(
        "import runpy\n"
        f"_sandbox = dict(runpy.run_path({str(SANDBOX_INVENTORY)!r})['app'])\n"
        f"_updates = {hosts!r}\n"
        "app = [(name, {**_sandbox[name], **data}) for name, data in _updates.items()]"
        f" + {list(extra_hosts)!r}\n"
    )
    runpy.run_path(str(path))  # a typo here is the test's, not the deploy's
    return str(path)


def env_secrets(host: SandboxHost) -> list[str]:
    """Every secret of the host's stack env file (passwords, keys), as the leak checks look for them."""
    env = dict(line.split("=", 1) for line in host.ssh("cat /srv/layra/.env").splitlines() if "=" in line)
    found = [value for key, value in env.items() if any(word in key for word in ("PASSWORD", "KEY", "SECRET"))]
    assert found and all(len(value) >= 16 for value in found), "the sandbox's secrets are long enough to find"
    return found
