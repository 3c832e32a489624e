"""Rehearse, copy step: pyinfra inventories/staging.py rehearse.py --data snapshot=<id> --data source=inventories/prod.py
[--data source_host=<name>]

Copies the production snapshot to every staging host over SSH: read from production only,
checksums checked as read and again on arrival, the env file left behind (see
pyinfra_deploys/snapshot_copy.py). `layra-rollback rehearse` runs it, then the restore, the
release under test and the rollback on staging, and writes the rehearsal report.
"""

from pyinfra_deploys.snapshot_copy import snapshot_copied_to_staging

snapshot_copied_to_staging()
