"""
Staging: where rollbacks are rehearsed before production needs them. Same shape as
prod.py; keep the two in step so a rehearsal proves what production will do.

    pyinfra inventories/staging.py rollback.py --data commit=<sha|tag>
"""

_ssh = {
    "ssh_user": "deploy",
    "ssh_key": "~/.ssh/layra_deploy",
    "ssh_known_hosts_file": "~/.ssh/known_hosts",
    "_sudo": True,
}

app = [
    ("layra-staging-1.example.internal", {**_ssh, "layra_stack_dir": "/srv/layra"}),
]
