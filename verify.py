"""Verify: pyinfra inventories/prod.py verify.py"""

from pyinfra_deploys.verify import verify

verify()
