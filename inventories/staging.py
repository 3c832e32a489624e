"""
Staging: where rollbacks are rehearsed before production needs them. Same shape as
prod.py; keep the two in step so a rehearsal proves what production will do.

    pyinfra inventories/staging.py rollback.py --data commit=<sha|tag>
    layra-rollback rehearse --staging inventories/staging.py --source inventories/prod.py --snapshot <id>
"""

_ssh = {
    "ssh_user": "deploy",
    "ssh_key": "~/.ssh/layra_deploy",
    "ssh_known_hosts_file": "~/.ssh/known_hosts",
    "ssh_strict_host_key_checking": "yes",  # an unknown or changed host key is refused, never asked
    "_sudo": True,
}

app = [
    # rehearsals copy production snapshots from this production host
    ("layra-staging-1.example.internal", {**_ssh, "layra_stack_dir": "/srv/layra",
                                          "layra_rehearsal_source": "layra-app-1.example.internal"}),
]
