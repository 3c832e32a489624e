"""Back up: pyinfra inventories/prod.py backup.py [--data label=pre-migration] [--data snapshot=<id>]"""

from pyinfra_deploys.backup import backup

backup()
