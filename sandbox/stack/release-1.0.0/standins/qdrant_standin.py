"""Qdrant STAND-IN for the layra-rollback sandbox (stdlib only). It is NOT Qdrant.

No Qdrant server can be had on these machines, so this small HTTP server answers the
part of Qdrant's REST API that Layra's seed data, the healthcheck and layra-rollback's
qdrant engine use, with Qdrant's status codes and response shapes (compact JSON,
``{"result": ..., "status": "ok", "time": ...}``; errors ``{"status": {"error": "..."},
"time": ...}``; ``wait=false`` answers 202 ``{"status": "accepted", "time": ...}`` and
does the work in the background):

  GET    /   /healthz   /livez   /readyz                  no API key needed (as in Qdrant)
  GET    /collections                                     list
  GET    /collections/{c}                                 info: points_count, config, ...
  GET    /collections/{c}/exists
  PUT    /collections/{c}                                 create {"vectors": {"size", "distance"}, ...}
  DELETE /collections/{c}
  PUT    /collections/{c}/points                          upsert {"points": [{"id", "vector", "payload"}]}
  POST   /collections/{c}/points/count                    {"count": N}
  POST   /collections/{c}/points/scroll                   by id; limit, offset, with_payload, with_vector
  POST   /collections/{c}/snapshots[?wait=false]          create -> {"name", "creation_time", "size", "checksum"}
  GET    /collections/{c}/snapshots                       list (checksum null until its .checksum file exists)
  GET    /collections/{c}/snapshots/{name}                download (application/octet-stream)
  DELETE /collections/{c}/snapshots/{name}[?wait=false]
  PUT    /collections/{c}/snapshots/recover[?wait=false]  {"location": file:// or http(s)://, "priority", "checksum"}
  POST   /collections/{c}/snapshots/upload?priority=&checksum=&wait=   multipart field "snapshot"

API key: when QDRANT__SERVICE__API_KEY is set (and not empty), every other request needs
it in the ``api-key`` header (or ``Authorization: Bearer``); Qdrant answers 401 with a
plain-text body, "Must provide an API key or an Authorization bearer token" without one
and "Invalid API key or JWT" with a wrong one.

Errors as Qdrant words them: unknown collection 404 "Not found: Collection `c` doesn't
exist!"; unknown snapshot 404 "Not found: Snapshot s not found"; upload with another
checksum 400 "Checksum mismatch: expected <file's>, actual <given>" (Qdrant's order);
recover with another checksum 400 "Wrong input: Snapshot checksum mismatch: expected
<given>, got <file's>"; a file:// location outside the snapshots directory 403
"Forbidden: Snapshot file "<path>" must be inside snapshots directory"; a snapshot whose
vectors differ from the existing collection's 400 "Wrong input: Snapshot is not
compatible with existing collection: ...". An upload is kept among the collection's
snapshots under its multipart file name (no checksum), then recovered from, as Qdrant
does. A recovery creates a missing collection.

Data: <storage>/collections/<c>/{config,points}.json; snapshots: <snapshots>/<c>/<name>
(a tar of config.json and points.json) with <name>.checksum, named like Qdrant's
(<c>-<peer id>-<YYYY-MM-DD-HH-MM-SS>.snapshot). No search, no filters, no HNSW, no
cluster; everything fits in memory.
"""
import argparse
import bisect
import datetime
import email.parser
import email.policy
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.12.0-sandbox-standin"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
OPEN_PATHS = ("/", "/healthz")  # and everything under /readyz, /livez: Qdrant's whitelist
LOCK = threading.RLock()
PEER_ID = random.randrange(10**15, 10**16)
ARGS = None

DEFAULT_CONFIG = {
    "params": {"shard_number": 1, "replication_factor": 1, "write_consistency_factor": 1,
               "on_disk_payload": True},
    "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                    "max_indexing_threads": 0, "on_disk": False},
    "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                         "default_segment_number": 0, "max_segment_size": None, "memmap_threshold": None,
                         "indexing_threshold": 20000, "flush_interval_sec": 5, "max_optimization_threads": None},
    "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
    "quantization_config": None,
}


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def coll_dir(name):
    if not NAME_RE.match(name) or name in (".", ".."):
        raise ApiError(422, f"Validation error in path parameters: [name: bad collection name {name!r}]")
    return os.path.join(ARGS.storage, "collections", name)


def snap_dir(name):
    return os.path.join(ARGS.snapshots, name)


def write_json(path, value):
    with open(f"{path}.tmp", "w") as fh:
        json.dump(value, fh, sort_keys=True)
    os.replace(f"{path}.tmp", path)


def read_json(path, default=None):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


def collection_config(name):
    """The collection's config; 404 when there is no such collection."""
    config = read_json(os.path.join(coll_dir(name), "config.json"))
    if config is None:
        raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
    return config


def load_collection(name):
    return collection_config(name), read_json(os.path.join(coll_dir(name), "points.json"), {})


def point_order(point_id):
    """Qdrant's scroll order: numeric ids first, then UUIDs."""
    return (0, point_id, "") if isinstance(point_id, int) else (1, 0, str(point_id))


# points.json read once per version of the file (written by os.replace: a new inode), in
# scroll order: a page costs its own points, as Qdrant's scroll does, not the collection's.
ORDERED: dict[str, tuple] = {}


def ordered_points(name):
    collection_config(name)  # 404 when there is no such collection
    path = os.path.join(coll_dir(name), "points.json")
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return [], []
    version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = ORDERED.get(path)
    if cached is None or cached[0] != version:
        points = sorted(read_json(path, {}).values(), key=lambda pt: point_order(pt["id"]))
        cached = ORDERED[path] = (version, points, [point_order(pt["id"]) for pt in points])
    return cached[1], cached[2]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_info(collection, fname):
    path = os.path.join(snap_dir(collection), fname)
    stat = os.stat(path)
    checksum = read_text(f"{path}.checksum")
    created = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc)
    return {"name": fname, "creation_time": created.strftime("%Y-%m-%dT%H:%M:%S"),
            "size": stat.st_size, "checksum": checksum}


def read_text(path):
    try:
        with open(path) as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def snapshot_path(collection, fname):
    path = os.path.join(snap_dir(collection), os.path.basename(fname))
    if fname.endswith(".checksum") or not os.path.isfile(path):
        raise ApiError(404, f"Not found: Snapshot {fname} not found")
    return path


def create_snapshot(name, delay=0.0):
    """Tar the collection beside the snapshots, then rename it in and write its checksum."""
    collection_config(name)
    os.makedirs(snap_dir(name), exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
    fname = f"{name}-{PEER_ID}-{stamp}.snapshot"
    path = os.path.join(snap_dir(name), fname)
    with tempfile.NamedTemporaryFile(dir=ARGS.snapshots, suffix=".partial", delete=False) as tmp:
        with tarfile.open(fileobj=tmp, mode="w") as tar:
            for member in ("config.json", "points.json"):
                src = os.path.join(coll_dir(name), member)
                if os.path.exists(src):
                    tar.add(src, arcname=member)
    time.sleep(delay)  # stands for a large collection: wait=false callers must poll
    os.replace(tmp.name, path)
    with open(f"{path}.checksum", "w") as fh:
        fh.write(sha256_file(path))
    return snapshot_info(name, fname)


def compatible(name, config):
    """Qdrant refuses a snapshot whose vectors differ from those of the existing collection."""
    current = read_json(os.path.join(coll_dir(name), "config.json"))
    if current is None:
        return
    ours, theirs = current["params"].get("vectors"), config.get("params", {}).get("vectors")
    if ours != theirs:
        raise ApiError(400, "Wrong input: Snapshot is not compatible with existing collection: "
                            f"Collection vectors: {ours} Snapshot Vectors: {theirs}")


def recover_from_file(name, path):
    """Replace (or create) the collection with the snapshot's data, swapped in by rename."""
    d = coll_dir(name)
    os.makedirs(os.path.dirname(d), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.recover.", dir=os.path.dirname(d))
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            if "config.json" not in names:
                raise ApiError(400, "Bad request: not a collection snapshot (config.json missing)")
            for member in ("config.json", "points.json") if "points.json" in names else ("config.json",):
                with tar.extractfile(member) as fh, open(os.path.join(staging, member), "wb") as out:
                    shutil.copyfileobj(fh, out)
        with open(os.path.join(staging, "config.json")) as fh:
            compatible(name, json.load(fh))
        old = f"{d}.old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(d):
            os.rename(d, old)
        os.rename(staging, d)
        shutil.rmtree(old, ignore_errors=True)
    except (tarfile.TarError, ValueError) as exc:
        raise ApiError(400, f"Bad request: unreadable snapshot: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def fetch_location(location):
    """The local file a recover ``location`` names: file:// as is, http(s):// downloaded."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "file":
        path = urllib.parse.unquote(parsed.path)
        inside = os.path.realpath(path).startswith(os.path.realpath(ARGS.snapshots) + os.sep)
        if not inside:
            raise ApiError(403, f"Forbidden: Snapshot file {json.dumps(path)} must be inside snapshots directory")
        if not os.path.isfile(path):
            raise ApiError(400, f"Bad request: Snapshot file {json.dumps(path)} does not exist")
        return path, None
    if parsed.scheme in ("http", "https"):
        fd, tmp = tempfile.mkstemp(dir=ARGS.snapshots, suffix=".download")
        with urllib.request.urlopen(location, timeout=60) as resp, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(resp, out)
        return tmp, tmp
    raise ApiError(400, f"Bad request: URL {location} with scheme {parsed.scheme} is not supported")


def recover_from_location(name, location, checksum):
    path, downloaded = fetch_location(location)
    try:
        actual = sha256_file(path)
        if checksum and actual != checksum.lower():
            raise ApiError(400, f"Wrong input: Snapshot checksum mismatch: expected {checksum}, got {actual}")
        return recover_from_file(name, path)
    finally:
        if downloaded:
            os.unlink(downloaded)


class Handler(BaseHTTPRequestHandler):
    server_version = f"qdrant-standin/{VERSION}"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # --- plumbing -----------------------------------------------------------
    def reply(self, status, result=None, raw=None, ctype="application/json"):
        if raw is None:
            elapsed = round(time.monotonic() - self.t0, 6)
            if status == 202:
                body = {"status": "accepted", "time": elapsed}
            elif status < 400:
                body = {"result": result, "status": "ok", "time": elapsed}
            else:
                body = {"status": {"error": result}, "time": elapsed}
            raw = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def body_bytes(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def body_json(self):
        raw = self.body_bytes()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, "Format error in JSON body: expected value at line 1 column 1")

    def authorized(self, path):
        key = os.environ.get("QDRANT__SERVICE__API_KEY") or ""
        if not key or path in OPEN_PATHS or path.startswith(("/readyz", "/livez")):
            return True
        given = self.headers.get("api-key")
        bearer = self.headers.get("Authorization") or ""
        if given is None and bearer.startswith("Bearer "):
            given = bearer[len("Bearer "):]
        if given is None:
            message = "Must provide an API key or an Authorization bearer token"
        elif hmac.compare_digest(given.encode(), key.encode()):
            return True
        else:
            message = "Invalid API key or JWT"
        self.body_bytes()
        self.reply(401, raw=message.encode(), ctype="text/plain; charset=utf-8")
        return False

    def handle_any(self):
        self.t0 = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        self.query = dict(urllib.parse.parse_qsl(url.query))
        if not self.authorized(url.path):
            return
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            self.route(self.command, parts)
        except ApiError as exc:
            self.reply(exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001
            self.reply(500, f"Service internal error: {exc}")

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = handle_any

    def run(self, work):
        """Qdrant's ``wait``: true (default) answers with the result, false with 202 at once."""
        if self.query.get("wait", "true") != "false":
            with LOCK:
                return self.reply(200, work())

        def background():
            try:
                with LOCK:
                    work()
            except ApiError:
                pass  # Qdrant logs it; nobody is waiting for the answer

        threading.Thread(target=background, daemon=True).start()
        return self.reply(202)

    # --- routes -------------------------------------------------------------
    def route(self, m, p):
        if m == "GET" and not p:
            info = {"title": "qdrant - vector search engine (sandbox STAND-IN)", "version": VERSION}
            return self.reply(200, raw=json.dumps(info, separators=(",", ":")).encode())
        if m in ("GET", "HEAD") and len(p) == 1 and p[0] in ("healthz", "livez", "readyz"):
            return self.reply(200, raw=f"{p[0]} check passed".encode(), ctype="text/plain")
        if p[:1] != ["collections"]:
            raise ApiError(404, "Not found")
        if len(p) == 1 and m == "GET":
            root = os.path.join(ARGS.storage, "collections")
            names = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "config.json")))
            return self.reply(200, {"collections": [{"name": n} for n in names]})
        if len(p) < 2:
            raise ApiError(404, "Not found")
        name, rest = p[1], p[2:]
        if not rest:
            return self.collection(m, name)
        if rest == ["exists"] and m == "GET":
            return self.reply(200, {"exists": os.path.exists(os.path.join(coll_dir(name), "config.json"))})
        if rest == ["points"] and m == "PUT":
            return self.upsert(name)
        if rest == ["points", "count"] and m == "POST":
            self.body_json()
            return self.reply(200, {"count": len(load_collection(name)[1])})
        if rest == ["points", "scroll"] and m == "POST":
            return self.scroll(name)
        if rest[0] == "snapshots":
            return self.snapshots(m, name, rest[1:])
        raise ApiError(404, "Not found")

    def collection(self, m, name):
        d = coll_dir(name)
        if m == "GET":
            config, points = load_collection(name)
            return self.reply(200, {
                "status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
                "points_count": len(points), "segments_count": 1, "config": config, "payload_schema": {},
            })
        if m == "PUT":
            body = self.body_json()
            with LOCK:
                if os.path.exists(os.path.join(d, "config.json")):
                    raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
                config = {key: {**value, **(body.get(key) or {})} if isinstance(value, dict) else body.get(key)
                          for key, value in DEFAULT_CONFIG.items()}
                config["params"]["vectors"] = body.get("vectors") or {}
                os.makedirs(d, exist_ok=True)
                write_json(os.path.join(d, "points.json"), {})
                write_json(os.path.join(d, "config.json"), config)
            return self.reply(200, True)
        if m == "DELETE":
            with LOCK:
                existed = os.path.exists(d)
                shutil.rmtree(d, ignore_errors=True)
            return self.reply(200, existed)
        raise ApiError(405, "Method not allowed")

    def upsert(self, name):
        body = self.body_json()
        with LOCK:
            config, points = load_collection(name)
            size = (config["params"].get("vectors") or {}).get("size")
            for pt in body.get("points") or []:
                if "id" not in pt:
                    raise ApiError(422, "Format error in JSON body: missing field `id`")
                vec = pt.get("vector")
                if size and isinstance(vec, list) and len(vec) != size:
                    raise ApiError(400, f"Wrong input: Vector dimension error: expected dim: {size}, got {len(vec)}")
                points[str(pt["id"])] = {"id": pt["id"], "vector": vec, "payload": pt.get("payload") or {}}
            write_json(os.path.join(coll_dir(name), "points.json"), points)
        return self.reply(200, {"operation_id": int(time.time() * 1000), "status": "completed"})

    def scroll(self, name):
        body = self.body_json()
        ordered, orders = ordered_points(name)
        start = 0 if body.get("offset") is None else bisect.bisect_left(orders, point_order(body["offset"]))
        limit = int(body.get("limit") or 10)
        page = ordered[start:start + limit]
        nxt = ordered[start + limit]["id"] if len(ordered) > start + limit else None
        with_payload = body.get("with_payload", True) is not False
        with_vector = bool(body.get("with_vector") or body.get("with_vectors"))
        out = [{"id": pt["id"], **({"payload": pt["payload"]} if with_payload else {}),
                **({"vector": pt["vector"]} if with_vector else {})} for pt in page]
        return self.reply(200, {"points": out, "next_page_offset": nxt})

    def snapshots(self, m, name, rest):
        if not rest and m == "POST":
            self.body_bytes()
            collection_config(name)
            return self.run(lambda: create_snapshot(name, ARGS.snapshot_delay))
        if not rest and m == "GET":
            collection_config(name)
            sd = snap_dir(name)
            files = sorted(f for f in os.listdir(sd) if f.endswith(".snapshot")) if os.path.isdir(sd) else []
            return self.reply(200, [snapshot_info(name, f) for f in files])
        if rest == ["recover"] and m == "PUT":
            body = self.body_json()
            coll_dir(name)
            if not body.get("location"):
                raise ApiError(422, "Format error in JSON body: missing field `location`")
            return self.run(lambda: recover_from_location(name, body["location"], body.get("checksum")))
        if rest == ["upload"] and m == "POST":
            return self.upload(name)
        if len(rest) == 1 and m == "GET":
            collection_config(name)
            with open(snapshot_path(name, rest[0]), "rb") as fh:
                return self.reply(200, raw=fh.read(), ctype="application/octet-stream")
        if len(rest) == 1 and m == "DELETE":
            collection_config(name)

            def delete():
                path = snapshot_path(name, rest[0])
                os.unlink(path)
                if os.path.exists(f"{path}.checksum"):
                    os.unlink(f"{path}.checksum")
                return True

            return self.run(delete)
        raise ApiError(404, "Not found")

    def upload(self, name):
        """Check the checksum, keep the file among the collection's snapshots, recover from it."""
        coll_dir(name)
        filename, data = self.multipart_snapshot()
        actual = hashlib.sha256(data).hexdigest()
        checksum = self.query.get("checksum")
        if checksum and actual != checksum.lower():
            raise ApiError(400, f"Checksum mismatch: expected {actual}, actual {checksum}")
        os.makedirs(snap_dir(name), exist_ok=True)
        path = os.path.join(snap_dir(name), filename)
        with open(path, "wb") as out:
            out.write(data)
        return self.run(lambda: recover_from_file(name, path))

    def multipart_snapshot(self):
        raw = self.body_bytes()
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "Content type error: expected multipart/form-data")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "snapshot":
                filename = os.path.basename(part.get_filename() or "")
                if not NAME_RE.match(filename) or filename.endswith(".checksum"):
                    filename = f"{random.getrandbits(128):032x}"
                return filename, part.get_payload(decode=True)
        raise ApiError(400, "Multipart error: field `snapshot` is missing")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6333)
    ap.add_argument("--storage", default="./storage")
    ap.add_argument("--snapshots", default="./snapshots")
    ap.add_argument("--snapshot-delay", type=float, default=0.0,
                    help="seconds a snapshot takes to appear (to exercise wait=false)")
    ARGS = ap.parse_args()
    os.makedirs(os.path.join(ARGS.storage, "collections"), exist_ok=True)
    os.makedirs(ARGS.snapshots, exist_ok=True)
    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    auth = "api-key required" if os.environ.get("QDRANT__SERVICE__API_KEY") else "no api-key"
    print(f"qdrant STAND-IN {VERSION} on {ARGS.host}:{ARGS.port} storage={ARGS.storage} ({auth})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
