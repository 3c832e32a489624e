"""
The rehearsal's copy step: a production snapshot copied to every staging host over SSH,
its checksums checked twice on the way: on the controller as it is read, and on the
staging host where it arrived.

    pyinfra inventories/staging.py rehearse.py --data snapshot=<id> --data source=inventories/prod.py
        [--data source_host=<name>]

Production is only read. The source inventory is loaded through pyinfra's API beside the
staging run and only ever asked for facts (``cat``, ``find``, ``sha256sum``) and file
reads: no operation is registered for its hosts. A read lands in a private temp directory
on the controller (0700, files 0600), removed when the run ends. Where the source host
needs sudo, a file is streamed out with ``sudo -n cat`` (pyinfra's own download with sudo
would leave a world-readable copy in the source's /tmp).

Each staging host copies from one source host (``source_host_for``). There the snapshot is
written as ``<root>/<id>.partial/`` (0700, files put 0600), every file's sha256 is checked
on arrival, it is renamed to ``<root>/<id>/`` and verified (the ``.verified`` marker) as a
backup is. A snapshot already there with the same checksums is left alone, so a second
copy changes nothing; one with the same id and other content is refused, never replaced.

The stack's env file (``stack/env``) stays behind: production's credentials never leave
it. The copy's manifest lists every other file, what was left out and where the snapshot
came from (``copied_from``); restores never read the env file.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path

from pyinfra import host, logger, state
from pyinfra.api import Config, DeployError, QuoteString, StringCommand, deploy
from pyinfra.operations import files

from facts.snapshots import (
    MANIFEST,
    SHA256,
    SnapshotManifest,
    partial_dir,
    snapshot_dir,
    valid_snapshot_id,
)
from facts.stack import StackTarget
from facts.text import human_size
from operations import snapshots
from operations.snapshots import copy_completed, safe_relative

from .config import DEFAULTS, snapshot_root, stack_from
from .pyinfra_run import loaded_inventory

# Staging host data: the name of the source host this staging host copies from.
SOURCE_KEY = "layra_rehearsal_source"
# Files of a snapshot that never leave production, and why.
LEFT_OUT = {"stack/env": "the stack's env file: production's credentials stay there"}
CHUNK = 1024 * 1024


# Which source host a staging host copies from


def source_host_for(staging_host: str, staging_hosts: list[str], source_hosts: list[str], *, inventory: str,
                    snapshot_id: str, pinned: str | None = None, chosen: str | None = None,
                    holders=lambda: []) -> tuple[str, str]:
    """``(source host, why)`` for ``staging_host``, by the first rule that applies:

    1. its host data ``layra_rehearsal_source`` (``pinned``);
    2. ``--data source_host`` (``chosen``), for every staging host;
    3. the only host of the source inventory holding the snapshot (``holders()``, asked
       only when needed: it reads every source host);
    4. the staging host's position, when both inventories have as many hosts.

    Raises DeployError naming the key to set when none applies, or naming a host that is
    not in the source inventory.
    """
    for value, key in ((pinned, f"host data {SOURCE_KEY}"), (chosen, "--data source_host")):
        if value:
            if value not in source_hosts:
                raise DeployError(f"{staging_host}: {key}={value!r} is not a host of {inventory} "
                                  f"(it has: {', '.join(source_hosts) or 'no hosts'})")
            return value, key
    having = holders()
    if not having:
        raise DeployError(f"no host of {inventory} has snapshot {snapshot_id} "
                          f"(`layra-rollback snapshots list {inventory}` shows what each has)")
    if len(having) == 1:
        return having[0], f"the only host of {inventory} with snapshot {snapshot_id}"
    if len(staging_hosts) == len(source_hosts) and staging_host in staging_hosts:
        return source_hosts[staging_hosts.index(staging_host)], "the same position in both inventories"
    raise DeployError(
        f"{staging_host}: cannot tell which host of {inventory} to copy snapshot {snapshot_id} from "
        f"({len(having)} hold it: {', '.join(having)}; {len(staging_hosts)} staging and {len(source_hosts)} "
        f"source hosts): set host data {SOURCE_KEY} on each staging host, or --data source_host=<name>"
    )


def address(name: str, data) -> tuple[str, int]:
    """Where a host's SSH connection goes: ``(hostname, port)`` (the name without ssh_hostname)."""
    return str(data.get("ssh_hostname") or name), int(data.get("ssh_port") or 22)


# What is copied


def copy_plan(manifest: dict, snapshot_id: str, where: str) -> dict:
    """What copying the snapshot brings, from its manifest; DeployError naming a bad entry.

    .. code:: python

        {
            "files": {"mysql.layra.sql.gz": {"size": 123, "sha256": "ab12..."}, ...},   # LEFT_OUT removed
            "left_out": ["stack/env"],
            "directories": ["stack", "stack/compose"],     # parents of the files, shallow first
            "bytes": 1048576,
            "commit": "9f8e7d...",                           # the stack commit it was taken at
        }
    """
    if manifest.get("id") != snapshot_id:
        raise DeployError(f"{where}: the manifest of snapshot {snapshot_id} names {manifest.get('id')!r}")
    entries = manifest.get("files")
    if not isinstance(entries, dict) or not entries:
        raise DeployError(f"{where}: the manifest of snapshot {snapshot_id} lists no files")
    copied = {}
    for name, entry in sorted(entries.items()):
        if not safe_relative(name):
            raise DeployError(f"{where}: snapshot {snapshot_id} names a file outside it: {name!r}; nothing was copied")
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int)
                and isinstance(entry.get("sha256"), str) and SHA256.match(entry["sha256"])):
            raise DeployError(f"{where}: snapshot {snapshot_id}: the manifest entry of {name} has no size and sha256")
        if name not in LEFT_OUT:
            copied[name] = {"size": entry["size"], "sha256": entry["sha256"]}
    parents = {"/".join(name.split("/")[:depth]) for name in copied for depth in range(1, name.count("/") + 1)}
    directories = sorted(parents, key=lambda path: (path.count("/"), path))
    commit = (manifest.get("stack") or {}).get("commit") if isinstance(manifest.get("stack"), dict) else None
    return {"files": copied, "left_out": sorted(set(entries) & set(LEFT_OUT)), "directories": directories,
            "bytes": sum(entry["size"] for entry in copied.values()), "commit": commit}


def copied_manifest(manifest: dict, plan: dict, source: dict) -> str:
    """The manifest the copy carries: the source's, without what stayed behind, and whence it came."""
    copy = {**manifest, "files": plan["files"],
            "copied_from": {**source, "left_out": plan["left_out"],
                            "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
    return json.dumps(copy, indent=2, sort_keys=True) + "\n"


def differences(present: dict, plan: dict) -> list[str]:
    """How a snapshot already on staging (its manifest) differs from the copy's files."""
    theirs = present.get("files") or {}
    found = []
    for name in sorted(set(theirs) | set(plan["files"])):
        want, got = plan["files"].get(name), theirs.get(name)
        if want is None and name not in plan["left_out"]:
            found.append(f"{name} is not in the source's")
        elif got is None and want is not None:
            found.append(f"{name} is missing")
        elif want is not None and (got.get("sha256"), got.get("size")) != (want["sha256"], want["size"]):
            found.append(f"{name} differs")
    return found


def local_problems(directory: Path, expected: dict) -> list[str]:
    """Every file read into ``directory`` whose size or sha256 is not the manifest's."""
    problems = []
    for name, entry in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} was not read")
            continue
        digest = hashlib.sha256()
        with path.open("rb") as data:
            for chunk in iter(lambda: data.read(CHUNK), b""):
                digest.update(chunk)
        size = path.stat().st_size
        if size != entry["size"]:
            problems.append(f"{name} is {size} bytes (want {entry['size']})")
        elif digest.hexdigest() != entry["sha256"]:
            problems.append(f"{name} sha256 {digest.hexdigest()[:12]}... (want {entry['sha256'][:12]}...)")
    return problems


# Reading the source


def privileged(data) -> bool:
    """Whether the source host's files are read as another user (sudo, su, doas)."""
    return any(data.get(key) for key in ("_sudo", "_su_user", "_doas", "_dzdo"))


def sudo_read(source, remote: str, out):
    """Stream ``remote`` from an SSH host into ``out`` with ``sudo -n cat``: nothing written there.

    DeployError naming the host and the file when sudo refuses or the file cannot be read.
    """
    if any(source.data.get(key) for key in ("_su_user", "_doas", "_dzdo")):
        raise DeployError(f"{source.name}: only _sudo is supported to read a rehearsal source")
    client = getattr(source.connector, "client", None)
    if client is None:
        raise DeployError(f"{source.name}: reading with sudo needs an SSH connection")
    user = source.data.get("_sudo_user")
    command = StringCommand("sudo", "-n", *(("-u", QuoteString(user)) if user else ()),
                            "--", "cat", "--", QuoteString(remote))
    channel = client.get_transport().open_session()
    try:
        channel.exec_command(command.get_raw_value())
        for chunk in iter(lambda: channel.recv(CHUNK), b""):
            out.write(chunk)
        status = channel.recv_exit_status()
        error = channel.recv_stderr(4096).decode(errors="replace").strip()
    finally:
        channel.close()
    if status != 0:
        raise DeployError(f"{source.name}: cannot read {remote} with sudo -n: {error or f'exit status {status}'} "
                          "(the SSH user needs passwordless sudo to read the snapshot root)")


def read_file(source, remote: str, local: Path):
    """Read one file of the source host into ``local``, created 0600 before a byte is written."""
    with os.fdopen(os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        if privileged(source.data):
            sudo_read(source, remote, out)
            return
        try:
            read = source.get_file(remote, out)
        except OSError as error:
            read, why = False, str(error)
        else:
            why = "the download failed"
    if not read:
        raise DeployError(f"{source.name}: cannot read {remote}: {why}")


class Source:
    """The source inventory: loaded with pyinfra's API into a State of its own, connected
    host by host as facts need, and read only (facts and file reads, no operation)."""

    def __init__(self, path: str):
        if not Path(path).is_file():
            raise DeployError(f"--data source={path!r}: no such inventory file")
        self.path = path
        self.state, inventory = loaded_inventory(path)
        self.state.init(inventory, Config())
        self.hosts = {source.name: source for source in inventory}
        self.manifests: dict[tuple[str, str], dict | None] = {}
        self.reads: dict[tuple[str, str], Path] = {}
        self.temp: Path | None = None
        atexit.register(self.close)
        logger.info(f"--> source {path}: read only (nothing is written to {', '.join(self.hosts) or 'no hosts'})")

    @property
    def names(self) -> list[str]:
        return list(self.hosts)

    def root(self, name: str) -> str:
        return snapshot_root(self.hosts[name].data)

    def manifest(self, name: str, snapshot_id: str) -> dict | None:
        key = (name, snapshot_id)
        if key not in self.manifests:
            self.manifests[key] = self.hosts[name].get_fact(SnapshotManifest, root=self.root(name),
                                                             snapshot_id=snapshot_id)
        return self.manifests[key]

    def holders(self, snapshot_id: str) -> list[str]:
        return [name for name in self.hosts if self.manifest(name, snapshot_id)]

    def read(self, name: str, snapshot_id: str, plan: dict) -> Path:
        """The snapshot's files, read from source host ``name`` into a private local
        directory and checked against the manifest there; DeployError naming a bad file."""
        key = (name, snapshot_id)
        if key in self.reads:
            return self.reads[key]
        if self.temp is None:
            self.temp = Path(tempfile.mkdtemp(prefix="layra-rehearsal-"))   # 0700
        (self.temp / name).mkdir(mode=0o700, exist_ok=True)
        local = self.temp / name / snapshot_id
        local.mkdir(mode=0o700)
        source = self.hosts[name]
        remote = snapshot_dir(self.root(name), snapshot_id)
        for directory in plan["directories"]:
            (local / directory).mkdir(mode=0o700, exist_ok=True)
        for relative in plan["files"]:
            read_file(source, posixpath.join(remote, relative), local / relative)
        problems = local_problems(local, plan["files"])
        if problems:
            raise DeployError(f"{name}: snapshot {snapshot_id} does not match its manifest as read, "
                              f"nothing was copied: " + "; ".join(problems))
        logger.info(f"{source.print_prefix}read snapshot {snapshot_id}: {len(plan['files'])} files, "
                    f"{human_size(plan['bytes'])}, every sha256 as in its manifest")
        self.reads[key] = local
        return local

    def close(self):
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)
            self.temp = None
        for source in self.hosts.values():
            if source.connected:
                source.disconnect()


_SOURCES: dict[str, Source] = {}


def source_inventory(path) -> Source:
    """The source inventory of this run, loaded once for every staging host."""
    if not path or not isinstance(path, str):
        raise DeployError("rehearse.py needs the production inventory to copy from: --data source=<inventory file>")
    if path not in _SOURCES:
        _SOURCES[path] = Source(path)
    return _SOURCES[path]


# On the staging host


def snapshot_copied(root: str, snapshot_id: str, local: Path, plan: dict, manifest_text: str, source_name: str):
    """Register the operations that write the copy as ``<id>.partial``, check it and complete it."""
    partial = partial_dir(root, snapshot_id)
    snapshots.started(name=f"Start the copy of snapshot {snapshot_id}", root=root, snapshot_id=snapshot_id)
    for directory in host.loop(plan["directories"]):
        files.directory(name=f"Directory {directory}/ of the copy", path=posixpath.join(partial, directory),
                        mode="700", present=True)
    for relative, entry in host.loop(plan["files"].items()):
        files.put(name=f"Copy {relative} ({human_size(entry['size'])}) from {source_name}", src=str(local / relative),
                  dest=posixpath.join(partial, relative), mode="600", create_remote_dir=False)
    files.put(name="Write the copy's manifest", src=StringIO(manifest_text), dest=posixpath.join(partial, MANIFEST),
              mode="600", create_remote_dir=False)
    copy_completed(name=f"Check every file on arrival and complete snapshot {snapshot_id}", root=root,
                   snapshot_id=snapshot_id, sha256s={name: entry["sha256"] for name, entry in plan["files"].items()})


def wanted_snapshot(data) -> str:
    snapshot_id = data.get("snapshot")
    if not snapshot_id or not valid_snapshot_id(str(snapshot_id)):
        raise DeployError(f"rehearse.py needs the snapshot to copy: --data snapshot=<id> (got {snapshot_id!r}; "
                          "name it, `latest` is not taken here: staging and production must agree on it)")
    return str(snapshot_id)


def chosen_source(source: Source, snapshot_id: str) -> tuple[str, dict]:
    """``(source host, its manifest of the snapshot)`` for this staging host; DeployError
    when there is none, or when it is this very machine."""
    name, why = source_host_for(
        host.name, [each.name for each in state.inventory], source.names, inventory=source.path,
        snapshot_id=snapshot_id, pinned=host.data.get(SOURCE_KEY), chosen=host.data.get("source_host"),
        holders=lambda: source.holders(snapshot_id))
    where = address(host.name, host.data)
    if address(name, source.hosts[name].data) == where:
        raise DeployError(f"{host.name} and source host {name} are the same machine ({where[0]}:{where[1]}): "
                          "a rehearsal never writes to production")
    manifest = source.manifest(name, snapshot_id)
    if not manifest:
        raise DeployError(f"{host.name}: source host {name} ({why}) has no snapshot {snapshot_id} "
                          f"under {source.root(name)}")
    logger.info(f"{host.print_prefix}from {name} ({why})")
    return name, manifest


def commit_known(stack, plan: dict, snapshot_id: str):
    """Refuse, before anything is read, a staging repository without the snapshot's commit:
    the rollback could not bring the stack there."""
    if plan["commit"] and not host.get_fact(StackTarget, stack_dir=stack.dir, ref=plan["commit"]):
        raise DeployError(f"{host.name}: the stack repository in {stack.dir} does not have commit "
                          f"{plan['commit'][:12]}, which snapshot {snapshot_id} was taken at: fetch it there first "
                          "(nothing was copied)")


@deploy("Copy a production snapshot to staging", data_defaults=DEFAULTS)
def snapshot_copied_to_staging():
    snapshot_id = wanted_snapshot(host.data)
    # staging's own host data is refused before production is read
    stack, root = stack_from(host.data), snapshot_root(host.data)
    source = source_inventory(host.data.get("source"))
    name, manifest = chosen_source(source, snapshot_id)
    plan = copy_plan(manifest, snapshot_id, name)
    logger.info(f"{host.print_prefix}snapshot {snapshot_id}: {len(plan['files'])} files, {human_size(plan['bytes'])}"
                + (f"; left out: {', '.join(plan['left_out'])}" if plan["left_out"] else ""))
    commit_known(stack, plan, snapshot_id)

    present = host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id)
    if present:
        differ = differences(present, plan)
        if differ:
            raise DeployError(f"{host.name}: {snapshot_dir(root, snapshot_id)} is another snapshot than {name}'s "
                              f"({'; '.join(differ[:5])}): move it away to copy; nothing was copied")
        logger.info(f"{host.print_prefix}snapshot {snapshot_id} is already here with {name}'s checksums: "
                    "nothing to copy")
    else:
        local = source.read(name, snapshot_id, plan)
        text = copied_manifest(manifest, plan, {"inventory": source.path, "host": name})
        snapshot_copied(root, snapshot_id, local, plan, text, name)
    snapshots.verified(name=f"Verify snapshot {snapshot_id} on {host.name}", root=root, snapshot_id=snapshot_id,
                       pending=True)
