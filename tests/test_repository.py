"""The repository itself, read without a sandbox: nothing in it tells users to turn SSH
host key checking off (the sandbox's own hosts are checked against its known_hosts: see
tests/reliability/test_secrets.py)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Turning checking off, in the ways users are told to: ssh's options (as `-o` or in an
# ssh_config), pyinfra's host data (Python, `--data`), an empty known_hosts.
TURNING_CHECKS_OFF = {
    "StrictHostKeyChecking=no": re.compile(r"StrictHostKeyChecking\s*[= ]\s*[\"']?(no|off)\b", re.I),
    "ssh_strict_host_key_checking no/off/False":
        re.compile(r"ssh_strict_host_key_checking[\"']?\s*[:=]\s*[\"']?(no|off|false)\b", re.I),
    "UserKnownHostsFile=/dev/null": re.compile(r"UserKnownHostsFile\s*[= ]\s*[\"']?/dev/null", re.I),
    "known_hosts_file=/dev/null": re.compile(r"known_hosts_file[\"']?\s*[:=]\s*[\"']?/dev/null", re.I),
}
# A line that names one of them only to forbid it ("never `StrictHostKeyChecking=no`").
FORBIDS_IT = re.compile(r"\b(never|do not|don't|must not)\b", re.I)
# Where users read how to run us: the READMEs and docs, the sandbox, inventories, the
# deploys and the code they run, the Makefile and CI.
READ_BY_USERS = ("README.md", "Makefile", ".ci", "docs", "sandbox", "inventories", "pyinfra_deploys", "facts",
                 "operations", "bench", "rollback.py", "backup.py", "verify.py", "maintenance.py", "migrate.py",
                 "rehearse.py", "pyproject.toml")


def test_nothing_in_the_repository_tells_users_to_turn_host_key_checking_off():
    examples = {"StrictHostKeyChecking=no": "ssh -o StrictHostKeyChecking=no root@host",
                "ssh_strict_host_key_checking no/off/False": '"ssh_strict_host_key_checking": False,',
                "UserKnownHostsFile=/dev/null": "  UserKnownHostsFile /dev/null",
                "known_hosts_file=/dev/null": "--data ssh_known_hosts_file=/dev/null"}
    for name, pattern in TURNING_CHECKS_OFF.items():
        assert pattern.search(examples[name]), f"the pattern for {name} finds it"
    assert TURNING_CHECKS_OFF["ssh_strict_host_key_checking no/off/False"].search(
        "pyinfra inv.py deploy.py --data ssh_strict_host_key_checking=off")
    assert not any(pattern.search('"ssh_strict_host_key_checking": "yes",') for pattern in TURNING_CHECKS_OFF.values())

    files = []
    for place in READ_BY_USERS:
        path = REPO / place
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                       and "__pycache__" not in p.parts)
    told, forbidden, scanned = [], [], []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # images, archives
        scanned.append(path.relative_to(REPO).as_posix())
        for number, line in enumerate(text.splitlines(), 1):
            for name, pattern in TURNING_CHECKS_OFF.items():
                if pattern.search(line):
                    where = f"{path.relative_to(REPO)}:{number} ({name})"
                    (forbidden if FORBIDS_IT.search(line) else told).append(where)

    assert {"README.md", "inventories/sandbox.py", "sandbox/up.sh", "sandbox/README.md",
            "pyinfra_deploys/rollback.py"} <= set(scanned)
    assert not told, f"these tell users to turn host key checking off: {told}"
    print(f"{len(scanned)} files read; {len(forbidden)} line(s) name a way to turn checking off only to forbid it: "
          f"{forbidden}")
