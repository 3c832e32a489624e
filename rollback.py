"""Roll back: pyinfra inventories/prod.py rollback.py --data commit=<sha|tag> [--dry]"""

from pyinfra_deploys.rollback import rollback

rollback()
