"""
The maintenance deploy: switch write quiesce on or off by hand, e.g. to lift it after a
run that failed with it on (that run's output prints this command for each such host).

    pyinfra inventories/prod.py maintenance.py --data maintenance=on
    pyinfra inventories/prod.py maintenance.py --data maintenance=off --limit layra-app-1
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import DeployError, deploy

from operations import maintenance

from .config import DEFAULTS, maintenance_from, stack_from


@deploy("Maintenance mode", data_defaults=DEFAULTS)
def maintenance_mode():
    wanted = str(host.data.get("maintenance") or "").lower()
    if wanted not in ("on", "off"):
        raise DeployError(f"maintenance.py needs --data maintenance=on or --data maintenance=off, got {wanted!r}")
    quiesce = maintenance_from(host.data)
    if quiesce is None:
        logger.info(f"{host.print_prefix}no backend here (layra_maintenance is False): nothing to switch")
        return
    maintenance.mode(name=f"Maintenance {wanted}", stack=stack_from(host.data), enabled=wanted == "on", **quiesce)
