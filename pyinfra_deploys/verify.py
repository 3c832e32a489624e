"""
The verify deploy: the runbook's verification phases, each check with its observed value.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from operations import checks

from .config import DEFAULTS, components_from, setting, stack_from


@deploy("Verify the Layra stack", data_defaults=DEFAULTS)
def verify():
    stack = stack_from(host.data)
    components = components_from(host.data)
    checks.infrastructure(
        name="Verify phase 1: infrastructure",
        stack=stack,
        disk_paths=setting(host.data, "layra_disk_paths"),
        min_disk_free_pct=float(setting(host.data, "layra_min_disk_free_pct")),
        max_memory_used_pct=float(setting(host.data, "layra_max_memory_used_pct")),
    )
    checks.connectivity(
        name="Verify phase 2: connectivity",
        stack=stack,
        health_url=setting(host.data, "layra_health_url"),
        components=components,
    )
