"""
The sandbox: Docker-in-Docker test hosts started by `make sandbox-up`, each running its
own Layra-shaped stack. Host keys are checked against the known_hosts file the sandbox
wrote; nothing here turns checking off.

    pyinfra inventories/sandbox.py rollback.py --data commit=v1.0.0
"""

import json
import os
from pathlib import Path

STATE = Path(os.environ.get("LAYRA_SANDBOX_DIR", Path(__file__).resolve().parent.parent / ".sandbox"))

# every host of the sandbox, or those a test lane drives (tests/e2e/conftest.py)
HOSTS = Path(os.environ.get("LAYRA_SANDBOX_HOSTS") or STATE / "hosts.json")

try:
    _hosts = json.loads(HOSTS.read_text())
except FileNotFoundError:
    raise SystemExit(f"no sandbox at {STATE} ({HOSTS} is missing): run `make sandbox-up` first") from None

_ssh = {
    "ssh_user": "root",
    "ssh_key": str(STATE / "id_ed25519"),
    "ssh_known_hosts_file": str(STATE / "known_hosts"),
    "ssh_strict_host_key_checking": "yes",
    "ssh_look_for_keys": False,
    "ssh_allow_agent": False,
}

# Which components each sandbox host holds. MongoDB and Qdrant are stand-ins (see README).
_components = {
    # the database names and MongoDB's user are read on the host from the env file, as
    # Layra's compose file takes them
    "mysql": {"engine": "mysql", "service": "mysql", "user": "root",
              "password_key": "MYSQL_ROOT_PASSWORD", "databases_key": "MYSQL_DATABASE"},
    "mongodb": {"engine": "mongo", "service": "mongodb", "user_key": "MONGODB_ROOT_USERNAME", "auth_db": "admin",
                "password_key": "MONGODB_ROOT_PASSWORD", "databases_key": "MONGODB_DB"},
    "redis": {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD",
              # as Layra: sessions in database 1, task state and its caches in database 2
              "flush_patterns": [{"db": 1, "pattern": "user:session:*"}, {"db": 2, "pattern": "kb:cache:*"},
                                 {"db": 2, "pattern": "embedding:*"}], "rdb": False},
    # the real Milvus standalone server + its etcd: one volume set, stopped and archived together
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd"],
               "milvus": {"client_service": "backend", "uri": "http://milvus-standalone:19530"}},
    "qdrant": {"engine": "qdrant", "service": "qdrant", "url": "http://127.0.0.1:6333",
               "password_key": "QDRANT_API_KEY"},
}

# The second host keeps state in Redis (backed up as an RDB and restored; its cache
# patterns are left out of the fingerprint and flushed after the restore)
# and backs Qdrant up by volume instead of through its snapshot API.
_redis_as_state = {**_components, "redis": {**_components["redis"], "rdb": True},
                   "qdrant": {"engine": "volumes", "services": ["qdrant"]}}

# nginx is the front door: maintenance mode writes its drop-in (writes -> 503) there too.
# The sandbox's backend writes only on the requests nginx passes (it runs no consumer):
# maintenance on stops writes at nginx, without replacing it.
_maintenance = {"service": "backend", "nginx_service": "nginx", "dropin": "nginx/layra.d/maintenance.conf",
                "backend_writes": False}

# Verify phase 3, through nginx as users come in. The demo user's password stays on the
# host, in the stack's env file.
_functional_checks = {
    "base_url": "http://127.0.0.1:8090",
    "login": {"path": "/api/v1/auth/login", "username": "demo", "password_key": "LAYRA_DEMO_PASSWORD"},
    "checks": [
        {"name": "knowledge-base list", "method": "GET", "path": "/api/v1/knowledge-bases"},
        {"name": "chat completion", "method": "POST", "path": "/api/v1/chat/completions",
         "json": {"query": "What changed in the last release?"}},
    ],
}

# Each sandbox host runs the whole stack (Layra's single-host shape): one group, app.
app = [
    (h["name"], {**_ssh, "ssh_hostname": h["address"], "ssh_port": h.get("port", 22),
                 "layra_components": _redis_as_state if index % 2 else _components,
                 "layra_maintenance": _maintenance, "layra_functional_checks": _functional_checks})
    for index, h in enumerate(_hosts)
]
