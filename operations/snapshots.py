"""
Manage snapshots on a host: start one, complete it (manifest, modes, atomic rename),
abandon a failed one, verify one against its manifest, prune old ones.

The operations here take the snapshot root, and all but ``pruned`` a snapshot id:

+ root: absolute directory holding the snapshots (host data ``layra_snapshot_root``,
  default ``/var/backups/layra``)
+ snapshot_id: ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``, not ending in ``.partial``
  (``facts.snapshots.new_snapshot_id`` makes ``20261121T130000Z-<label>``); any other
  value is refused before a fact is read or a command runs

A backup runs ``started``, then each engine's dump into ``<root>/<id>.partial/``, then
``completed``; a failed one is cleaned up with ``abandoned``. Nothing ever looks like
a complete snapshot (``<root>/<id>/manifest.json``) until every part was written.

pyinfra runs an operation's generator twice: while planning, with the facts as they
were before the run, and again when executing, after the operations before it ran.
What a snapshot holds is only known at the second pass; refusals that depend on it
fail the host then, naming the problem. Needs GNU coreutils and findutils on the host
(``find -printf``, ``sha256sum``, ``mv -T``, ``sync -f``).
"""

from __future__ import annotations

import json
import posixpath
from datetime import datetime, timezone

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.shell import absolute_path, failing, text_written
from facts.snapshots import (
    CREATED_TIME,
    FORMAT,
    MANIFEST,
    SHA256,
    VERIFIED_MARKER,
    SnapshotCatalog,
    SnapshotFiles,
    SnapshotManifest,
    label_of,
    partial_dir,
    snapshot_dir,
    valid_label,
    valid_snapshot_id,
)
from operations.decorator import operation

METADATA_KEYS = ("created", "host", "label", "stack")


def checked_root(root) -> str:
    """The root, normalized; a relative path, ``/`` or a newline is refused."""
    if not absolute_path(root):
        raise OperationError(f"snapshot root {root!r} must be an absolute directory path")
    root = posixpath.normpath(root)
    if root == "/":
        raise OperationError("snapshot root '/' is refused: give the snapshots a directory of their own")
    return root


def checked_id(snapshot_id) -> str:
    if not valid_snapshot_id(snapshot_id):
        raise OperationError(
            f"snapshot id {snapshot_id!r} is not valid: 1-128 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit, not ending in .partial"
        )
    return snapshot_id


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def checked_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise OperationError(f"snapshot metadata must be a mapping, got {metadata!r}")
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise OperationError(
            f"snapshot metadata has unknown keys {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(METADATA_KEYS)}; put stack details under 'stack')"
        )
    label = metadata.get("label")
    if label not in (None, "") and not valid_label(label):
        raise OperationError(f"snapshot label {label!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if metadata.get("stack") is not None and not isinstance(metadata["stack"], dict):
        raise OperationError(f"snapshot metadata 'stack' must be a mapping, got {metadata['stack']!r}")
    for key in ("created", "host"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise OperationError(f"snapshot metadata {key!r} must be a string, got {metadata[key]!r}")
    return metadata


def build_manifest(snapshot_id: str, metadata: dict, files: dict, host_name: str, now: datetime) -> dict:
    """The manifest of a snapshot whose directory holds ``files`` (a SnapshotFiles fact)."""
    label = metadata.get("label")
    return {
        "format": FORMAT,
        "id": snapshot_id,
        "label": label or label_of(snapshot_id),
        "created": metadata.get("created") or now.astimezone(timezone.utc).strftime(CREATED_TIME),
        "host": metadata.get("host") or host_name,
        "stack": metadata.get("stack") or {},
        "files": files["files"],
        "parts": files["parts"],
    }


def completion_problems(files: dict | None, partial: str) -> list[str]:
    """Why the snapshot being written in ``partial`` cannot be completed (empty: it can)."""
    if files is None:
        return [f"{partial} does not exist (run snapshots.started first)"]
    problems = [f"part descriptor {name}.json is not a JSON object" for name in files["invalid_parts"]]
    # A host without stateful components (an app host) snapshots its stack state alone.
    if not files["files"] and not problems:
        problems.append(f"nothing was written into {partial}")
    for name, descriptor in files["parts"].items():
        named = [descriptor.get("file")] + [v.get("file") for v in (descriptor.get("volumes") or {}).values()
                                            if isinstance(v, dict)]
        for data_file in named:
            if isinstance(data_file, str) and data_file not in files["files"]:
                problems.append(f"part {name} names file {data_file!r}, which is not there")
    unsummed = [name for name, entry in files["files"].items() if not entry.get("sha256")]
    problems += [f"{name} could not be checksummed" for name in unsummed]
    return problems


def snapshot_problems(snapshot_id: str, manifest: dict, files: dict) -> list[str]:
    """Every way the snapshot directory (``files``) differs from its ``manifest``."""
    problems = []
    if manifest.get("id") != snapshot_id:
        problems.append(f"manifest.json names snapshot {manifest.get('id')!r}")
    expected = manifest.get("files") or {}
    actual = files["files"]
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name) or {}, actual.get(name)
        if got is None:
            problems.append(f"{name} is missing")
            continue
        if name not in expected:
            problems.append(f"{name} is not in the manifest")
        elif got["size"] != want.get("size"):
            problems.append(f"{name} is {got['size']} bytes (want {want.get('size')})")
        elif got["sha256"] != want.get("sha256"):
            problems.append(f"{name} sha256 {str(got['sha256'])[:12]}... (want {str(want.get('sha256'))[:12]}...)")
        mode = files["modes"].get(name)
        if mode != "600":
            problems.append(f"{name} has mode {mode} (want 600)")
    return problems


def by_age(snapshots: dict) -> list[str]:
    """Snapshot ids, oldest first: by ``created``, then by id."""
    return sorted(snapshots, key=lambda sid: (snapshots[sid].get("created") or "", sid))


def to_prune(catalog: dict, keep: int) -> list[str]:
    """The complete snapshots to remove, oldest first, keeping the newest ``keep``.

    Never the newest snapshot, and never the newest verified one (``verified_at`` set
    by a passing ``snapshots.verified``), even when newer ones crowd it out of ``keep``:
    a run of unverified or corrupt backups never costs the last known-good one.
    Partial and broken directories are not decided here.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be a whole number of snapshots >= 1, got {keep!r}")
    snapshots = catalog["snapshots"]
    order = by_age(snapshots)
    kept = set(order[-keep:])
    verified = [sid for sid in order if snapshots[sid].get("verified_at")]
    if verified:
        kept.add(verified[-1])
    return [sid for sid in order if sid not in kept]


@operation()
def started(root: str, snapshot_id: str):
    """
    Start writing a snapshot: an empty ``<root>/<id>.partial/`` (and its ``stack/``), 0700.

    + root: the snapshot root (see the module docstring); created 0700 when missing
    + snapshot_id: the snapshot to start

    A ``.partial`` directory left by a crashed run of the same id is removed first, so a
    retry starts clean. Nothing happens when the snapshot is already complete; a
    directory of that id without a readable manifest is refused, naming it.

    **Example:**

    .. code:: python

        snapshots.started(
            name="Start snapshot 20261121T130000Z-pre-migration",
            root="/var/backups/layra",
            snapshot_id="20261121T130000Z-pre-migration",
        )
    """
    root, snapshot_id = checked_root(root), checked_id(snapshot_id)
    catalog = host.get_fact(SnapshotCatalog, root=root)
    if snapshot_id in catalog["snapshots"]:
        host.noop(f"snapshot {snapshot_id} already complete")
        return
    if snapshot_id in catalog["broken"]:
        raise OperationError(
            f"{snapshot_dir(root, snapshot_id)} exists without a readable {MANIFEST}: "
            "move it away or choose another snapshot id"
        )
    partial = partial_dir(root, snapshot_id)
    yield StringCommand("mkdir", "-p", "-m", "0700", "--", QuoteString(root))
    if snapshot_id in catalog["partials"]:
        yield StringCommand("rm", "-rf", "--", QuoteString(partial))
    yield StringCommand("mkdir", "-m", "0700", "--", QuoteString(partial), QuoteString(posixpath.join(partial, "stack")))


@operation()
def completed(root: str, snapshot_id: str, metadata: dict | None = None):
    """
    Complete a snapshot: write its manifest, set its modes, rename ``<id>.partial`` to ``<id>``.

    + root: the snapshot root (see the module docstring)
    + snapshot_id: the snapshot being written
    + metadata: what the manifest says besides the files: ``stack`` (a mapping: commit,
      compose config hash, image ids...), ``label`` (empty or missing: from the id), ``created``
      (default: now, UTC), ``host`` (default: the inventory name); other keys are refused

    The manifest lists the size and sha256 of every file in the ``.partial`` directory
    and each part's descriptor (``<part>.json``), read when the operation executes,
    after the dumps before it. Directories become 0700 and files 0600, the filesystem is
    synced, then one rename makes the snapshot whole. The host fails, naming why, when
    the directory was never started, holds nothing, a descriptor is not JSON or names a
    file that is not there. Nothing happens when the snapshot is already complete.

    **Example:**

    .. code:: python

        snapshots.completed(
            name="Complete snapshot 20261121T130000Z-pre-migration",
            root="/var/backups/layra",
            snapshot_id="20261121T130000Z-pre-migration",
            metadata={"stack": {"commit": "9f8e7d6c...", "compose_hash": "5a1f..."}},
        )
    """
    root, snapshot_id = checked_root(root), checked_id(snapshot_id)
    metadata = checked_metadata(metadata)
    if host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id) is not None:
        host.noop(f"snapshot {snapshot_id} already complete")
        return
    partial, final = partial_dir(root, snapshot_id), snapshot_dir(root, snapshot_id)
    files = host.get_fact(SnapshotFiles, directory=partial)
    if host.state.is_executing:
        problems = completion_problems(files, partial)
        if problems:
            yield failing(f"snapshot {snapshot_id} cannot be completed: " + "; ".join(problems))
            return
    # While planning, the parts are not written yet: the plan shows the same steps with
    # what is there now, and the executing pass writes the real manifest.
    files = files or {"files": {}, "parts": {}}
    manifest = build_manifest(snapshot_id, metadata, files, host.name, datetime.now(timezone.utc))
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    yield text_written(posixpath.join(partial, MANIFEST), text)
    yield StringCommand(
        "find", QuoteString(partial), "-type", "d", "-exec", "chmod", "0700", "{}", "+", "&&",
        "find", QuoteString(partial), "-type", "f", "-exec", "chmod", "0600", "{}", "+", "&&",
        "sync", "-f", "--", QuoteString(partial),
    )
    # -T: never move the directory *into* an existing <id>/; fail instead.
    yield StringCommand("mv", "-T", "--", QuoteString(partial), QuoteString(final))


@operation()
def abandoned(root: str, snapshot_id: str, reason: str | None = None):
    """
    Abandon a snapshot that did not complete: remove ``<root>/<id>.partial/``.

    + root: the snapshot root (see the module docstring)
    + snapshot_id: the snapshot whose partial directory to remove
    + reason: when given, the host then fails with it (a backup whose part failed must
      not end green, once it has cleaned up after itself)

    For the clean-up after a failed backup. A complete snapshot is never touched;
    nothing happens when there is no partial directory.

    **Example:**

    .. code:: python

        snapshots.abandoned(
            name="Keep snapshot 20261121T130000Z-pre-migration only if every part was written",
            root="/var/backups/layra",
            snapshot_id="20261121T130000Z-pre-migration",
            reason="backup 20261121T130000Z-pre-migration failed: no snapshot was kept",
            _if=lambda: any(step.did_error() for step in steps),
        )
    """
    root, snapshot_id = checked_root(root), checked_id(snapshot_id)
    catalog = host.get_fact(SnapshotCatalog, root=root)
    if snapshot_id in catalog["partials"]:
        yield StringCommand("rm", "-rf", "--", QuoteString(partial_dir(root, snapshot_id)))
    elif not reason:
        host.noop(f"no partial snapshot {snapshot_id} under {root}")
        return
    if reason:
        yield failing(reason)


@operation()
def verified(root: str, snapshot_id: str, pending: bool = False):
    """
    Verify a snapshot against its manifest: every file there, same size, same sha256, 0600.

    + root: the snapshot root (see the module docstring)
    + snapshot_id: the complete snapshot to check
    + pending: the snapshot is written by operations earlier in this deploy (a backup
      checking what it just wrote): while planning, its absence is expected, and the
      check runs when the operation executes

    Only reads the data: passes as a no-op, or fails the host naming every missing,
    extra, changed or wrongly-moded file. A pass is recorded in ``<id>/.verified``
    (the time, UTC), written on the first pass and removed by a failure; retention
    (``snapshots.pruned``) never removes the newest snapshot verified this way. An
    unknown snapshot or one without a readable manifest is refused, naming it.

    **Example:**

    .. code:: python

        snapshots.verified(
            name="Verify snapshot 20261121T130000Z-pre-migration",
            root="/var/backups/layra",
            snapshot_id="20261121T130000Z-pre-migration",
        )
    """
    root, snapshot_id = checked_root(root), checked_id(snapshot_id)
    manifest = host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id)
    final = snapshot_dir(root, snapshot_id)
    files = host.get_fact(SnapshotFiles, directory=final) if manifest is not None else None
    if manifest is None or files is None:
        if pending and not host.state.is_executing:
            host.noop(f"snapshot {snapshot_id} is written by this run: checked once it is complete")
            return
        catalog = host.get_fact(SnapshotCatalog, root=root)
        if snapshot_id in catalog["broken"] or snapshot_id in catalog["snapshots"]:
            raise OperationError(f"snapshot {snapshot_id} has no readable {MANIFEST} in {final}")
        known = by_age(catalog["snapshots"])
        raise OperationError(
            f"no snapshot {snapshot_id} under {root}"
            + (f" (there: {', '.join(known[-5:])})" if known else " (there are none)")
        )

    marker = posixpath.join(final, VERIFIED_MARKER)
    problems = snapshot_problems(snapshot_id, manifest, files)
    count = plural(len(manifest.get("files") or {}), "file")
    if problems:
        if host.state.is_executing:
            for problem in problems:
                logger.error(f"{host.print_prefix}snapshot {snapshot_id}: {problem}")
        yield failing(
            f"snapshot {snapshot_id} does not match its manifest ({count}): " + "; ".join(problems),
            "rm", "-f", "--", QuoteString(marker), ";",
        )
        return
    message = f"snapshot {snapshot_id}: all {count} match their checksums"
    if files["verified_at"]:
        host.noop(message)
        return
    if host.state.is_executing:
        logger.info(f"{host.print_prefix}{message}")
    yield StringCommand("umask", "077", "&&", "date", "-u", "+%Y-%m-%dT%H:%M:%SZ", ">", QuoteString(marker))


@operation()
def pruned(root: str, keep: int):
    """
    Keep the newest ``keep`` complete snapshots and remove the older ones and any ``.partial``.

    + root: the snapshot root (see the module docstring)
    + keep: how many complete snapshots to keep, at least 1

    Which snapshots go is ``to_prune``: by ``created`` then id, never the newest one and
    never the newest verified one. ``.partial`` directories (crashed or abandoned runs)
    go too, so do not prune while a backup writes to the same root. Directories
    without a readable manifest are left alone for an operator to look at.

    **Example:**

    .. code:: python

        snapshots.pruned(
            name="Keep the newest 7 snapshots",
            root="/var/backups/layra",
            keep=7,
        )
    """
    root = checked_root(root)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise OperationError(f"keep must be a whole number of snapshots >= 1, got {keep!r}")
    catalog = host.get_fact(SnapshotCatalog, root=root)
    remove = to_prune(catalog, keep)
    partials = catalog["partials"]
    if host.state.is_executing:
        for snapshot_id in catalog["broken"]:
            logger.warning(f"{host.print_prefix}left alone: {snapshot_dir(root, snapshot_id)} has no readable manifest")
    if not remove and not partials:
        host.noop(
            f"nothing to prune under {root}: {plural(len(catalog['snapshots']), 'snapshot')}, "
            f"keeping the newest {keep}"
        )
        return
    if host.state.is_executing:
        for snapshot_id in remove:
            logger.info(f"{host.print_prefix}prune snapshot {snapshot_id} "
                        f"(created {catalog['snapshots'][snapshot_id].get('created')})")
        for snapshot_id in partials:
            logger.info(f"{host.print_prefix}prune partial snapshot {snapshot_id}")
    paths = [snapshot_dir(root, sid) for sid in remove] + [partial_dir(root, sid) for sid in partials]
    yield StringCommand("rm", "-rf", "--", *(QuoteString(path) for path in paths))


def safe_relative(name) -> bool:
    """A manifest path that stays inside the snapshot directory here and on staging."""
    return (isinstance(name, str) and bool(name) and "\n" not in name and "\0" not in name
            and not name.startswith("/") and posixpath.normpath(name) == name
            and ".." not in name.split("/") and name not in (MANIFEST, VERIFIED_MARKER))


@operation()
def copy_completed(root: str, snapshot_id: str, sha256s: dict):
    """
    Complete a copied snapshot: check each file's sha256 where it arrived, then rename
    ``<root>/<id>.partial`` to ``<root>/<id>``.

    + root: the snapshot root on this host
    + snapshot_id: the snapshot being copied
    + sha256s: ``{path relative to the snapshot: sha256}`` of every file the copy brought,
      from the source's manifest

    The check runs on this host (``sha256sum -c``) over what arrived: a file damaged on the
    way fails the host, named, and the copy stays ``.partial`` (a rollback never offers
    it). Nothing happens when the snapshot is already complete.

    **Example:**

    .. code:: python

        snapshots.copy_completed(
            name="Check and complete snapshot 20261121T130000Z-pre-migration",
            root="/var/backups/layra",
            snapshot_id="20261121T130000Z-pre-migration",
            sha256s={"mysql.layra.sql.gz": "ab12..."},
        )
    """
    if not valid_snapshot_id(snapshot_id):
        raise OperationError(f"snapshot id {snapshot_id!r} is not valid")
    bad = sorted(name for name, digest in sha256s.items()
                 if not safe_relative(name) or not isinstance(digest, str) or not SHA256.match(digest))
    if bad:
        raise OperationError(f"sha256s needs a relative path and a sha256 per file, not: {', '.join(map(repr, bad))}")
    if host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id) is not None:
        host.noop(f"snapshot {snapshot_id} already complete")
        return
    partial, final = partial_dir(root, snapshot_id), snapshot_dir(root, snapshot_id)
    checklist = [QuoteString(f"{digest}  ./{name}") for name, digest in sorted(sha256s.items())]
    yield StringCommand(
        "cd", "--", QuoteString(partial), "&&", "printf", "'%s\\n'", *checklist,
        "| sha256sum -c --quiet --strict - 1>&2 || {",
        failing(f"snapshot {snapshot_id} did not arrive intact (the files named above); it stays {partial}"), "; }",
    )
    # -T: never move the directory *into* an existing <id>/; fail instead.
    yield StringCommand("sync", "-f", "--", QuoteString(partial), "&&",
                        "mv", "-T", "--", QuoteString(partial), QuoteString(final))
