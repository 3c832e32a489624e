"""
The sandbox's production, for rehearsals: sandbox-1 alone, exactly as inventories/sandbox.py
describes it. A rehearsal only reads from it (inventories/sandbox_staging.py is where it
writes).

    layra-rollback rehearse --source inventories/sandbox_prod.py \
        --staging inventories/sandbox_staging.py --snapshot <id>
"""

import runpy
from pathlib import Path

_sandbox = dict(runpy.run_path(str(Path(__file__).with_name("sandbox.py")))["app"])

app = [("sandbox-1", _sandbox["sandbox-1"])]
