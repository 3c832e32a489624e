"""Verify: pyinfra inventories/prod.py verify.py [--data snapshot=<id|latest>] [--data verify_out=FILE]

Phases 1-3, and phase 4 against the snapshot when one is named; a table of every check at
the end, as JSON in verify_out.
"""

from pyinfra_deploys.verify import verify

verify()
