"""Layra-shaped backend for the layra-rollback sandbox (stdlib HTTP + MySQL + Redis).

Endpoints
  GET  /api/v1/health/check     200 {"status":"UP",...} or 503 with the failing part
  POST /api/v1/auth/login       {"username","password"} -> {"access_token": ...}
  GET  /api/v1/knowledge-bases  (Bearer token) list, cached in Redis kb:cache:list
  POST /api/v1/knowledge-bases  (Bearer token) {"name"} -> 201
  POST /api/v1/chat/completions (Bearer token) {"query"} -> a canned answer over the user's KBs
MAINTENANCE_MODE=true|1: writes answer 503, except health and auth paths (the runbook's rule).
The seeded user is `demo`, its password LAYRA_DEMO_PASSWORD (the stack's env file).
"""
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql
import redis

RELEASE = "1.0.0"
SESSION_TTL = 3600
KB_CACHE_KEY = "kb:cache:list"
KB_CACHE_TTL = 300
PBKDF2_ITERATIONS = 100_000
# Writes that stay open in maintenance mode: health checks and authentication.
WRITE_PATHS_IN_MAINTENANCE = ("/api/v1/health", "/api/v1/auth")

log = logging.getLogger("layra.backend")


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def db():
    return pymysql.connect(
        host=os.environ.get("MYSQL_HOST", "mysql"),
        port=int(os.environ.get("MYSQL_PORT", "3306")),
        user=os.environ["MYSQL_USER"],
        password=os.environ["MYSQL_PASSWORD"],
        database=os.environ["MYSQL_DATABASE"],
        connect_timeout=3,
        read_timeout=10,
        write_timeout=10,
        autocommit=True,
        cursorclass=pymysql.cursors.DictCursor,
        charset="utf8mb4",
    )


def redis_db(key):
    """A client of the logical database the env names: as Layra, sessions (tokens) in one,
    task state and its caches in another."""
    return redis.Redis(
        host=os.environ.get("REDIS_HOST", "redis"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
        password=os.environ.get("REDIS_PASSWORD") or None,
        db=int(os.environ[key]),
        socket_timeout=3,
        socket_connect_timeout=3,
        decode_responses=True,
    )


SESSIONS = redis_db("REDIS_TOKEN_DB")
TASKS = redis_db("REDIS_TASK_DB")


def hash_password(password, salt):
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${digest.hex()}"


def check_password(password, stored):
    try:
        _, iterations, salt, hexdigest = stored.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hexdigest)


SCHEMA = {
    "users": """
        CREATE TABLE users (
          id INT AUTO_INCREMENT PRIMARY KEY,
          username VARCHAR(64) NOT NULL UNIQUE,
          password_hash VARCHAR(255) NOT NULL,
          created_at DATETIME NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "knowledge_bases": """
        CREATE TABLE knowledge_bases (
          id INT AUTO_INCREMENT PRIMARY KEY,
          name VARCHAR(255) NOT NULL,
          owner_id INT NOT NULL,
          created_at DATETIME NOT NULL,
          KEY owner_id (owner_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}
SEED_TIME = "2025-11-01 10:00:00"
SEED_KBS = ("Product manuals", "Support tickets", "Research papers")


def init_schema():
    """Create missing tables; seed only tables created right now (a restored
    database is never re-seeded). Deterministic seed rows: identical on all hosts."""
    for attempt in range(60):
        try:
            conn = db()
            break
        except pymysql.MySQLError as exc:
            log.warning("mysql not ready (%s), retrying", exc)
            time.sleep(1)
    else:
        raise SystemExit("mysql unreachable")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()")
        existing = {row["t"] for row in cur.fetchall()}
        created = []
        for table, ddl in SCHEMA.items():
            if table not in existing:
                cur.execute(ddl)
                created.append(table)
        if "users" in created:
            cur.execute(
                "INSERT INTO users (username, password_hash, created_at) VALUES (%s, %s, %s)",
                ("demo", hash_password(os.environ["LAYRA_DEMO_PASSWORD"], "layra-demo-salt"), SEED_TIME),
            )
        if "knowledge_bases" in created:
            cur.execute("SELECT id FROM users WHERE username = 'demo'")
            owner = cur.fetchone()
            owner_id = owner["id"] if owner else 1
            for name in SEED_KBS:
                cur.execute(
                    "INSERT INTO knowledge_bases (name, owner_id, created_at) VALUES (%s, %s, %s)",
                    (name, owner_id, SEED_TIME),
                )
        if created:
            log.info("created tables: %s", ", ".join(created))


def health():
    """(http status, body) of the health check."""
    body = {"status": "UP", "release": RELEASE, "mysql": "ok", "redis": "ok"}
    ok = True
    try:
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    except Exception as exc:  # noqa: BLE001 - report any failure
        body["mysql"] = f"error: {exc}"
        ok = False
    try:
        SESSIONS.ping()
    except Exception as exc:  # noqa: BLE001
        body["redis"] = f"error: {exc}"
        ok = False
    if not ok:
        body["status"] = "DOWN"
        body["reason"] = "; ".join(
            f"{part}: {body[part]}" for part in ("mysql", "redis") if body[part] != "ok"
        )
    return (200 if ok else 503), body


def list_kbs():
    cached = TASKS.get(KB_CACHE_KEY)
    if cached is not None:
        return json.loads(cached)
    with db() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT kb.id, kb.name, u.username AS owner, kb.created_at"
            " FROM knowledge_bases kb LEFT JOIN users u ON u.id = kb.owner_id ORDER BY kb.id"
        )
        rows = [
            {"id": r["id"], "name": r["name"], "owner": r["owner"], "created_at": r["created_at"].isoformat()}
            for r in cur.fetchall()
        ]
    TASKS.set(KB_CACHE_KEY, json.dumps(rows), ex=KB_CACHE_TTL)
    return rows


def create_kb(name, user):
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with db() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO knowledge_bases (name, owner_id, created_at) VALUES (%s, %s, %s)",
            (name, user["id"], now),
        )
        kb_id = cur.lastrowid
    TASKS.delete(KB_CACHE_KEY)
    # what the real backend keeps while it embeds a knowledge base
    TASKS.set(f"embedding:kb:{kb_id}:status", "pending", ex=86400)
    return {"id": kb_id, "name": name, "owner": user["username"], "created_at": now.replace(" ", "T")}


class Handler(BaseHTTPRequestHandler):
    server_version = f"layra-backend/{RELEASE}"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # concise access log on stderr
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            value = json.loads(raw or b"{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def current_user(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        raw = SESSIONS.get(f"user:session:{auth[7:].strip()}")
        return json.loads(raw) if raw else None

    def path_only(self):
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def dispatch(self, method):
        path = self.path_only()
        try:
            if method != "GET" and not path.startswith(WRITE_PATHS_IN_MAINTENANCE) and env_flag("MAINTENANCE_MODE"):
                # drain the body so the connection stays usable
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                return self.send_json(503, {"detail": "System undergoing maintenance. Please try again in a few minutes."})
            route = ROUTES.get((method, path))
            if route is None:
                if any(p == path for (_, p) in ROUTES):
                    return self.send_json(405, {"detail": "method not allowed"})
                return self.send_json(404, {"detail": "not found"})
            return route(self)
        except (pymysql.MySQLError, redis.RedisError) as exc:
            log.error("%s %s: %s", method, path, exc)
            return self.send_json(503, {"detail": f"backend dependency error: {exc}"})

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # routes
    def r_health(self):
        status, body = health()
        self.send_json(status, body)

    def r_login(self):
        body = self.read_json()
        if not body or not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
            return self.send_json(400, {"detail": "username and password required"})
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT id, username, password_hash FROM users WHERE username = %s", (body["username"],))
            row = cur.fetchone()
        if not row or not check_password(body["password"], row["password_hash"]):
            return self.send_json(401, {"detail": "invalid credentials"})
        token = secrets.token_urlsafe(32)
        SESSIONS.set(
            f"user:session:{token}",
            json.dumps({"id": row["id"], "username": row["username"]}),
            ex=SESSION_TTL,
        )
        self.send_json(200, {"access_token": token, "token_type": "bearer", "expires_in": SESSION_TTL})

    def r_list_kbs(self):
        if self.current_user() is None:
            return self.send_json(401, {"detail": "not authenticated"})
        self.send_json(200, list_kbs())

    def r_create_kb(self):
        user = self.current_user()
        if user is None:
            return self.send_json(401, {"detail": "not authenticated"})
        body = self.read_json()
        name = body.get("name") if body else None
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            return self.send_json(422, {"detail": "name required"})
        self.send_json(201, create_kb(name.strip(), user))

    def r_chat(self):
        user = self.current_user()
        if user is None:
            return self.send_json(401, {"detail": "not authenticated"})
        body = self.read_json()
        query = body.get("query") if body else None
        if not isinstance(query, str) or not query.strip():
            return self.send_json(422, {"detail": "query required"})
        kbs = list_kbs()
        self.send_json(200, {"answer": f"{len(kbs)} knowledge bases searched for {query.strip()[:80]!r}",
                             "sources": [kb["name"] for kb in kbs[:3]]})


ROUTES = {
    ("GET", "/api/v1/health/check"): Handler.r_health,
    ("POST", "/api/v1/auth/login"): Handler.r_login,
    ("GET", "/api/v1/knowledge-bases"): Handler.r_list_kbs,
    ("POST", "/api/v1/knowledge-bases"): Handler.r_create_kb,
    ("POST", "/api/v1/chat/completions"): Handler.r_chat,
}


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    init_schema()
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _on_sigterm)
    log.info("layra backend %s listening on :%d (maintenance=%s)", RELEASE, port, env_flag("MAINTENANCE_MODE"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
