"""
Volume-set engine facts, and the shell library every volume fact and operation runs.

A volume set is the services that keep one data set between them and must be stopped,
archived and restored together (Milvus standalone + its etcd + its MinIO). Their named
volumes are read and written on the host, at the path Docker keeps each volume's data
(``docker inspect`` of the services' containers gives it), so the host's own tar and
compressor do the work and no helper image is needed. Runs as root (or with ``_sudo``).

Engine protocol: ``VolumeSet`` (which volumes, where, and their fingerprint),
``operations.volumes.dumped``, ``operations.volumes.restored``, and the deploy's verify
step comparing fingerprints. ``MilvusCollections`` adds row counts where Milvus is up.
"""

from __future__ import annotations

import json

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack, compose_command, valid_service
from .shell import WholeOutputFact, assign, script


def library(stack: Stack) -> StringCommand:
    """The shell functions every volume fact and operation runs (``fingerprint``,
    ``containers``, ``running``, ``wait_ready``: ``scripts/volume_library.sh``), bound to
    the stack's project. One and the same code fingerprints a live volume, an extracted
    archive and the snapshot's descriptor."""
    return StringCommand("set -o pipefail;", assign(project=stack.project), script("wait_ready"), "\n",
                         script("volume_library"), ";")


def services_args(services: list[str]) -> StringCommand:
    """``set -- SERVICE...``: the set's services as the script's positional arguments."""
    return StringCommand("set --", *(QuoteString(s) for s in services), ";")


def inspect_command(stack: Stack, services: list[str], with_fingerprint: bool = True) -> StringCommand:
    """What ``VolumeSet`` reads of ``services`` (``scripts/volume_inspect.sh``; `parse_inspect`
    reads its lines)."""
    return StringCommand(
        library(stack), services_args(services), assign(with_fingerprint="yes" if with_fingerprint else "no"),
        script("volume_inspect"),
    )


def parse_inspect(output: list[str]) -> dict:
    result: dict = {"services": {}, "volumes": {}, "zstd": False}
    for line in output:
        fields = line.rstrip("\n").split("\t")
        kind = fields[0]
        if kind == "zstd" and len(fields) == 2:
            result["zstd"] = fields[1] == "yes"
        elif kind == "service" and len(fields) == 3:
            result["services"][fields[1]] = {"state": fields[2] or "missing"}
        elif kind == "mount" and len(fields) == 5:
            volume = result["volumes"].setdefault(fields[2], {"services": [], "path": fields[3], "target": fields[4]})
            volume["services"].append(fields[1])
        elif kind == "volume" and len(fields) == 5:
            options = json.loads(fields[3] or "null") or {}
            result["volumes"].setdefault(fields[1], {"services": []}).update(
                driver=fields[2], options=options, in_use_by=[c for c in fields[4].split(",") if c])
        elif kind == "size" and len(fields) == 3 and fields[2].isdigit():
            result["volumes"].setdefault(fields[1], {"services": []})["bytes"] = int(fields[2])
        elif kind == "aside" and len(fields) == 2:
            result["volumes"].setdefault(fields[1], {"services": []})["aside"] = True
        elif kind == "fingerprint" and len(fields) == 3:
            result["volumes"].setdefault(fields[1], {"services": []})["fingerprint"] = json.loads(fields[2])
        elif kind == "restored" and len(fields) == 3 and fields[2].startswith("{"):
            result["volumes"].setdefault(fields[1], {"services": []})["restored"] = json.loads(fields[2])
    return result


# Beside a volume's directory, which archive the last backup or restore left it at: the
# archive's sha256, the volume's fingerprint in that archive (``archived``) and its
# fingerprint once its services ran again (``settled``). Services change their data as
# they start (etcd writes a raft entry, preallocates its next WAL file): the volume is
# still at the archive's data while it is as they left it then. So a set archived by a
# safety snapshot while it matched the rollback's snapshot still matches it afterwards.
RESTORED_MARKER = ".layra-restored"


def snapshot_match(volume: dict, fingerprint: dict, archive_sha256: str) -> str | None:
    """How a live volume (``VolumeSet``'s entry) holds the snapshot's data: ``"same"`` (its
    fingerprint is the snapshot's), ``"settled"`` (it was restored from, or archived at, the
    snapshot's data and its services changed it only as they started: the marker), or
    None where it does not."""
    live = volume.get("fingerprint")
    marked = volume.get("restored") or {}
    if not live:
        return None
    if live == fingerprint:
        return "same"
    if marked.get("settled") == live and (marked.get("archive_sha256") == archive_sha256
                                          or marked.get("archived") == fingerprint):
        return "settled"
    return None


def at_snapshot(volume: dict, fingerprint: dict, archive_sha256: str) -> bool:
    """Whether a live volume (``VolumeSet``'s entry) holds the snapshot's data."""
    return snapshot_match(volume, fingerprint, archive_sha256) is not None


def set_match(live: dict, wanted: dict[str, tuple[dict, str]], served: bool | None = None) -> dict[str, str | None]:
    """How each volume of a set holds the snapshot's data (``wanted``: name -> (fingerprint,
    archive sha256)): ``snapshot_match``'s answer, or ``"served"``.

    A server that never stops writing its volumes (Milvus: its message queue, its etcd's
    checkpoints) leaves no fingerprint that settles. For such a set, ``served`` is what the
    server answers for its data (Milvus: the snapshot's row counts, ``same_rows``; None where
    the set has no such server): a volume whose marker ties it to the snapshot (restored
    from its archive, or archived at its data) and whose server serves the snapshot's data
    is ``"served"``. Only a whole set is: one volume not tied to the snapshot, and none is.
    """
    how = {name: snapshot_match(live[name], fingerprint, sha256) if name in live else None
           for name, (fingerprint, sha256) in wanted.items()}
    if served and not all(how.values()) and all(
            name in live and tied_to_snapshot(live[name], fingerprint, sha256)
            for name, (fingerprint, sha256) in wanted.items()):
        return {name: found or "served" for name, found in how.items()}
    return how


def tied_to_snapshot(volume: dict, fingerprint: dict, archive_sha256: str) -> bool:
    """Whether a volume's marker says it was last restored from the snapshot's archive, or
    archived at the snapshot's data (whatever its services wrote since)."""
    marked = volume.get("restored") or {}
    return marked.get("archive_sha256") == archive_sha256 or marked.get("archived") == fingerprint


def same_rows(counts: dict, snapshot_counts: dict | None) -> bool | None:
    """Whether Milvus (``MilvusCollections``) serves the snapshot's rows; None where the
    snapshot has no row counts to compare."""
    if snapshot_counts is None:
        return None
    return bool(counts.get("ok")) and counts.get("collections") == snapshot_counts


def fingerprint_text(fingerprint: dict) -> str:
    """A fingerprint as the shell's ``fingerprint`` prints it: how live and snapshot compare."""
    return json.dumps(fingerprint, sort_keys=True)


def volume_problems(volume_set: dict) -> list[str]:
    """Why a set's volumes cannot be archived or swapped on the host's path."""
    problems = []
    for name, service in volume_set["services"].items():
        if service["state"] == "missing":
            problems.append(f"service {name} has no container (bring the stack up first)")
    for name, volume in volume_set["volumes"].items():
        if volume.get("driver") != "local" or volume.get("options"):
            problems.append(f"volume {name} uses driver {volume.get('driver')!r} with options "
                            f"{volume.get('options')}: only plain local volumes are archived on the host")
    return problems


class VolumeSet(WholeOutputFact):
    """
    Returns the named volumes of a set of services (their containers' mounts), where
    their data is on the host, and a fingerprint of each, in one round trip:

    .. code:: python

        {
            "services": {"milvus-standalone": {"state": "running"},   # "missing": no container
                         "milvus-etcd": {"state": "running"}},
            "volumes": {
                "layra_milvus_data": {
                    "services": ["milvus-standalone"],
                    "path": "/var/lib/docker/volumes/layra_milvus_data/_data",
                    "target": "/var/lib/milvus",
                    "driver": "local", "options": {},
                    "in_use_by": ["3f2a9c1d0e4b"],                    # running containers
                    "bytes": 1056768,                                 # du -sb, read even without
                                                                      # fingerprint=True
                    "fingerprint": {"bytes": 1048576, "files": 12, "sha256": "9c1e..."},
                    "restored": {"archive_sha256": "5f1c...", "settled": {...}},  # see RESTORED_MARKER
                    "aside": True,        # only where a restore's displaced copy,
                                          # <path>.pre-restore, is still beside it
                },
            },
            "zstd": True,                     # the host has zstd (else archives are gzip)
        }

    The fingerprint reads every entry's metadata (type, mode, owner, size, mtime), no
    file's content: cheap enough for a dry run, next to the time an archive of the same
    data takes. A volume that a running service writes to may change between two reads.
    """

    shell_executable = "bash"

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"

    def command(self, stack: Stack, services: list[str], fingerprint: bool = True) -> StringCommand:
        if isinstance(services, str) or not services or not all(valid_service(s) for s in services):
            raise ValueError(f"services must be a non-empty list of compose service names, got {services!r}")
        return inspect_command(Stack.of(stack), list(services), fingerprint)

    def process(self, output):
        return parse_inspect(output)


# Runs in a client container with pymilvus (Layra's backend has it): each collection's
# rows, one JSON line. Arguments: the Milvus URI. A loaded collection is counted as a query
# sees it (count(*), Strong: deletes applied, rows not yet flushed included); one that is
# still loading after a restart (Milvus reloads what was loaded, seconds after /healthz)
# is waited for; one that is not loaded has only its flushed-segment statistics, and is
# named as such (a count of other meaning, never passed off as the same).
MILVUS_COUNTS = """
import json, sys, time
try:
    from pymilvus import MilvusClient
    client = MilvusClient(uri=sys.argv[1], timeout=10)
    def state(name):
        found = client.get_load_state(name)["state"]
        return getattr(found, "name", str(found))
    counts, not_loaded = {}, []
    for name in sorted(client.list_collections()):
        deadline = time.monotonic() + 120
        while state(name) == "Loading" and time.monotonic() < deadline:
            time.sleep(0.5)
        if state(name) == "Loaded":
            rows = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
            counts[name] = int(rows[0]["count(*)"])
        else:
            counts[name] = int(client.get_collection_stats(name).get("row_count", 0))
            not_loaded.append(name)
    print(json.dumps({"ok": True, "collections": counts, "not_loaded": not_loaded}))
except Exception as error:
    print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}))
""".strip()


class MilvusCollections(WholeOutputFact):
    """
    Returns each Milvus collection's row count, asked through the Milvus API from a
    service of the stack that has ``pymilvus`` (Layra's backend does):

    .. code:: python

        {"ok": True, "collections": {"kb_chunks": 1200}, "not_loaded": []}
        {"ok": False, "error": "MilvusException: ..."}      # Milvus down, no pymilvus...

    ``not_loaded``: collections not loaded in Milvus, counted from their flushed-segment
    statistics (deletes not applied) instead of a query.
    """

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"

    def command(self, stack: Stack, client_service: str = "backend",
                uri: str = "http://milvus-standalone:19530") -> StringCommand:
        stack = Stack.of(stack)
        return StringCommand(
            compose_command(stack, "exec", "-T", QuoteString(client_service),
                            "python3", "-c", QuoteString(MILVUS_COUNTS), QuoteString(uri)),
            "</dev/null 2>&1 || true",
        )

    def process(self, output):
        for line in reversed(output):
            if line.strip().startswith("{"):
                return json.loads(line)
        return {"ok": False, "error": " ".join(output)[-300:] or "no answer"}
