"""
Qdrant engine facts, and the ``qdrant`` shell function every Qdrant fact and operation
runs: ``curl`` on the host against the REST API at the component's ``url`` (published on
the host's loopback), so snapshots move between Qdrant and the host over HTTP. The API
key is read on the host from the stack's env file and reaches curl as a config file on
a file descriptor (``-K <(printf ...)``, bash), never on a command line.

Answers are JSON: the host only runs curl and shell; facts parse the JSON here, in
``process``. Engine protocol: ``QdrantFingerprint`` (what each collection is),
``operations.qdrant.dumped`` (a collection snapshot, downloaded and checked),
``operations.qdrant.restored`` (recover with ``priority=snapshot``), and the deploy's
verify step comparing fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import re

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack
from .secrets import export_from_env_file
from .shell import (
    PartialFingerprint,
    WholeOutputFact,
    assign,
    host_name,
    script,
    section,
    split_sections,
)

DEFAULT_URL = "http://127.0.0.1:6333"
DEFAULT_KEY = "QDRANT_API_KEY"
FINGERPRINT_FIELDS = ("points", "config_sha256", "sample_sha256", "points_sha256")
# What every snapshot's fingerprint holds (points_sha256 only those taken since every point is hashed).
SNAPSHOT_FIELDS = FINGERPRINT_FIELDS[:3]
# Points (the first by id) whose ids, payloads and vectors the fingerprint hashes apart:
# what a snapshot taken before every point was hashed is compared by.
SAMPLE_SIZE = 256
# How many points the fingerprint reads at a time, hashing every one (scripts/qdrant_points.sh).
PAGE_SIZE = 256

# Collection and snapshot names go into URLs and file names: no `/`, `?`, `%`, space.
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}\Z")
URL = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?\Z")

# The curl config string holding the key: backslashes and double quotes escaped.
ESCAPE_KEY = r'qdrant_key=${qdrant_key//\\/\\\\}; qdrant_key=${qdrant_key//\"/\\\"};'
API_KEY_CONFIG = "<(printf 'header = \"api-key: %s\"\\n' \"$qdrant_key\")"
# Appended to a request in facts: its status on a line of its own after the answer
# (000 when nothing answered), curl's own errors in the answer.
WITH_STATUS = ("-w", QuoteString("\\n%{http_code}\\n"), "2>&1")
NAMES_GREP = '"name": *"[A-Za-z0-9_.-]*"'
# A scroll answer without what changes from call to call (time, usage): just the points.
STRIP_TIMING = 's/,"status":"ok","time":.*$//'
JSON_BODY = ("-H", QuoteString("Content-Type: application/json"), "--data-binary")


def valid_name(name) -> bool:
    return isinstance(name, str) and bool(NAME.match(name)) and name.strip(".") != ""


def valid_url(url) -> bool:
    """``http(s)://host[:port]``, nothing after: paths are appended to it."""
    return isinstance(url, str) and bool(URL.match(url))


def qdrant_client(stack: Stack, url: str, password_key: str | None) -> StringCommand:
    """Shell that defines ``qdrant METHOD PATH [CURL_ARGS...]``: one request to the API.

    The answer goes to stdout; an HTTP error makes curl exit 22 with Qdrant's message as
    the answer (``--fail-with-body``). Run under bash (process substitution).
    """
    if not valid_url(url):
        raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
    key_read, key_config = [], []
    if password_key:
        # Un-exported again: the key stays in this shell, in no child's environment.
        key_read = [export_from_env_file(stack.env_path, password_key, "qdrant_key"),
                    "export -n qdrant_key;", ESCAPE_KEY]
        key_config = ["-K", API_KEY_CONFIG]
    return StringCommand(
        assign(qdrant_url=url), *key_read,
        "qdrant() {", "curl", "-sS", "--fail-with-body", "--connect-timeout", "10", *key_config,
        '-X "$1" "$qdrant_url$2" "${@:3}";', "};",
    )


def qdrant_call(method: str, path, *args) -> StringCommand:
    """``qdrant METHOD PATH ARGS``; ``path`` a string (quoted) or shell (a StringCommand)."""
    return StringCommand("qdrant", method, QuoteString(path) if isinstance(path, str) else path, *args)


def qdrant_curl(stack: Stack, url: str, password_key: str | None, method: str, path, *args) -> StringCommand:
    """One request, the client included."""
    return StringCommand(qdrant_client(stack, url, password_key), qdrant_call(method, path, *args))


def answer(lines: list[str]) -> tuple[int, str]:
    """(HTTP status, body) of a request printed with ``WITH_STATUS``; status 0: no answer."""
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    status = lines.pop().strip() if lines else ""
    return (int(status) if status.isdigit() else 0), "\n".join(lines).strip()


def message(body: str) -> str:
    """Qdrant's error message: ``status.error`` of a JSON answer, else the text itself
    (without curl's own "returned error" line: the status says it)."""
    body = "\n".join(line for line in body.splitlines() if not line.startswith("curl: (22)")).strip()
    try:
        return str(json.loads(body)["status"]["error"])
    except (ValueError, KeyError, TypeError):
        return body[:300]


def check(status: int, body: str, what: str):
    """A ValueError carrying Qdrant's message unless the request succeeded."""
    if status != 200:
        raise ValueError(f"qdrant {what}: " + (f"HTTP {status}: " if status else "") + message(body))


def result_of(status: int, body: str, what: str):
    """The ``result`` of a successful answer (see `check`)."""
    check(status, body, what)
    try:
        return json.loads(body)["result"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"qdrant {what}: not a Qdrant answer: {body[:300]!r}") from None


def canonical_sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class QdrantFactBase(WholeOutputFact):
    """Facts that ask a Qdrant server over HTTP from the host (curl, under bash)."""

    abstract = True
    shell_executable = "bash"

    def requires_command(self, *args, **kwargs) -> str:
        return "curl"


class QdrantFingerprint(QdrantFactBase):
    """
    Returns what each collection is, in one round trip: the server's version, then each
    collection's point count, a hash of its configuration and a hash of a sample of
    every one of its points (ids, payloads and vectors, read ``PAGE_SIZE`` at a time in id
    order and hashed on the host: no point leaves it), and of the first ``SAMPLE_SIZE``
    apart (the sample, what snapshots taken before every point was hashed are compared
    by). ``reachable`` is False when nothing answers at ``url``.

    .. code:: python

        {
            "reachable": True,
            "version": "1.12.0",
            "collections": {
                "kb_vectors": {
                    "points": 300,               # points_count
                    "config_sha256": "9f2c...",  # of the config as sorted-key JSON
                    "sample_sha256": "d1e4...",
                    "points_sha256": "7a0b...",
                },
            },
        }

    The same data and configuration fingerprint alike, also after a snapshot recovery.
    Reading every point grows with the collection (a scroll, which Qdrant serves beside
    its searches). A wrong API key fails the fact with Qdrant's message.
    """

    def command(self, stack: Stack, url: str = DEFAULT_URL, password_key: str | None = DEFAULT_KEY) -> StringCommand:
        stack = Stack.of(stack)
        sample = json.dumps({"limit": SAMPLE_SIZE, "with_payload": True, "with_vector": True})
        return StringCommand(
            qdrant_client(stack, url, password_key), script("qdrant_points"), "\n",
            "err=$(mktemp) || exit 1; trap 'rm -f \"$err\"' EXIT;",
            section("version"), "; v=$(", qdrant_call("GET", "/", *WITH_STATUS), "); printf '%s\\n' \"$v\";",
            "case $v in *000) exit 0 ;; esac;",  # nothing answers: nothing more to ask
            section("collections"), "; list=$(", qdrant_call("GET", "/collections", *WITH_STATUS), ");",
            "printf '%s\\n' \"$list\";", section("info"), ";",
            "for c in $(printf '%s\\n' \"$list\" | grep -o", QuoteString(NAMES_GREP), "| cut -d'\"' -f4); do",
            'echo "collection $c";', qdrant_call("GET", StringCommand('"/collections/$c"'), *WITH_STATUS), ";",
            's=$(', qdrant_call("POST", StringCommand('"/collections/$c/points/scroll"'), *JSON_BODY,
                                QuoteString(sample), *WITH_STATUS), '); code=${s##*$\'\\n\'}; s=${s%$\'\\n\'*};',
            'echo "sample $c"; if [ "$code" = 200 ]; then printf \'%s\' "$s" | sed', QuoteString(STRIP_TIMING),
            "| sha256sum; else printf '%s\\n' \"$s\"; fi; echo \"$code\";",
            'echo "points $c"; if h=$(set -o pipefail; qdrant_points "$c"', str(PAGE_SIZE),
            '2>"$err" | sha256sum); then printf \'%s\\n200\\n\' "$h"; else cat "$err"; fi;',
            "done",
        )

    def process(self, output):
        sections = split_sections(output)
        status, body = answer(sections.get("version", []))
        if status == 0:
            return {"reachable": False, "version": None, "collections": {}}
        try:
            version = json.loads(body)["version"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"qdrant GET /: not a Qdrant answer: {body[:300]!r}") from None
        listed = result_of(*answer(sections.get("collections", [])), "GET /collections")["collections"]
        # Names we cannot put in a URL are listed without figures: they still differ.
        collections = {c["name"]: dict.fromkeys(FINGERPRINT_FIELDS) for c in listed}
        for (kind, name), lines in groups(sections.get("info", [])).items():
            status, body = answer(lines)
            entry = collections.setdefault(name, dict.fromkeys(FINGERPRINT_FIELDS))
            if kind == "collection":
                info = result_of(status, body, f"GET /collections/{name}")
                entry.update(points=info.get("points_count"), config_sha256=canonical_sha256(info.get("config")))
            else:
                check(status, body, f"POST /collections/{name}/points/scroll")
                entry[f"{kind}_sha256"] = body.split()[0]
        unread = sorted(name for name, entry in collections.items()
                        if valid_name(name) and None in (entry["config_sha256"], entry["sample_sha256"],
                                                         entry["points_sha256"]))
        if unread:
            raise PartialFingerprint(f"{host_name()}: the Qdrant fingerprint is partial, refused: "
                                     f"{', '.join(unread)} listed but not read whole")
        return {"reachable": True, "version": version, "collections": collections}


def same_data(live: dict | None, snapshot: dict | None) -> bool:
    """Whether a live collection (a ``QdrantFingerprint`` collection entry) holds the
    snapshot's data: its point count, configuration, sample and every point (a snapshot
    taken before every point was hashed has no ``points_sha256``: its sample decides). A
    collection listed without figures (a name that cannot go into a URL) is never alike."""
    fields = [field for field in FINGERPRINT_FIELDS if field != "points_sha256" or "points_sha256" in (snapshot or {})]
    return bool(live) and bool(snapshot) and live.get("sample_sha256") is not None and all(
        live.get(field) == snapshot.get(field) for field in fields)


def groups(lines: list[str]) -> dict[tuple[str, str], list[str]]:
    """The lines after each ``collection NAME`` / ``sample NAME`` / ``points NAME`` marker,
    by (kind, name)."""
    found: dict[tuple[str, str], list[str]] = {}
    current: list[str] = []
    for line in lines:
        kind, _, name = line.strip().partition(" ")
        if kind in ("collection", "sample", "points") and valid_name(name):
            current = found.setdefault((kind, name), [])
        else:
            current.append(line)
    return found


class QdrantSnapshots(QdrantFactBase):
    """
    Returns the snapshots the server keeps of a collection (none when the collection
    does not exist). ``checksum`` is the sha256 Qdrant wrote beside the snapshot, ``None``
    for one it did not (an upload).

    .. code:: python

        [{"name": "kb_vectors-1234-2026-11-21-13-00-00.snapshot", "size": 1048576,
          "checksum": "5f1c...", "creation_time": "2026-11-21T13:00:00"}]
    """

    def command(self, stack: Stack, collection: str, url: str = DEFAULT_URL,
                password_key: str | None = DEFAULT_KEY) -> StringCommand:
        if not valid_name(collection):
            raise ValueError(f"collection must match [A-Za-z0-9_.-]{{1,255}}, got {collection!r}")
        return StringCommand(
            qdrant_curl(Stack.of(stack), url, password_key, "GET", f"/collections/{collection}/snapshots",
                        *WITH_STATUS), "|| true",
        )

    def process(self, output):
        status, body = answer(output)
        if status == 404:
            return []
        fields = ("name", "size", "checksum", "creation_time")
        return [{field: snapshot.get(field) for field in fields}
                for snapshot in result_of(status, body, "GET snapshots")]
