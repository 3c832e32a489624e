"""Write quiesce by hand: pyinfra inventories/prod.py maintenance.py --data maintenance=on|off"""

from pyinfra_deploys.maintenance import maintenance_mode

maintenance_mode()
