"""Guarded release: pyinfra inventories/prod.py migrate.py --data commit=<new> [--data watch_window=5m]

Pre-migration snapshot (verified), the stack at the new commit, then the trigger rules
watched for the window; a release that fails to deploy or a CRITICAL rule held rolls back
to the pre-migration snapshot by itself (see pyinfra_deploys/migrate.py and the README).
`--data rules=FILE` `--data watch_interval=10s` `--data hook_url=URL` tune the watch.
"""

from pyinfra_deploys.migrate import migrate

migrate()
