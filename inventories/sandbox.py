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

try:
    _hosts = json.loads((STATE / "hosts.json").read_text())
except FileNotFoundError:
    raise SystemExit(f"no sandbox at {STATE}: run `make sandbox-up` first") from None

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
    "mysql": {"engine": "mysql", "service": "mysql", "user": "root",
              "password_key": "MYSQL_ROOT_PASSWORD", "databases": ["layra"]},
    "mongodb": {"engine": "mongo", "service": "mongodb", "user": "root", "auth_db": "admin",
                "password_key": "MONGO_ROOT_PASSWORD", "databases": ["layra"]},
    "redis": {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD",
              "flush_patterns": ["user:session:*", "kb:cache:*", "embedding:*"], "rdb": False},
    # Milvus Lite + a real etcd: one volume set, stopped and archived together
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd"],
               "milvus": {"client_service": "backend", "uri": "http://milvus-standalone:19530"}},
    "qdrant": {"engine": "qdrant", "service": "qdrant", "url": "http://127.0.0.1:6333",
               "password_key": "QDRANT_API_KEY"},
}

# The second host keeps state in Redis (backed up as an RDB and restored, not flushed)
# and backs Qdrant up by volume instead of through its snapshot API.
_redis_as_state = {**_components, "redis": {**_components["redis"], "flush_patterns": [], "rdb": True},
                   "qdrant": {"engine": "volumes", "services": ["qdrant"]}}

app = [
    (h["name"], {**_ssh, "ssh_hostname": h["address"], "ssh_port": h.get("port", 22),
                 "layra_components": _redis_as_state if index % 2 else _components})
    for index, h in enumerate(_hosts)
]
