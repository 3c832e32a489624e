"""Roll back: pyinfra inventories/prod.py rollback.py --data snapshot=<id|latest> [--data commit=<ref>] [--dry]

Maintenance on, safety snapshot, stack at the snapshot's commit, restores, caches, verify
1-4, maintenance off, run record (see pyinfra_deploys/rollback.py and the README).
`--data commit=<ref>` alone moves only the code. `--data safety_snapshot=skip` skips the
safety snapshot (the rollback then cannot be undone). One rollback at a time per stack: a
run refused by another's lock names it; `--data break_lock=<its run id>` breaks a stale one.
A host unreachable at the start stops the run on every host (leave it out with --limit).
`--data until=migration|<YYYY-MM-DDTHH:MM:SSZ>|<binlog file>:<position>` with a snapshot:
MySQL replayed from the binlog up to that point, the users' earlier writes kept (README,
"Point-in-time").
"""

from pyinfra_deploys.rollback import rollback

rollback()
