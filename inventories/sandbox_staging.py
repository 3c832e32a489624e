"""
The sandbox's staging, for rehearsals: sandbox-2 in production's shape (sandbox-1's
components, inventories/sandbox_prod.py), so that a production snapshot restores there as
it would in production. inventories/sandbox.py gives sandbox-2 another shape (Redis as
state, Qdrant by volume) to cover those paths; a rehearsal needs staging to look like
production instead.

    layra-rollback rehearse --source inventories/sandbox_prod.py \
        --staging inventories/sandbox_staging.py --snapshot <id>

No verify phase 3 here: it logs in as the demo user with the password in sandbox-2's env
file, but after a rehearsal the users table is sandbox-1's, whose hash is of sandbox-1's
password (each sandbox host has its own), and credentials are never copied. A real
staging keeps the check user's password the same as production's for this reason.
"""

import runpy
from pathlib import Path

_sandbox = dict(runpy.run_path(str(Path(__file__).with_name("sandbox.py")))["app"])
_production = _sandbox["sandbox-1"]

app = [
    ("sandbox-2", {
        **{key: value for key, value in _sandbox["sandbox-2"].items() if key != "layra_functional_checks"},
        "layra_components": _production["layra_components"],
    }),
]
