"""
Back up and restore Qdrant collections through Qdrant's snapshot API: a collection is
dumped as a snapshot downloaded to the host, and restored by uploading that file for
Qdrant to recover from, with ``priority=snapshot``.

Every operation here takes the server the same way:

+ stack: the ``facts.compose.Stack`` whose env file holds the API key
+ collection: the collection's name (1-255 of ``A-Z a-z 0-9 _ . -``: it goes into URLs
  and file names)
+ url: the REST API as the host reaches it, ``http(s)://host[:port]`` (default
  ``http://127.0.0.1:6333``, the port Qdrant's service publishes on the host)
+ password_key: the env-file key of the API key (``None``: the server wants none); read
  on the host and handed to curl on a file descriptor, never on a command line
+ timeout: seconds a snapshot may take to be written, downloaded or recovered

Requests run on the host with ``curl`` (``facts.qdrant.qdrant_client``): snapshots travel
over HTTP, so nothing is run in Qdrant's container and its volumes are never touched.
"""

from __future__ import annotations

import json
import posixpath

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack
from facts.lock import holding_work
from facts.qdrant import (
    DEFAULT_KEY,
    DEFAULT_URL,
    JSON_BODY,
    SNAPSHOT_FIELDS,
    QdrantFingerprint,
    QdrantSnapshots,
    qdrant_call,
    qdrant_client,
    same_data,
    valid_name,
    valid_url,
)
from facts.secrets import KEY_PATTERN
from facts.shell import assign, script
from facts.snapshots import checksum_checked, descriptor_written, valid_part_name
from operations.arguments import checked_path
from operations.decorator import operation

# Qdrant's official image keeps snapshots in /qdrant/snapshots/<collection>/.
SNAPSHOTS_PATH = "/qdrant/snapshots"


def check_common(stack, collection, url, password_key, timeout) -> Stack:
    if not valid_name(collection):
        raise OperationError(f"collection must be 1-255 of A-Z a-z 0-9 _ . - (it goes into URLs and "
                             f"file names), got {collection!r}")
    if not valid_url(url):
        raise OperationError(f"url must be http(s)://host[:port], got {url!r}")
    if password_key is not None and not (isinstance(password_key, str) and KEY_PATTERN.match(password_key)):
        raise OperationError(f"password_key must name a key of the env file or be None, got {password_key!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise OperationError(f"timeout must be a whole number of seconds, got {timeout!r}")
    return Stack.of(stack)


def absolute_path(value, what: str) -> str:
    checked_path(value, what)
    # no quote or backslash either: the path is quoted once more inside curl's -F argument
    if any(c in value for c in '"\\'):
        raise OperationError(f"{what} must be an absolute path on one line, without \" or \\, got {value!r}")
    return value


def ask(fact, **kwargs):
    """A Qdrant fact; Qdrant's refusal (a wrong API key, ...) fails the operation with its message."""
    try:
        return host.get_fact(fact, **kwargs)
    except ValueError as error:
        raise OperationError(str(error)) from None


def live_fingerprint(stack: Stack, url: str, password_key: str | None) -> dict:
    live = ask(QdrantFingerprint, stack=stack, url=url, password_key=password_key)
    if not live["reachable"]:
        raise OperationError(f"nothing answers at {url}: is Qdrant running and published there?")
    return live


def bash(*parts) -> StringCommand:
    return StringCommand("set -o pipefail;", *parts, _shell_executable="bash")


def or_fail(call: StringCommand, failure: str) -> StringCommand:
    """Run a request; if it fails, fail with ``failure`` and Qdrant's answer."""
    return StringCommand("out=$(", call, "2>&1) || { echo", QuoteString(failure), '"$out" >&2; exit 1; };')


def dump_command(stack: Stack, collection: str, directory: str, part: str, *, url: str,
                 password_key: str | None, timeout: int) -> StringCommand:
    """Snapshot ``collection`` on the server and download it to ``<directory>/<part>.snapshot``,
    checked against the server's checksum (``scripts/qdrant_dump.sh``)."""
    return bash(
        "umask 077;",
        assign(collection=collection, tmp=posixpath.join(directory, f".{part}.snapshot.tmp"),
               file=posixpath.join(directory, f"{part}.snapshot"), timeout=timeout),
        qdrant_client(stack, url, password_key), script("qdrant_dump", "operations"),
    )


@operation(is_idempotent=False)
def dumped(stack: Stack, collection: str, directory: str, part: str, service: str = "qdrant",
           url: str = DEFAULT_URL, password_key: str | None = DEFAULT_KEY, timeout: int = 600):
    """
    Dump a collection into a snapshot: ``<directory>/<part>.snapshot``, Qdrant's own
    collection snapshot, and its part descriptor ``<directory>/<part>.json``.

    + stack, collection, url, password_key, timeout: see the module docstring
    + directory: the snapshot directory on the host (it must exist; 0700)
    + part: the part's name, ``<component>.<collection>`` (letters, digits, ``._-``)
    + service: the compose service running Qdrant (recorded in the descriptor)

    The snapshot is created with ``wait=false`` and the list polled until it is written
    (a large collection takes longer than an HTTP request should); it is downloaded to
    a temporary name, checked against the sha256 Qdrant reports for it, renamed, and
    deleted on the server. Files are 0600. The descriptor holds the fingerprint taken
    just before (take it with writes stopped for it to describe the dump exactly):

    .. code:: python

        {"component": "qdrant", "engine": "qdrant", "service": "qdrant",
         "collection": "kb_vectors", "file": "qdrant.kb_vectors.snapshot",
         "fingerprint": {"points": 300, "config_sha256": "...", "sample_sha256": "..."},
         "tool_versions": {"qdrant": "1.12.0"}}

    **Example:**

    .. code:: python

        qdrant.dumped(
            name="Dump Qdrant's kb_vectors",
            stack=Stack("/srv/layra"),
            collection="kb_vectors",
            directory="/var/backups/layra/20261121T130000Z-pre-migration.partial",
            part="qdrant.kb_vectors",
        )
    """
    stack = check_common(stack, collection, url, password_key, timeout)
    absolute_path(directory, "directory")
    if not valid_part_name(part):
        raise OperationError(f"part must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}, got {part!r}")

    live = live_fingerprint(stack, url, password_key)
    if collection not in live["collections"]:
        raise OperationError(f"qdrant at {url} has no collection {collection!r}")
    snapshot_file = posixpath.join(directory, f"{part}.snapshot")
    descriptor = {
        "component": part.split(".")[0],
        "engine": "qdrant",
        "service": service,
        "collection": collection,
        "file": f"{part}.snapshot",
        "fingerprint": live["collections"][collection],
        "tool_versions": {"qdrant": live["version"]},
    }

    yield dump_command(stack, collection, directory, part, url=url, password_key=password_key, timeout=timeout)
    yield from descriptor_written(directory, part, descriptor, snapshot_file)


@operation()
def restored(stack: Stack, collection: str, snapshot_file: str, sha256: str, fingerprint: dict,
             url: str = DEFAULT_URL, password_key: str | None = DEFAULT_KEY, timeout: int = 600,
             snapshots_path: str | None = SNAPSHOTS_PATH, live_differs: bool = False):
    """
    Put a collection back to a snapshot's: nothing happens when its fingerprint already
    equals the snapshot's.

    + stack, collection, url, password_key, timeout: see the module docstring
    + snapshot_file: the snapshot's ``<part>.snapshot`` on the host
    + sha256: the file's checksum from the snapshot manifest
    + fingerprint: the part's fingerprint (a ``QdrantFingerprint`` collection entry)
    + snapshots_path: where the server keeps snapshots (``None``: unknown)
    + live_differs: the caller read the collection moments ago and it differed from the
      snapshot (the rollback's plan): its fingerprint, which reads every point, is not read
      again

    The file's checksum is checked first: a file that does not match is refused before
    Qdrant is touched. Then Qdrant recovers the collection with ``priority=snapshot``
    and the same sha256 as ``checksum`` (Qdrant checks it again), creating the
    collection if it is missing: from the snapshot it already keeps with that checksum
    (``file://<snapshots_path>/<collection>/<name>``), else from the file uploaded. The
    copy Qdrant keeps of an upload is deleted afterwards. When Qdrant refuses (a
    collection whose vectors differ from the snapshot's, for one), the operation fails
    with its message and the collection is left as it was.

    **Example:**

    .. code:: python

        qdrant.restored(
            name="Restore Qdrant's kb_vectors",
            stack=Stack("/srv/layra"),
            collection="kb_vectors",
            snapshot_file="/var/backups/layra/20261121T130000Z-pre-migration/qdrant.kb_vectors.snapshot",
            sha256="5f1c...",
            fingerprint={"points": 300, "config_sha256": "...", "sample_sha256": "..."},
        )
    """
    stack = check_common(stack, collection, url, password_key, timeout)
    absolute_path(snapshot_file, "snapshot_file")
    if snapshots_path is not None:
        absolute_path(snapshots_path, "snapshots_path")
    try:
        check_file = checksum_checked(snapshot_file, sha256, f"qdrant collection {collection}")
    except ValueError as error:
        raise OperationError(str(error)) from None
    if not isinstance(fingerprint, dict) or any(field not in fingerprint for field in SNAPSHOT_FIELDS):
        raise OperationError(f"fingerprint must be a QdrantFingerprint collection entry "
                             f"({', '.join(SNAPSHOT_FIELDS)}), got {fingerprint!r}")

    current = None
    if not live_differs:
        current = live_fingerprint(stack, url, password_key)["collections"].get(collection)
        if same_data(current, fingerprint):
            host.noop(f"qdrant collection {collection} already matches the snapshot ({current['points']} points)")
            return

    kept = []
    if snapshots_path:
        listed = ask(QdrantSnapshots, stack=stack, collection=collection, url=url, password_key=password_key)
        kept = [s["name"] for s in listed if s["checksum"] == sha256 and valid_name(s["name"])]
    source = f"recovering {kept[0]}" if kept else f"uploading {snapshot_file}"
    was = "differs, as the plan read it" if live_differs else f"{current['points']} points" if current else "no collection"
    logger.info(f"{host.print_prefix}qdrant {collection}: {was} -> {fingerprint['points']} points ({source})")

    yield check_file
    refused = f"qdrant did not restore {collection} from {snapshot_file}:"
    base = f"/collections/{collection}/snapshots"
    if kept:
        location = f"file://{posixpath.join(snapshots_path, collection, kept[0])}"
        body = json.dumps({"location": location, "priority": "snapshot", "checksum": sha256})
        yield bash(holding_work(stack.dir, f"qdrant {collection}: recover the snapshot"),
                   qdrant_client(stack, url, password_key), or_fail(
            qdrant_call("PUT", f"{base}/recover", *JSON_BODY, QuoteString(body), "--max-time", str(timeout)), refused),
            "echo", QuoteString(f"qdrant {collection}: recovered from {location}"))
        return
    # Qdrant keeps an upload among the collection's snapshots under the name given here
    # (some versions, even when it refuses it): it goes once the request is over.
    upload = f"layra-restore-{collection}.snapshot"
    yield bash(
        holding_work(stack.dir, f"qdrant {collection}: upload and recover the snapshot"),
        qdrant_client(stack, url, password_key),
        "trap", QuoteString(f"qdrant DELETE {base}/{upload} >/dev/null 2>&1"), "EXIT;",
        or_fail(qdrant_call("POST", f"{base}/upload?priority=snapshot&checksum={sha256}", "-F",
                            QuoteString(f'snapshot=@"{snapshot_file}";filename={upload}'), "--max-time", str(timeout)),
                refused),
        "echo", QuoteString(f"qdrant {collection}: recovered from {snapshot_file} (uploaded)"),
    )
