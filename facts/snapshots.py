"""
Facts about snapshots on a host: the catalog of a snapshot root, one snapshot's
manifest, and what a snapshot directory holds now (sizes, sha256, modes, parts).

A snapshot is a directory ``<root>/<id>/`` (mode 0700, files 0600) written as
``<root>/<id>.partial/`` and renamed once every part succeeded. It holds each part's
data file(s) with a descriptor ``<part>.json`` at its top level, a ``stack/``
directory, and last ``manifest.json``:

.. code:: python

    {
        "format": 1,
        "id": "20261121T130000Z-pre-migration",
        "label": "pre-migration",
        "created": "2026-11-21T13:00:00Z",
        "host": "sandbox-1",
        "stack": {"commit": "9f8e7d...", ...},      # what the deploy passed
        "files": {"mysql.layra.sql.gz": {"size": 123, "sha256": "..."}, ...},
        "parts": {"mysql.layra": {"component": "mysql", "file": "mysql.layra.sql.gz", ...}},
    }

``files`` lists every regular file but ``manifest.json`` itself (and the ``.verified``
marker the ``snapshots.verified`` operation leaves), by path relative to the snapshot.

The id helpers live here too, so operations and deploys spell the format once.
"""

from __future__ import annotations

import json
import posixpath
import re
from datetime import datetime, timezone

from pyinfra.api import QuoteString, StringCommand

from .shell import WholeOutputFact, absolute_path, section, split_sections, text_written

FORMAT = 1
DEFAULT_ROOT = "/var/backups/layra"
MANIFEST = "manifest.json"
# Written by a passing `snapshots.verified`: when the checksums last matched. Not data:
# it is neither in the manifest nor reported as a file of the snapshot.
VERIFIED_MARKER = ".verified"
PARTIAL_SUFFIX = ".partial"

# \Z, not $: `$` also matches before a final newline ("x\n" would pass).
SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
LABEL = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")
# What the errors say an id, a label or a root must be.
SNAPSHOT_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, not ending in .partial"
LABEL_RULE = "1-64 characters of A-Z a-z 0-9 . _ -, not ending in .partial"
ROOT_RULE = "an absolute directory on one line, without '..'"
# Ids this code generates: `<UTC time>-<label>`, the label optional.
GENERATED_ID = re.compile(r"^(\d{8}T\d{6}Z)(?:-([A-Za-z0-9._-]{1,64}))?\Z")
ID_TIME = "%Y%m%dT%H%M%SZ"
CREATED_TIME = "%Y-%m-%dT%H:%M:%SZ"


# A part's files are `<part>.<ext>` at the top of the snapshot: a plain name, like an id.
PART_NAME = SNAPSHOT_ID
SHA256 = re.compile(r"^[0-9a-f]{64}\Z")


def valid_part_name(part) -> bool:
    return isinstance(part, str) and bool(PART_NAME.match(part))


def descriptor_written(directory: str, part: str, descriptor: dict, *data_files: str):
    """The commands that write a part's descriptor ``<directory>/<part>.json`` and make it,
    and the part's ``data_files``, 0600: the last step of every engine's dump."""
    path = posixpath.join(directory, f"{part}.json")
    yield text_written(path, json.dumps(descriptor, indent=2, sort_keys=True) + "\n")
    yield StringCommand("chmod 0600", *(QuoteString(f) for f in data_files), QuoteString(path))


def checksum_checked(path: str, sha256: str, restoring: str) -> StringCommand:
    """Shell that fails, naming the file, unless ``path`` exists with the manifest's sha256.

    Every engine's restore runs it first, so a corrupt or missing file stops the restore
    before ``restoring`` (what the restore would change) is touched.
    """
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
    return StringCommand(
        "[ -f", QuoteString(path), "] || { echo",
        QuoteString(f"{path}: no such file; restore refused, {restoring} was not touched"), ">&2; exit 1; };",
        "echo", QuoteString(f"{sha256}  {path}"), "| sha256sum -c --status ||",
        "{ echo", QuoteString(f"{path}: checksum does not match the snapshot's ({sha256}); "
                              f"restore refused, {restoring} was not touched"), ">&2; exit 1; }",
    )


def valid_snapshot_id(snapshot_id) -> bool:
    """True for a string that may name a snapshot directory (never ``..``, ``a/b``, ``x y``)."""
    return (
        isinstance(snapshot_id, str)
        and bool(SNAPSHOT_ID.match(snapshot_id))
        and "\n" not in snapshot_id  # `$` also matches before a final newline
        and not snapshot_id.endswith(PARTIAL_SUFFIX)
    )


def valid_label(label) -> bool:
    """True for a label an id can end with: ``<time>-x.partial`` would name an unfinished
    snapshot's directory, so never ``.partial`` at the end."""
    return (isinstance(label, str) and bool(LABEL.match(label)) and "\n" not in label
            and not label.endswith(PARTIAL_SUFFIX))


def valid_root(root) -> bool:
    """True for a directory that may hold snapshots: absolute, one line, no ``..`` component
    (``prune`` removes directories under it), not ``/`` itself."""
    return absolute_path(root) and root.rstrip("/") != "" and ".." not in root.split("/")


def new_snapshot_id(label: str | None, now: datetime) -> str:
    """``20261121T130000Z-pre-migration`` for ``now`` (a naive ``now`` is taken as UTC);
    ``label`` None: no label.

    Raises ValueError naming a label that is not 1-64 of ``A-Z a-z 0-9 . _ -`` (an empty
    one too: ``--data label=`` from an unset shell variable is a mistake, not "no label").
    """
    if label is not None and not valid_label(label):
        raise ValueError(f"snapshot label {label!r} must be {LABEL_RULE}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    stamp = now.astimezone(timezone.utc).strftime(ID_TIME)
    return f"{stamp}-{label}" if label else stamp


def label_of(snapshot_id: str) -> str:
    """The label part of a generated id (``""`` when it has none or is not generated)."""
    match = GENERATED_ID.match(snapshot_id)
    return (match.group(2) or "") if match else ""


def snapshot_dir(root: str, snapshot_id: str) -> str:
    return posixpath.join(root, snapshot_id)


def partial_dir(root: str, snapshot_id: str) -> str:
    return posixpath.join(root, snapshot_id + PARTIAL_SUFFIX)


def summarize(manifest: dict) -> dict:
    """A catalog entry from a manifest: what an operator picks a snapshot by."""
    files = manifest.get("files") or {}
    stack = manifest.get("stack") or {}
    return {
        "created": manifest.get("created"),
        "label": manifest.get("label"),
        "commit": stack.get("commit") if isinstance(stack, dict) else None,
        "size": sum(int(entry.get("size") or 0) for entry in files.values() if isinstance(entry, dict)),
        "parts": sorted(manifest.get("parts") or {}),
        "host": manifest.get("host"),
        "verified_at": None,
    }


class SnapshotCatalog(WholeOutputFact):
    """
    Returns the snapshots under ``root``: each complete one summarized from its
    manifest, the ids of ``*.partial`` directories (unfinished or crashed runs), and
    the ids of directories without a readable manifest. Entries whose names are not
    snapshot ids (``lost+found``) are ignored; a missing root is an empty catalog.

    .. code:: python

        {
            "snapshots": {
                "20261121T130000Z-pre-migration": {
                    "created": "2026-11-21T13:00:00Z",
                    "label": "pre-migration",
                    "commit": "9f8e7d...",          # manifest["stack"]["commit"]
                    "size": 1048576,                # bytes, sum of the manifest's files
                    "parts": ["mysql.layra", "redis"],
                    "host": "sandbox-1",
                    "verified_at": "2026-11-21T13:05:00Z",   # or None: never verified
                },
            },
            "partials": ["20261122T010000Z-nightly"],
            "broken": [],
        }
    """

    @staticmethod
    def default():
        return {"snapshots": {}, "partials": [], "broken": []}

    def command(self, root: str) -> StringCommand:
        # One line per entry; a manifest is folded onto its line (JSON keeps newlines
        # inside strings escaped, so dropping raw ones leaves it valid).
        return StringCommand(
            "cd", "--", QuoteString(str(root)), "2>/dev/null || exit 0;",
            "for d in *; do",
            '[ -d "$d" ] && [ ! -L "$d" ] || continue;',
            'case "$d" in *[!A-Za-z0-9._-]*) continue ;; *.partial)',
            "printf 'partial %s\\n' \"$d\"; continue ;; esac;",
            f'if [ -f "$d/{MANIFEST}" ];',
            f"then printf 'manifest %s %s\\n' \"$d\" \"$(tr -d '\\n' < \"$d/{MANIFEST}\")\";",
            "else printf 'broken %s\\n' \"$d\"; fi;",
            f'if [ -f "$d/{VERIFIED_MARKER}" ];',
            f"then printf 'verified %s %s\\n' \"$d\" \"$(head -c 64 \"$d/{VERIFIED_MARKER}\" | tr -d '\\n')\";",
            "fi;",
            "done",
        )

    def process(self, output):
        catalog = self.default()
        verified: dict[str, str] = {}
        for line in output:
            kind, _, rest = line.partition(" ")
            name, _, value = rest.partition(" ")
            if kind == "partial":
                if valid_snapshot_id(name[: -len(PARTIAL_SUFFIX)]):
                    catalog["partials"].append(name[: -len(PARTIAL_SUFFIX)])
                continue
            if not valid_snapshot_id(name):
                continue
            if kind == "manifest":
                try:
                    manifest = json.loads(value)
                except ValueError:
                    manifest = None
                if isinstance(manifest, dict):
                    catalog["snapshots"][name] = summarize(manifest)
                else:
                    catalog["broken"].append(name)
            elif kind == "broken":
                catalog["broken"].append(name)
            elif kind == "verified":
                verified[name] = value.strip() or None
        for name, when in verified.items():
            if name in catalog["snapshots"]:
                catalog["snapshots"][name]["verified_at"] = when
        catalog["partials"].sort()
        catalog["broken"].sort()
        return catalog


class SnapshotManifest(WholeOutputFact):
    """
    Returns the manifest of the complete snapshot ``snapshot_id`` under ``root``
    (``<root>/<id>/manifest.json``), or ``None`` when there is none or it is not JSON.

    .. code:: python

        {"format": 1, "id": "...", "label": "...", "created": "...", "host": "...",
         "stack": {...}, "files": {"mysql.layra.sql.gz": {"size": 123, "sha256": "..."}},
         "parts": {"mysql.layra": {...}}}
    """

    def command(self, root: str, snapshot_id: str) -> StringCommand:
        if not valid_snapshot_id(snapshot_id):
            raise ValueError(f"snapshot id {snapshot_id!r} is not a valid snapshot id")
        path = posixpath.join(str(root), snapshot_id, MANIFEST)
        return StringCommand("cat", "--", QuoteString(path), "2>/dev/null || true")

    def process(self, output):
        try:
            manifest = json.loads("\n".join(output))
        except ValueError:
            return None
        return manifest if isinstance(manifest, dict) else None


# Inside a partial snapshot's stack/: what the manifest will say besides the files, written
# as the snapshot starts, so that a later run completing it says what the first one saw.
PARTIAL_METADATA = "stack/metadata.json"


class PartialSnapshot(WholeOutputFact):
    """
    Returns what the unfinished snapshot ``<root>/<id>.partial`` holds so far, without
    reading its data: the parts whose descriptor is a JSON object, the descriptors that
    are not, and the metadata saved as it started (``PARTIAL_METADATA``, None without it).
    ``None`` when there is no such directory.

    .. code:: python

        {"parts": ["qdrant.kb_vectors"], "invalid_parts": ["milvus"],
         "metadata": {"label": "safety-before-rollback", "host": "sandbox-1", "stack": {...}}}
    """

    def command(self, root: str, snapshot_id: str) -> StringCommand:
        if not valid_snapshot_id(snapshot_id):
            raise ValueError(f"snapshot id {snapshot_id!r} is not a valid snapshot id")
        return StringCommand(
            "cd", "--", QuoteString(partial_dir(str(root), snapshot_id)), "2>/dev/null || exit 0;", "echo dir;",
            'for f in ./*.json; do [ -f "$f" ] || continue;',
            "printf 'part %s %s\\n' \"${f#./}\" \"$(tr -d '\\n' < \"$f\")\"; done;",
            f"[ ! -f {PARTIAL_METADATA} ] || printf 'metadata %s\\n' \"$(tr -d '\\n' < {PARTIAL_METADATA})\"",
        )

    def process(self, output):
        if "dir" not in output:
            return None
        found = {"parts": [], "invalid_parts": [], "metadata": None}
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "part":
                name, _, text = rest.partition(" ")
                valid = isinstance(json_object(text), dict)
                found["parts" if valid else "invalid_parts"].append(name[: -len(".json")])
            elif kind == "metadata":
                found["metadata"] = json_object(rest)
        return found


def json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_sha256sum(lines: list[str]) -> dict[str, str]:
    """``relpath -> sha256`` from ``sha256sum`` lines (``hash  ./path``; GNU escapes odd names)."""
    sums = {}
    for line in lines:
        escaped = line.startswith("\\")
        if escaped:
            line = line[1:]
        digest, name = line[:64], line[66:]
        if len(digest) != 64 or line[64:66] not in ("  ", " *"):
            continue
        if escaped:
            name = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "\\": "\\"}.get(m.group(1), m.group(1)), name)
        sums[name[2:] if name.startswith("./") else name] = digest
    return sums


class SnapshotFiles(WholeOutputFact):
    """
    Returns every regular file under ``directory`` (a snapshot or a ``.partial`` one)
    but ``manifest.json`` and the ``.verified`` marker: size, sha256 and mode, by path
    relative to the directory; the part descriptors (``<part>.json`` at the top level
    only, ``stack/`` holds plain files); when the snapshot was last verified. ``None``
    when the directory does not exist. One round trip: find, stat and sha256sum.

    .. code:: python

        {
            "files": {"mysql.layra.sql.gz": {"size": 123, "sha256": "ab12..."},
                      "mysql.layra.json": {...}, "stack/commit": {...}},
            "parts": {"mysql.layra": {"component": "mysql", "file": "mysql.layra.sql.gz", ...}},
            "modes": {"mysql.layra.sql.gz": "600", ...},
            "invalid_parts": [],            # descriptors that are not a JSON object
            "verified_at": None,            # the .verified marker, when there is one
        }
    """

    def requires_command(self, directory: str) -> str:
        return "sha256sum"

    def command(self, directory: str) -> StringCommand:
        files = StringCommand(
            "find", ".", "-type", "f", "!", "-path", f"./{MANIFEST}", "!", "-path", f"./{VERIFIED_MARKER}",
        )
        return StringCommand(
            "cd", "--", QuoteString(str(directory)), "2>/dev/null || exit 0;",
            section("stat"), ";", files, "-printf", QuoteString("%m %s %P\\n"), ";",
            section("sums"), ";", files, "-exec", "sha256sum", "--", "{}", "+", ";",
            section("parts"), ";",
            "for f in ./*.json; do",
            f'[ -f "$f" ] && [ "$f" != ./{MANIFEST} ] || continue;',
            "printf '%s\\n' \"${f#./}\"; printf '%s\\n' \"$(tr -d '\\n' < \"$f\")\";",
            "done;",
            section("verified"), ";",
            f"[ ! -f {VERIFIED_MARKER} ] || head -c 64 {VERIFIED_MARKER}; echo",
        )

    def process(self, output):
        sections = split_sections(output)
        if "stat" not in sections:
            return None
        sums = parse_sha256sum(sections.get("sums", []))
        files, modes = {}, {}
        for line in sections["stat"]:
            mode, size, name = (line.split(" ", 2) + ["", ""])[:3]
            if not (mode.isdigit() and size.isdigit() and name):
                continue  # a name with a newline in it: never written by us, caught by verify
            files[name] = {"size": int(size), "sha256": sums.get(name)}
            modes[name] = mode
        parts, invalid = {}, []
        lines = sections.get("parts", [])
        for name, text in zip(lines[0::2], lines[1::2]):
            part = name[: -len(".json")]
            try:
                descriptor = json.loads(text)
            except ValueError:
                descriptor = None
            if isinstance(descriptor, dict):
                parts[part] = descriptor
            else:
                invalid.append(part)
        verified = "".join(sections.get("verified", [])).strip() or None
        return {
            "files": dict(sorted(files.items())),
            "parts": dict(sorted(parts.items())),
            "modes": dict(sorted(modes.items())),
            "invalid_parts": sorted(invalid),
            "verified_at": verified,
        }
