"""
Production: an example inventory for Layra hosts reached over SSH. Copy and edit.

Hosts are grouped by role. Every key below is optional: the defaults describe Layra's
own docker-compose.yml (see README, "Inventory keys"). Credentials are never written
here: operations read them on each host from the stack's env file (`layra_env_file`).

    pyinfra inventories/prod.py verify.py
    pyinfra inventories/prod.py rollback.py --data commit=<sha|tag> --dry
"""

_ssh = {
    "ssh_user": "deploy",
    "ssh_key": "~/.ssh/layra_deploy",
    # Host keys are checked: keep this file current (ssh-keyscan once, review, commit).
    "ssh_known_hosts_file": "~/.ssh/known_hosts",
    "_sudo": True,
}

# Hosts that run the application and the databases together (Layra's single-host shape).
app = [
    ("layra-app-1.example.internal", {**_ssh, "layra_stack_dir": "/srv/layra"}),
]

# A split deployment puts the data services elsewhere and says which each host holds:
# data = [
#     ("layra-data-1.example.internal", {**_ssh, "layra_components": {
#         "mysql": {"engine": "mysql", "service": "mysql", "user": "root",
#                   "password_key": "MYSQL_ROOT_PASSWORD", "databases": ["layra"]},
#         "redis": {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD"},
#     }}),
# ]
