"""
Secrets, as the operator is promised them: no password or key of a host's stack env file
appears in any process's command line on the host (sampled from /proc/*/cmdline every
~10 ms throughout a backup and a rollback that restores changed data), in pyinfra's output
at any verbosity, in a snapshot's manifest, part descriptors or data, in run records,
reports or plans, nor in this module's own output; snapshot directories are 0700 and
their files 0600, run record directories 0700 and their files 0600; and SSH checks host
keys: a wrong or a missing host key refuses the host before anything runs, and nothing
here tells users to turn checking off.

sandbox-2 only (Redis as state, restored from its RDB; MongoDB through the stand-in tools).
Every check counts what it looked at and fails when it looked at nothing; secrets never
appear in an assertion message (they say where, never what).
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    RUN_LINE,
    STACK,
    STATE,
    Run,
    Sandbox,
    SandboxHost,
    redis_cli,
    sql,
)

from .conftest import SANDBOX_INVENTORY, env_secrets, host_named, inventory_file

ROOT = "/var/backups/layra"
HOST = "sandbox-2"
LOCKED = "another rollback holds the lock"


class Secret(str):
    """A secret's value that never shows itself: its repr (what pytest prints of a failing
    assertion's operands) is its env file key, never its value."""

    key: str

    def __new__(cls, value: str, key: str):
        secret = super().__new__(cls, value)
        secret.key = key
        return secret

    def __repr__(self) -> str:
        return f"<secret {self.key}>"

    __str__ = __repr__


def host_secrets(host: SandboxHost) -> list[Secret]:
    """env_secrets(host), each named by its key (the same keys, in the env file's order)."""
    values = env_secrets(host)
    keys = [key for key in host.ssh(f"sed -n 's/=.*//p' {STACK}/.env").split()
            if any(word in key for word in ("PASSWORD", "KEY", "SECRET"))]
    keys = list(dict.fromkeys(keys))
    assert len(keys) == len(values), "one key per secret of the env file"
    return [Secret(value, key) for value, key in zip(values, keys)]


def leaked(text: str, secrets: list[Secret]) -> list[str]:
    """The keys whose secret appears in ``text`` (names only)."""
    return [secret.key for secret in secrets if secret in text]


def redacted(text: str, secrets: list[Secret]) -> str:
    """``text`` with every secret replaced by its key: fit for an assertion message."""
    for secret in secrets:
        text = text.replace(str.__str__(secret), f"[{secret.key}]")
    return text


def ssh_argv(host: SandboxHost, command: str) -> list[str]:
    """ssh to a sandbox host as the harness does (the sandbox's key, known_hosts checked)."""
    return ["ssh", "-i", str(STATE / "id_ed25519"), "-p", str(host.port),
            "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", f"root@{host.address}", command]


def mongo(host: SandboxHost, script: str) -> str:
    """Python in the backend container against the MongoDB stand-in (``db``: layra)."""
    script = "import pymongo; db = pymongo.MongoClient('mongodb', 27017)['layra']; " + script
    return host.stack(f"docker compose exec -T backend python3 -c {shlex.quote(script)} </dev/null")


# The sampler, run on the host with python3: every process's command line, and the mode of
# every directory and file under the snapshot root, every sweep (~10 ms apart), until its
# stdin closes. It prints "sampling" after its first sweep, then, at the end, what it saw:
# the distinct command lines (NULs as spaces), how many distinct processes (pid + start
# time) and sweeps, the sweeps' pace, and every path under the root with each mode it had.
SAMPLER = r"""
import json, os, stat, sys, threading, time
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
seen, processes, gaps, sweeps, last, modes = set(), set(), [], 0, None, {}
root = sys.argv[2]
def walk():
    for parent, dirs, files in os.walk(root):
        for path in [parent] + [os.path.join(parent, name) for name in files]:
            try:
                st = os.lstat(path)
            except OSError:
                continue
            kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "?"
            modes.setdefault(path, set()).add(kind + oct(stat.S_IMODE(st.st_mode))[2:])
start = time.monotonic()
while not done.is_set() and time.monotonic() - start < float(sys.argv[1]):
    now = time.monotonic()
    if last is not None:
        gaps.append(now - last)
    last = now
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/" + pid + "/cmdline", "rb") as f:
                cmdline = f.read()
            with open("/proc/" + pid + "/stat", "rb") as f:
                started = f.read().rsplit(b")", 1)[1].split()[19]
        except (OSError, IndexError):
            continue
        if cmdline:
            seen.add(cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip())
            processes.add((pid, started))
    walk()
    sweeps += 1
    if sweeps == 1:
        print("sampling", flush=True)
    time.sleep(0.01)
gaps.sort()
json.dump({"sweeps": sweeps, "seconds": time.monotonic() - start, "processes": len(processes),
           "median_gap": gaps[len(gaps) // 2] if gaps else None, "cmdlines": sorted(seen),
           "modes": {path: sorted(kinds) for path, kinds in modes.items()}}, sys.stdout)
"""


@dataclass
class Samples:
    sweeps: int = 0
    seconds: float = 0.0
    processes: int = 0
    median_gap: float | None = None
    cmdlines: list[str] = field(default_factory=list)
    modes: dict[str, list[str]] = field(default_factory=dict)   # path under the root -> ["d700", ...]

    def running(self, program: str) -> list[str]:
        """The command lines of ``program`` itself, as sampled: its first word, or its
        second after an interpreter (the MongoDB stand-ins are Python scripts)."""
        return [line for line in self.cmdlines
                if program in (word.rsplit("/", 1)[-1] for word in line.split(" ")[:2])]


class Sampler:
    """Samples every command line on ``host``, and every mode under the snapshot root, while
    the ``with`` block runs."""

    def __init__(self, host: SandboxHost, limit: int = 900):
        self.host, self.limit, self.samples = host, limit, Samples()

    def __enter__(self) -> Samples:
        command = f"python3 -c {shlex.quote(SAMPLER)} {self.limit} {ROOT}"
        self.process = subprocess.Popen(ssh_argv(self.host, command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        first = self.process.stdout.readline()
        assert first.strip() == "sampling", f"the sampler did not start on {self.host.name}"
        return self.samples

    def __exit__(self, *exc):
        out, err = self.process.communicate(timeout=120)  # closes its stdin: the sampler stops
        assert self.process.returncode == 0, f"the sampler on {self.host.name} failed: {err[-500:]}"
        vars(self.samples).update(json.loads(out))
        return False


# Run on the host with python3: reads the secrets (JSON) from stdin, never from its command
# line, and scans every file under each directory given, gzip and zstd files decompressed
# (the tar archives inside included). Prints, per file (relative to the root), the bytes it
# scanned, whether it decompressed them, its mode, and the indexes of the secrets it holds.
SCANNER = r"""
import gzip, json, os, subprocess, sys
secrets = [s.encode() for s in json.load(sys.stdin)]
keep = max(len(s) for s in secrets) - 1
def scan(path):
    process = None
    if path.endswith(".gz"):
        stream = gzip.open(path, "rb")
    elif path.endswith(".zst"):
        process = subprocess.Popen(["zstd", "-q", "-dc", "--", path], stdout=subprocess.PIPE)
        stream = process.stdout
    else:
        stream = open(path, "rb")
    found, size, tail = set(), 0, b""
    with stream:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            window = tail + chunk
            found.update(i for i, s in enumerate(secrets) if s in window)
            tail = window[-keep:]
    if process is not None and process.wait() != 0:
        raise SystemExit("zstd could not decompress " + path)
    return {"bytes": size, "decompressed": path.endswith((".gz", ".zst")), "secrets": sorted(found),
            "mode": oct(os.stat(path).st_mode & 0o7777)[2:]}
root = sys.argv[1]
result = {}
for directory in sys.argv[2:]:
    for parent, _, names in os.walk(os.path.join(root, directory)):
        for name in names:
            path = os.path.join(parent, name)
            result[os.path.relpath(path, root)] = scan(path)
json.dump(result, sys.stdout)
"""


def scan_on_host(host: SandboxHost, secrets: list[Secret], directories: list[str]) -> dict[str, dict]:
    """What SCANNER finds in ``directories`` of the snapshot root (the secrets go over ssh's stdin)."""
    result = subprocess.run(
        ssh_argv(host, f"python3 -c {shlex.quote(SCANNER)} {ROOT} " + " ".join(map(shlex.quote, directories))),
        input=json.dumps([str.__str__(secret) for secret in secrets]), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"the scanner failed on {host.name}: {redacted(result.stderr, secrets)[-500:]}"
    return json.loads(result.stdout)


def pyinfra(sandbox: Sandbox, deploy: str, *args: str, inventory: str) -> Run:
    """sandbox.pyinfra; a run refused because another rollback holds the host's lock (someone
    else's, on a shared sandbox) is run again once that one is done."""
    for _ in range(20):
        run = sandbox.pyinfra(deploy, *args, inventory=inventory)
        if run.ok or LOCKED not in run.output:
            return run
        time.sleep(15)
    return run


def record_dir(run: Run) -> Path:
    match = RUN_LINE.search(run.output)
    assert match, "the run printed no run record line"
    return Path(match.group(3)).parent


@dataclass
class Scene:
    """What the module's runs left: pyinfra's output of each run, the samples taken on the
    host while it ran, the snapshot and the plan they wrote, and MySQL's and MongoDB's
    row counts when backed up, damaged and after the rollback."""

    runs: dict[str, Run]
    samples: dict[str, Samples]
    snapshot_id: str
    plan: Path
    counts: dict[str, tuple[str, str]]


# Each run of the scene, in order, and the verbosity it runs at.
VERBOSITY = {"backup": "-vv", "dry run": "default", "dry run -v --debug": "-v --debug", "rollback": "-vvv"}


@pytest.fixture(scope="module")
def host(sandbox: Sandbox) -> SandboxHost:
    return host_named(sandbox, HOST)


@pytest.fixture(scope="module")
def secrets(host: SandboxHost) -> list[Secret]:
    return host_secrets(host)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> str:
    """sandbox-2 alone, as inventories/sandbox.py describes it."""
    return inventory_file(tmp_path_factory.mktemp("inventory"), {HOST: {}})


def counts(host: SandboxHost) -> tuple[str, str]:
    """(MySQL's knowledge bases, MongoDB's conversations)."""
    return (sql(host, "SELECT COUNT(*) FROM knowledge_bases"),
            mongo(host, "print(db.conversations.count_documents({}))"))


@pytest.fixture(scope="module")
def scene(sandbox: Sandbox, host: SandboxHost, secrets: list[Secret], inventory: str, tmp_path_factory):
    """Four runs on sandbox-2, each sampled from its start to its end: a backup (-vv); then
    MySQL rows, a MySQL table, a Redis key and a MongoDB document changed; a dry rollback
    (default verbosity, its plan written as JSON), another (-v --debug), and the rollback
    that restores the snapshot (-vvv). The data ends as the backup found it, and the
    module's snapshot is removed."""
    if host.commit() != host.commit("v1.0.0") or host.health() != "200":
        run = pyinfra(sandbox, "rollback.py", "--data", "commit=v1.0.0", "--limit", HOST, inventory=inventory)
        assert run.ok, f"{HOST} is not at v1.0.0 and healthy:\n{redacted(run.output, secrets)[-3000:]}"
    plan = tmp_path_factory.mktemp("plan") / "plan.json"
    runs: dict[str, Run] = {}
    samples: dict[str, Samples] = {}

    def sampled(name: str, deploy: str, *args: str) -> Run:
        with Sampler(host) as samples[name]:
            runs[name] = pyinfra(sandbox, deploy, *args, "--limit", HOST, inventory=inventory)
        assert runs[name].ok, f"the {name} failed:\n{redacted(runs[name].output, secrets)[-3000:]}"
        return runs[name]

    snapshot_id = None
    restored = False
    try:
        backup = sampled("backup", "backup.py", "--data", "label=secrets", "-vv")
        ids = set(re.findall(r"snapshot (\d{8}T\d{6}Z-secrets)\b", backup.output))
        assert len(ids) == 1, "the backup names its snapshot"
        snapshot_id = ids.pop()
        backed_up = counts(host)

        sql(host, "DELETE FROM knowledge_bases ORDER BY id LIMIT 1; "
                  "CREATE TABLE IF NOT EXISTS secrets_extra (x INT); INSERT INTO secrets_extra VALUES (1)")
        redis_cli(host, "SET", f"state:{snapshot_id}", "written after the backup")
        mongo(host, f"db.conversations.insert_one({{'_id': 'after-{snapshot_id}', 'user': 'e2e'}})")
        damaged = counts(host)

        sampled("dry run", "rollback.py", "--data", f"snapshot={snapshot_id}", "--dry", "--data", f"plan_out={plan}")
        sampled("dry run -v --debug", "rollback.py", "--data", f"snapshot={snapshot_id}", "--dry", "-v", "--debug")
        # No safety snapshot: it is the backup's very operations again (sampled above), and
        # this module must stay quick.
        sampled("rollback", "rollback.py", "--data", f"snapshot={snapshot_id}", "--data", "safety_snapshot=skip",
                "-vvv")
        after = counts(host)
        restored = (after == backed_up and sql(host, "SHOW TABLES LIKE 'secrets\\_extra'") == ""
                    and redis_cli(host, "EXISTS", f"state:{snapshot_id}") == "0")
        yield Scene(runs, samples, snapshot_id, plan, {"backed up": backed_up, "damaged": damaged, "after": after})
    finally:
        if snapshot_id and not restored:
            # the data back as the other tests expect it, whatever failed above
            restored = pyinfra(sandbox, "rollback.py", "--data", f"snapshot={snapshot_id}", "--limit", HOST,
                               "--data", "safety_snapshot=skip", inventory=inventory).ok
        if snapshot_id and restored:
            host.ssh(f"rm -rf -- {ROOT}/{snapshot_id}")


@pytest.fixture(autouse=True)
def no_secret_in_this_modules_output(request, capfd, secrets: list[Secret]):
    """After each case: nothing it wrote to stdout or stderr holds a secret, and it wrote
    what it covered."""
    yield
    out, err = capfd.readouterr()
    assert not leaked(out + err, secrets), f"{request.node.name}'s own output holds a secret"
    assert out, f"{request.node.name} says what it covered"


# Host keys: checked, never turned off


def test_a_wrong_host_key_refuses_the_host_before_anything_runs(sandbox: Sandbox, host: SandboxHost, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "throwaway", "-f", str(tmp_path / "key")],
                   check=True, capture_output=True)
    wrong = " ".join((tmp_path / "key.pub").read_text().split()[:2])
    real = {line.split()[0]: " ".join(line.split()[1:3]) for line in (STATE / "known_hosts").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert real[host.address] != wrong
    (tmp_path / "known_hosts").write_text(f"{host.address} {wrong}\n")
    inventory = inventory_file(tmp_path, {HOST: {"ssh_known_hosts_file": str(tmp_path / "known_hosts")}})

    run = sandbox.pyinfra("backup.py", "--data", "label=wronghostkey", inventory=inventory)

    assert not run.ok
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED!" in run.output
    assert f"[{HOST}] SSH host key error (Host key for {host.address} does not match.)" in run.output
    assert "No hosts remaining" in run.output
    assert "--> Preparing operation files" not in run.output, "refused on connecting, before the deploy loads"
    # had it connected, the backup would have written a snapshot with that label
    assert host.ssh(f"ls -A {ROOT} 2>/dev/null | grep -c -- -wronghostkey || true") == "0"
    print(f"{HOST} with a throwaway ed25519 key in known_hosts: refused, no snapshot written")


def test_a_host_missing_from_known_hosts_is_refused_before_anything_runs(sandbox: Sandbox, host: SandboxHost,
                                                                         tmp_path):
    # the sandbox's own known_hosts, every host but this one
    others = [line for line in (STATE / "known_hosts").read_text().splitlines()
              if line.strip() and line.split()[0] != host.address]
    assert others, "the sandbox's known_hosts holds the other host"
    (tmp_path / "known_hosts").write_text("\n".join(others) + "\n")
    inventory = inventory_file(tmp_path, {HOST: {"ssh_known_hosts_file": str(tmp_path / "known_hosts")}})

    run = sandbox.pyinfra("backup.py", "--data", "label=unknownhost", inventory=inventory)

    assert not run.ok
    assert f"[{HOST}] SSH error (StrictPolicy: No host key for {host.address} found in known_hosts)" in run.output
    assert "No hosts remaining" in run.output
    assert "--> Preparing operation files" not in run.output, "refused on connecting, before the deploy loads"
    assert "Added host key" not in run.output
    assert (tmp_path / "known_hosts").read_text() == "\n".join(others) + "\n", "nothing was added to known_hosts"
    assert host.ssh(f"ls -A {ROOT} 2>/dev/null | grep -c -- -unknownhost || true") == "0"
    print(f"{HOST} missing from a known_hosts of {len(others)} other host(s): refused, nothing added, no snapshot")


def test_the_sandbox_inventories_check_every_host_key_against_the_sandboxs_known_hosts(sandbox: Sandbox):
    known = {line.split()[0] for line in (STATE / "known_hosts").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    checked = []
    for name in ("sandbox.py", "sandbox_prod.py", "sandbox_staging.py"):
        for host_name, data in runpy.run_path(str(SANDBOX_INVENTORY.with_name(name)))["app"]:
            assert data["ssh_strict_host_key_checking"] == "yes", f"{name}: {host_name} checks host keys"
            assert Path(data["ssh_known_hosts_file"]) == STATE / "known_hosts", f"{name}: {host_name}"
            assert data["ssh_hostname"] in known, f"{name}: {host_name}'s key is in the sandbox's known_hosts"
            checked.append(f"{name}:{host_name}")
    assert {f"sandbox.py:{host.name}" for host in sandbox.hosts} <= set(checked)
    print(f"host keys checked (strict, the sandbox's known_hosts) for {', '.join(checked)}")


# The runs: command lines, output, snapshots, records


# The clients each run starts through `docker compose exec` (what their command lines hold).
CLIENTS = {
    "backup": {
        "mysqldump": ("exec -T -e MYSQL_PWD mysql sh -c ", " -dump -u root --default-character-set=utf8mb4 --single-transaction "),
        "redis-cli --rdb": ("exec -T -e REDISCLI_AUTH redis redis-cli ", " --rdb "),
        "mongodump": ("exec -T -e LAYRA_MONGO_PASSWORD ", " mongodump "),
    },
    "rollback": {
        "the MySQL client": ("exec -T -e MYSQL_PWD mysql sh -c ",),
        "redis-cli": ("exec -T -e REDISCLI_AUTH redis redis-cli ",),
        "mongorestore": ("exec -T -e LAYRA_MONGO_PASSWORD ", " mongorestore "),
    },
}


def test_no_password_reaches_a_command_line_or_pyinfras_output(scene: Scene, host: SandboxHost,
                                                               secrets: list[Secret]):
    """(Moved here from tests/e2e/test_snapshot_restore.py.) Every command line on the host,
    sampled throughout the backup, the restoring rollback and the dry runs."""
    for name, samples in scene.samples.items():
        # fast sweeps from the run's start to its end
        assert samples.median_gap <= 0.05 and samples.sweeps >= samples.seconds / 0.05, f"{name}: sweeps too slow"
        assert samples.processes > 50 and samples.cmdlines, f"{name}: processes sampled"
        print(f"{name}: {samples.sweeps} sweeps over {samples.seconds:.1f} s ({samples.median_gap * 1000:.0f} ms "
              f"apart), {samples.processes} processes, {len(samples.cmdlines)} distinct command lines")

    backup, rollback = scene.samples["backup"], scene.samples["rollback"]
    # The sampler caught each database client as it ran, its password in its environment:
    # `docker compose exec -e VARIABLE` on the host (alive for the client's whole run), and
    # the clients that run many times (fingerprints) inside the containers too.
    for name, samples in (("backup", backup), ("rollback", rollback)):
        for client, fragments in CLIENTS[name].items():
            lines = [line for line in samples.cmdlines if all(fragment in line for fragment in fragments)]
            assert lines, f"the sampler saw no {client} during the {name}"
            print(f"{name}: {len(lines)} command line(s) of {client}")
        for program in ("mariadb", "redis-cli"):
            assert samples.running(program), f"the sampler saw no {program} in its container during the {name}"

    for name, samples in scene.samples.items():
        assert not any(leaked(line, secrets) for line in samples.cmdlines), f"a secret on a command line ({name})"
    assert not leaked(scene.runs["rollback"].output, secrets), "a secret in the rollback's output"
    assert not leaked(host.ssh(f"cat {ROOT}/{scene.snapshot_id}/manifest.json"), secrets), "a secret in the manifest"


def test_the_rollback_restored_the_changed_data_so_every_restore_path_ran(scene: Scene):
    assert scene.counts["damaged"] != scene.counts["backed up"] == scene.counts["after"]
    output = scene.runs["rollback"].output
    for component in ("mysql/layra", "mongodb/layra", "redis"):
        assert re.search(rf"ok +phase 4 {re.escape(component)} fingerprint", output), f"phase 4 of {component}"
    assert "Restore the components from " + scene.snapshot_id in output
    restores = [op for op in scene.runs["rollback"].record()["hosts"][HOST]["operations"] if op["phase"] == "restore"]
    assert restores and all(op["ok"] and op["changed"] for op in restores)
    print(f"MySQL rows and a table, a Redis key and a MongoDB document changed, then restored "
          f"(knowledge bases, conversations: {scene.counts})")


def test_no_secret_reaches_pyinfras_output_at_any_verbosity(scene: Scene, secrets: list[Secret]):
    outputs = {name: scene.runs[name].output for name in VERBOSITY}
    fact_output = re.compile(rf"^\[{HOST}\] --- layra:\w+ ---$", re.M)  # a fact's stdout, printed at -vvv
    # each run did print at its verbosity
    assert "Loaded fact" not in outputs["dry run"] and f"[{HOST}] >>> " not in outputs["dry run"]
    assert f"[{HOST}] plan: " in outputs["dry run"]
    assert "Loaded fact" in outputs["dry run -v --debug"]
    assert f"[pyinfra.connectors.ssh] Running command on {HOST}" in outputs["dry run -v --debug"]
    assert f"[{HOST}] >>> " in outputs["backup"] and not fact_output.search(outputs["backup"])
    assert f"[{HOST}] >>> " in outputs["rollback"] and fact_output.search(outputs["rollback"])

    for name, verbosity in VERBOSITY.items():
        assert not leaked(outputs[name], secrets), f"a secret in pyinfra's output of the {name} ({verbosity})"
        print(f"{name} ({verbosity}): {len(outputs[name].splitlines())} lines of pyinfra output, no secret")


def test_no_secret_is_written_into_a_snapshot_but_its_copy_of_the_stacks_env_file(scene: Scene, host: SandboxHost,
                                                                                  secrets: list[Secret]):
    manifest = json.loads(host.ssh(f"cat {ROOT}/{scene.snapshot_id}/manifest.json"))
    scanned = {path.split("/", 1)[1]: entry for path, entry in scan_on_host(host, secrets, [scene.snapshot_id]).items()}

    # every file of the manifest, the manifest itself and every part's descriptor, scanned
    descriptors = {f"{part}.json" for part in manifest["parts"]}
    assert set(manifest["files"]) | descriptors | {"manifest.json"} <= set(scanned)
    assert {"mysql.layra.json", "mongodb.layra.json", "redis.json"} <= descriptors
    data = [name for name in scanned if name.endswith((".gz", ".zst"))]
    assert {"mysql.layra.sql.zst", "mongodb.layra.archive.gz", "redis.rdb.gz"} <= set(data)
    assert all(scanned[name]["decompressed"] and scanned[name]["bytes"] > 0 for name in data)
    # The stack's env file is kept on purpose, as stack/env: a restore needs it (the stack at
    # the snapshot's commit runs with the secrets it had). It is the one file that holds them,
    # private to root; that the scan finds every secret there shows it finds them anywhere.
    assert scanned["stack/env"]["mode"] == "600"
    assert scanned["stack/env"]["secrets"] == list(range(len(secrets)))
    holding = [name for name, entry in scanned.items() if entry["secrets"] and name != "stack/env"]
    assert not holding, f"secrets written into snapshot {scene.snapshot_id}: in {holding}"
    print(f"snapshot {scene.snapshot_id}: {len(scanned)} files scanned ({len(data)} decompressed, "
          f"{sum(entry['bytes'] for entry in scanned.values())} bytes), no secret outside stack/env")


def test_no_secret_reaches_a_run_record_a_report_or_a_plan(scene: Scene, secrets: list[Secret]):
    directory = record_dir(scene.runs["rollback"])
    files = sorted(path for path in directory.iterdir() if path.is_file())
    assert {"record.json", "report.md", "report.html", "postmortem.md"} <= {path.name for path in files}
    record = json.loads((directory / "record.json").read_text())
    assert record["hosts"][HOST]["checks"] and record["hosts"][HOST]["plan"], "the record holds checks and plans"
    plan = json.loads(scene.plan.read_text())
    assert any(entry["component"] == "mysql/layra" for entry in plan["hosts"][HOST]), "the plan holds mysql/layra"
    files.append(scene.plan)

    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.strip(), f"{path} is empty"
        assert not leaked(text, secrets), f"a secret in {path}"
    print(f"{len(files)} files scanned: {', '.join(path.name for path in files)}")


def test_every_snapshot_directory_is_0700_and_every_file_0600(scene: Scene, host: SandboxHost):
    entries = [line.split(" ", 2) for line in host.ssh(f"find {ROOT} -printf '%m %y %p\\n'").splitlines()]
    assert any(path == f"{ROOT}/{scene.snapshot_id}/stack/env" for _, _, path in entries)
    wrong = [f"{mode} {kind} {path}" for mode, kind, path in entries
             if (kind, mode) not in (("d", "700"), ("f", "600"))]
    assert not wrong, f"not private under {ROOT}: {wrong}"
    print(f"{sum(kind == 'd' for _, kind, _ in entries)} directories 0700 and "
          f"{sum(kind == 'f' for _, kind, _ in entries)} files 0600 under {ROOT}")

    # And at every moment of every run: each directory is 0700 from its creation (`mkdir -m
    # 0700`) and each file 0600 from its first byte (`umask 077` where it is written).
    partial = f"{ROOT}/{scene.snapshot_id}.partial"
    watched = scene.samples["backup"].modes
    assert {ROOT, partial, f"{partial}/stack", f"{partial}/stack/compose"} <= set(watched), \
        "the sampler watched the snapshot as it was written"
    opened = [f"{path} {kinds}" for samples in scene.samples.values() for path, kinds in samples.modes.items()
              if any(kind[0] != "f" and kind != "d700" for kind in kinds)]
    assert not opened, f"directories not 0700 while a run wrote them: {opened}"
    briefly = {path for samples in scene.samples.values() for path, kinds in samples.modes.items()
               if any(kind[0] == "f" and kind != "f600" for kind in kinds)}
    assert not briefly, f"files not 0600 from their creation: {sorted(briefly)}"
    print(f"while the runs wrote them: {sum(len(s.modes) for s in scene.samples.values())} paths watched, every "
          f"directory 0700 and every file 0600 throughout")


def test_the_run_records_directory_is_0700_and_its_files_0600(scene: Scene):
    directory = record_dir(scene.runs["rollback"])
    entries = [directory, *directory.rglob("*")]
    wrong = [f"{oct(stat.S_IMODE(path.stat().st_mode))[2:]} {path}" for path in entries
             if stat.S_IMODE(path.stat().st_mode) != (0o700 if path.is_dir() else 0o600)]
    assert not wrong, f"not private: {wrong}"
    assert len(entries) >= 5
    print(f"{directory}: 0700, its {len(entries) - 1} files 0600")
