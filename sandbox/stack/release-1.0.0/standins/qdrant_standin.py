"""Qdrant STAND-IN for the layra-rollback sandbox (stdlib only).

No Qdrant server can be had on these machines, so this small HTTP server answers
the part of Qdrant's REST API that backups and rollbacks use, with Qdrant's
response shapes ({"result": ..., "status": "ok", "time": ...}):

  GET    /healthz /livez /readyz                      liveness
  GET    /                                            version info
  GET    /collections                                 list
  GET    /collections/{c}                             info (points_count, config)
  GET    /collections/{c}/exists
  PUT    /collections/{c}                             create {"vectors": {"size", "distance"}}
  DELETE /collections/{c}
  PUT    /collections/{c}/points                      upsert {"points": [{"id", "vector", "payload"}]}
  POST   /collections/{c}/points/count                {"count": N}
  POST   /collections/{c}/points/scroll               all points (limit/offset honoured)
  POST   /collections/{c}/snapshots                   create -> {"name", "size", "checksum", ...}
  GET    /collections/{c}/snapshots                   list
  GET    /collections/{c}/snapshots/{name}            download (application/octet-stream)
  DELETE /collections/{c}/snapshots/{name}
  PUT    /collections/{c}/snapshots/recover           {"location": file:// or http(s)://, "priority", "checksum"}
  POST   /collections/{c}/snapshots/upload?priority=snapshot&checksum=SHA256   multipart field "snapshot"

Data: <storage>/collections/<c>/{config,points}.json; snapshots:
<snapshots>/<c>/<name>.snapshot (a tar of the collection directory) plus
<name>.snapshot.checksum, as Qdrant lays them out. It is NOT Qdrant: no search,
no filtering, no HNSW; everything fits in memory.
"""
import argparse
import datetime
import email.parser
import email.policy
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.12.0-sandbox-standin"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
LOCK = threading.RLock()
ARGS = None


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def coll_dir(name):
    if not NAME_RE.match(name):
        raise ApiError(422, f"Validation error: bad collection name {name!r}")
    return os.path.join(ARGS.storage, "collections", name)


def snap_dir(name):
    return os.path.join(ARGS.snapshots, name)


def write_json(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(value, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


def load_collection(name):
    d = coll_dir(name)
    config = read_json(os.path.join(d, "config.json"))
    if config is None:
        raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
    points = read_json(os.path.join(d, "points.json"), {})
    return config, points


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot_info(collection, fname):
    path = os.path.join(snap_dir(collection), fname)
    st = os.stat(path)
    checksum_path = f"{path}.checksum"
    checksum = open(checksum_path).read().strip() if os.path.exists(checksum_path) else sha256_file(path)
    return {
        "name": fname,
        "creation_time": datetime.datetime.utcfromtimestamp(st.st_mtime).strftime("%Y-%m-%dT%H:%M:%S"),
        "size": st.st_size,
        "checksum": checksum,
    }


def create_snapshot(name):
    d = coll_dir(name)
    load_collection(name)  # 404 if missing
    os.makedirs(snap_dir(name), exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d-%H-%M-%S-%f")
    fname = f"{name}-{stamp}.snapshot"
    path = os.path.join(snap_dir(name), fname)
    with tarfile.open(f"{path}.tmp", "w") as tar:
        for member in ("config.json", "points.json"):
            src = os.path.join(d, member)
            if os.path.exists(src):
                tar.add(src, arcname=member)
    os.replace(f"{path}.tmp", path)
    with open(f"{path}.checksum", "w") as fh:
        fh.write(sha256_file(path))
    return snapshot_info(name, fname)


def recover_from_file(name, path, checksum=None):
    if checksum:
        actual = sha256_file(path)
        if actual != checksum.lower():
            raise ApiError(400, f"Bad request: Snapshot checksum mismatch: expected {checksum}, got {actual}")
    d = coll_dir(name)
    staging = tempfile.mkdtemp(prefix=f".{name}.recover.", dir=os.path.dirname(d))
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            if "config.json" not in names:
                raise ApiError(400, "Bad request: not a collection snapshot (config.json missing)")
            for member in ("config.json", "points.json"):
                if member in names:
                    fh = tar.extractfile(member)
                    with open(os.path.join(staging, member), "wb") as out:
                        shutil.copyfileobj(fh, out)
        json.load(open(os.path.join(staging, "config.json")))
        old = f"{d}.old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(d):
            os.rename(d, old)
        os.rename(staging, d)
        shutil.rmtree(old, ignore_errors=True)
    except tarfile.TarError as exc:
        raise ApiError(400, f"Bad request: unreadable snapshot: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Handler(BaseHTTPRequestHandler):
    server_version = f"qdrant-standin/{VERSION}"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # --- plumbing -----------------------------------------------------------
    def reply(self, status, result=None, raw=None, ctype="application/json"):
        if raw is None:
            if status < 400:
                body = {"result": result, "status": "ok", "time": round(time.monotonic() - self.t0, 6)}
            else:
                body = {"status": {"error": result}, "time": round(time.monotonic() - self.t0, 6)}
            raw = json.dumps(body).encode()
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
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "Bad request: body is not JSON")

    def handle_any(self):
        self.t0 = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        self.query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            with LOCK:
                self.route(self.command, parts)
        except ApiError as exc:
            self.reply(exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001
            self.reply(500, f"Service internal error: {exc}")

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = handle_any

    # --- routes -------------------------------------------------------------
    def route(self, m, p):
        if m == "GET" and p in ([], ):
            return self.reply(200, raw=json.dumps({"title": "qdrant - vector search engine (sandbox STAND-IN)", "version": VERSION}).encode())
        if m in ("GET", "HEAD") and len(p) == 1 and p[0] in ("healthz", "livez", "readyz"):
            return self.reply(200, raw=f"{p[0]} check passed".encode(), ctype="text/plain")
        if p[:1] != ["collections"]:
            raise ApiError(404, "Not found")
        if len(p) == 1 and m == "GET":
            root = os.path.join(ARGS.storage, "collections")
            names = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "config.json"))) if os.path.isdir(root) else []
            return self.reply(200, {"collections": [{"name": n} for n in names]})
        if len(p) < 2:
            raise ApiError(404, "Not found")
        name = p[1]
        rest = p[2:]
        if not rest:
            return self.collection(m, name)
        if rest == ["exists"] and m == "GET":
            return self.reply(200, {"exists": os.path.exists(os.path.join(coll_dir(name), "config.json"))})
        if rest == ["points"] and m == "PUT":
            return self.upsert(name)
        if rest == ["points", "count"] and m == "POST":
            self.body_json()
            _, points = load_collection(name)
            return self.reply(200, {"count": len(points)})
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
                "status": "green", "optimizer_status": "ok",
                "points_count": len(points), "indexed_vectors_count": len(points),
                "segments_count": 1, "config": config, "payload_schema": {},
            })
        if m == "PUT":
            body = self.body_json()
            if os.path.exists(os.path.join(d, "config.json")):
                raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
            vectors = body.get("vectors") or {}
            os.makedirs(d, exist_ok=True)
            write_json(os.path.join(d, "config.json"), {"params": {"vectors": vectors}})
            write_json(os.path.join(d, "points.json"), {})
            return self.reply(200, True)
        if m == "DELETE":
            existed = os.path.exists(d)
            shutil.rmtree(d, ignore_errors=True)
            return self.reply(200, existed)
        raise ApiError(405, "Method not allowed")

    def upsert(self, name):
        body = self.body_json()
        config, points = load_collection(name)
        size = (config.get("params", {}).get("vectors") or {}).get("size")
        for pt in body.get("points") or []:
            if "id" not in pt:
                raise ApiError(422, "Validation error: point without id")
            vec = pt.get("vector")
            if size and isinstance(vec, list) and len(vec) != size:
                raise ApiError(400, f"Wrong input: Vector dimension error: expected dim: {size}, got {len(vec)}")
            points[str(pt["id"])] = {"id": pt["id"], "vector": vec, "payload": pt.get("payload") or {}}
        write_json(os.path.join(coll_dir(name), "points.json"), points)
        return self.reply(200, {"operation_id": int(time.time() * 1000), "status": "completed"})

    def scroll(self, name):
        body = self.body_json()
        _, points = load_collection(name)
        ordered = sorted(points.values(), key=lambda pt: (str(type(pt["id"])), pt["id"]))
        offset = body.get("offset")
        if offset is not None:
            ordered = [pt for pt in ordered if str(pt["id"]) >= str(offset)]
        limit = int(body.get("limit") or 10)
        page, nxt = ordered[:limit], (ordered[limit]["id"] if len(ordered) > limit else None)
        with_vector = bool(body.get("with_vector") or body.get("with_vectors"))
        out = [{"id": pt["id"], "payload": pt["payload"], **({"vector": pt["vector"]} if with_vector else {})} for pt in page]
        return self.reply(200, {"points": out, "next_page_offset": nxt})

    def snapshots(self, m, name, rest):
        sd = snap_dir(name)
        if not rest and m == "POST":
            self.body_bytes()
            return self.reply(200, create_snapshot(name))
        if not rest and m == "GET":
            coll_dir(name)
            files = sorted(f for f in os.listdir(sd) if f.endswith(".snapshot")) if os.path.isdir(sd) else []
            return self.reply(200, [snapshot_info(name, f) for f in files])
        if rest == ["recover"] and m == "PUT":
            body = self.body_json()
            location = body.get("location") or ""
            checksum = body.get("checksum")
            parsed = urllib.parse.urlsplit(location)
            if parsed.scheme == "file":
                path = urllib.parse.unquote(parsed.path)
                if not os.path.isfile(path):
                    raise ApiError(400, f"Bad request: Snapshot file {path} does not exist")
                recover_from_file(name, path, checksum)
            elif parsed.scheme in ("http", "https"):
                fd, tmp = tempfile.mkstemp(dir=ARGS.snapshots, suffix=".download")
                try:
                    with urllib.request.urlopen(location, timeout=60) as resp, os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(resp, out)
                    recover_from_file(name, tmp, checksum)
                finally:
                    os.unlink(tmp)
            else:
                raise ApiError(400, f"Bad request: unsupported snapshot location {location!r}")
            return self.reply(200, True)
        if rest == ["upload"] and m == "POST":
            data = self.upload_payload()
            fd, tmp = tempfile.mkstemp(dir=ARGS.snapshots, suffix=".upload")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                recover_from_file(name, tmp, self.query.get("checksum"))
            finally:
                os.unlink(tmp)
            return self.reply(200, True)
        if len(rest) == 1 and m in ("GET", "DELETE"):
            fname = rest[0]
            if not NAME_RE.match(fname) or not fname.endswith(".snapshot"):
                raise ApiError(404, f"Not found: Snapshot {fname} not found")
            path = os.path.join(sd, fname)
            if not os.path.isfile(path):
                raise ApiError(404, f"Not found: Snapshot {fname} not found")
            if m == "DELETE":
                os.unlink(path)
                if os.path.exists(f"{path}.checksum"):
                    os.unlink(f"{path}.checksum")
                return self.reply(200, True)
            with open(path, "rb") as fh:
                return self.reply(200, raw=fh.read(), ctype="application/octet-stream")
        raise ApiError(404, "Not found")

    def upload_payload(self):
        raw = self.body_bytes()
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return raw
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "snapshot":
                return part.get_payload(decode=True)
        raise ApiError(400, "Bad request: multipart field 'snapshot' missing")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6333)
    ap.add_argument("--storage", default="./storage")
    ap.add_argument("--snapshots", default="./snapshots")
    ARGS = ap.parse_args()
    os.makedirs(os.path.join(ARGS.storage, "collections"), exist_ok=True)
    os.makedirs(ARGS.snapshots, exist_ok=True)
    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    server.daemon_threads = True
    import signal

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"qdrant STAND-IN {VERSION} on {ARGS.host}:{ARGS.port} storage={ARGS.storage}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
