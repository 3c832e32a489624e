"""
Production: an example inventory for Layra hosts reached over SSH. Copy and edit.

Hosts are grouped by role: `app` hosts run the backend (and nginx), `data` hosts run
databases. A host restores only the components its `layra_components` names; a single
host that runs everything (Layra's own docker-compose.yml) is an `app` host with the
default components. Every key is optional (see README, "Inventory keys"). Credentials
are never written here: operations read them on each host from the stack's env file.

    pyinfra inventories/prod.py verify.py
    pyinfra inventories/prod.py rollback.py --data snapshot=latest --dry
    pyinfra inventories/prod.py rollback.py --data snapshot=latest --limit app
"""

_ssh = {
    "ssh_user": "deploy",
    "ssh_key": "~/.ssh/layra_deploy",
    # Host keys are checked: keep this file current (ssh-keyscan once, review, commit).
    "ssh_known_hosts_file": "~/.ssh/known_hosts",
    "ssh_strict_host_key_checking": "yes",  # an unknown or changed host key is refused, never asked
    "_sudo": True,
}

# The backend behind nginx: maintenance mode sets MAINTENANCE_MODE for the backend and drops
# a file into a directory Layra's nginx.conf must include inside its server block
# (`include /etc/nginx/layra.d/*.conf;`, bind-mounted from <stack>/nginx/layra.d).
_maintenance = {"service": "backend", "nginx_service": "nginx", "dropin": "nginx/layra.d/maintenance.conf"}

# Verify phase 3: a user kept for checks; its password is CHECK_USER_PASSWORD in the env file.
_functional_checks = {
    "base_url": "http://127.0.0.1:80",
    "login": {"path": "/api/v1/auth/login", "username": "rollback-check", "password_key": "CHECK_USER_PASSWORD"},
    "checks": [
        {"name": "knowledge-base list", "method": "GET", "path": "/api/v1/knowledge-bases"},
        {"name": "chat completion", "method": "POST", "path": "/api/v1/chat/completions", "json": {"query": "test"}},
    ],
}

app = [
    ("layra-app-1.example.internal", {**_ssh, "layra_stack_dir": "/srv/layra",
                                      "layra_health_url": "http://127.0.0.1:80/api/v1/health/check",
                                      "layra_maintenance": _maintenance,
                                      "layra_functional_checks": _functional_checks}),
]

# A split deployment: the data host holds the databases and no backend (no maintenance
# mode there); app hosts then say `"layra_components": {}` or what they still hold.
# data = [
#     ("layra-data-1.example.internal", {**_ssh, "layra_maintenance": False, "layra_components": {
#         "mysql": {"engine": "mysql", "service": "mysql", "user": "root",
#                   "password_key": "MYSQL_ROOT_PASSWORD", "databases": ["layra"]},
#         "redis": {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD"},
#     }}),
# ]
