"""
MongoDB engine facts, and the command every MongoDB fact and operation runs: a MongoDB
tool (``mongodump``, ``mongorestore``, ``mongosh``) inside the service's container
(`docker compose exec -T`).

The password is read on the host from the stack's env file into ``LAYRA_MONGO_PASSWORD``
and reaches the container in its environment (``-e LAYRA_MONGO_PASSWORD``), never on a
command line nor in a URI. Inside, ``mongodump`` and ``mongorestore`` (Database Tools
100.3 and later) read it as ``password:`` from the YAML file given to ``--config``: a
pipe on ``/dev/fd/3``, written by the shell's builtin ``printf``. ``mongosh`` has no
``--config``: our scripts read ``process.env`` and call ``auth()`` themselves.

The mongosh scripts are JavaScript for mongosh 2.x against MongoDB 7 (``--quiet --norc
--eval``). Their parameters arrive as environment variables, never spliced into the
source, and each prints one JSON line. Each starts with ``// layra-script: <name> v1``:
the sandbox's stand-in mongosh cannot run JavaScript and runs its port of the script so
named instead (sandbox/stack/release-1.0.0/standins/mongo-tools).

Engine protocol: ``MongoFingerprint`` (what the data is), ``operations.mongo.dumped``,
``operations.mongo.shadow_loaded`` + ``operations.mongo.swapped_in`` (restore), and the
deploy's verify step comparing fingerprints.
"""

from __future__ import annotations

import json

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shadow import valid_database
from .shell import PartialFingerprint, WholeOutputFact, host_name, parse_probe, probe
from .text import counted

# The env file key of the password, where a component names none: Layra's own.
PASSWORD_KEY = "MONGODB_ROOT_PASSWORD"

PASSWORD_VARIABLE = "LAYRA_MONGO_PASSWORD"
TOOLS = ("mongodump", "mongorestore", "mongosh")

# Runs `tool args...` in the container. With a password in the environment, the Database
# Tools get it from a YAML config on a pipe (fd 3; stdin stays the caller's, for archives),
# as a single-quoted scalar ('' stands for '). mongosh scripts read it from process.env.
TOOL_SHIM = (
    'tool=$1; shift; '
    'if [ "$tool" = mongosh ] || [ -z "${LAYRA_MONGO_PASSWORD+set}" ]; then exec "$tool" "$@"; fi; '
    "exec 4<&0; "
    "printf \"password: '%s'\\n\" \"$(printf '%s' \"$LAYRA_MONGO_PASSWORD\" | sed \"s/'/''/g\")\" | "
    '{ unset LAYRA_MONGO_PASSWORD; exec "$tool" --config=/dev/fd/3 "$@" 3<&0 0<&4 4<&-; }'
)

# Every script starts here: log in when the stack has a password (see `mongo_tool`).
AUTH_JS = """\
const env = process.env;
if (env.LAYRA_MONGO_PASSWORD !== undefined) {
  db.getSiblingDB(env.LAYRA_MONGO_AUTH_DB).auth(env.LAYRA_MONGO_USER, env.LAYRA_MONGO_PASSWORD);
}
"""


def script(name: str, body: str) -> str:
    """A mongosh script: its marker line, the login, then ``body``."""
    return f"// layra-script: {name} v1\n{AUTH_JS}{body}"


PING_JS = script("ping", "print(EJSON.stringify(db.adminCommand({ping: 1})));\n")

VERSIONS_JS = script("versions", "print(EJSON.stringify({server: db.version()}));\n")

# The copies a restore keeps beside the live collections, in the same database (a rename
# within one database is a metadata change; across databases it copies every document):
# the staged copy being restored, and the displaced copy it replaced.
COPIES = {"live": "", "shadow": "__restore__", "aside": "__pre_restore__"}

# Counts and dbHash's md5 per collection of one copy (its prefix stripped; views and
# system.* left out): the same for the live collections and a copy of them. The live copy
# is every collection without a copy's prefix. dbHash holds a shared lock on the database
# while it reads; a server without it (CommandNotFound, code 59: a mongos) gives no md5,
# and the fact refuses such a fingerprint: counts alone cannot tell a changed document.
FINGERPRINT_JS = script("fingerprint", """\
const target = db.getSiblingDB(env.LAYRA_DB), prefix = env.LAYRA_PREFIX || "";
const copies = (env.LAYRA_COPY_PREFIXES || "").split(" ").filter((each) => each !== "");
const infos = target.getCollectionInfos({}, {nameOnly: true}).filter((info) => prefix !== ""
  ? info.name.startsWith(prefix) : !copies.some((each) => info.name.startsWith(each)));
const names = infos.filter((info) => info.type === "collection" && !info.name.startsWith("system."))
  .map((info) => info.name).sort();
const fingerprint = {exists: infos.length > 0, collections: {}, md5: null};
let hashes = {};
if (names.length > 0) {
  try {
    const hash = target.runCommand({dbHash: 1, collections: names});
    hashes = hash.collections || {};
    fingerprint.md5 = hash.md5 || null;
  } catch (error) {
    if (error.code !== 59) throw error;
  }
}
for (const name of names) {
  fingerprint.collections[name.slice(prefix.length)] = {
    count: target.getCollection(name).countDocuments({}), md5: hashes[name] || null};
}
print(EJSON.stringify(fingerprint));
""")

# Every collection of one copy (never the live one: LAYRA_PREFIX is required).
DROP_JS = script("drop", """\
const target = db.getSiblingDB(env.LAYRA_DB), prefix = env.LAYRA_PREFIX || "";
if (prefix === "") throw new Error("no copy prefix: the live collections are never dropped");
const names = target.getCollectionNames().filter((name) => name.startsWith(prefix));
for (const name of names) target.getCollection(name).drop();
print(EJSON.stringify({ok: 1, dropped: names.length}));
""")

# The names of every collection and view in the database: cheap, no data read.
NAMES_JS = script("names", """\
print(EJSON.stringify({names: db.getSiblingDB(env.LAYRA_DB).getCollectionNames()}));
""")



def mongo_tool(stack: Stack, service: str, user: str, password_key: str | None, auth_db: str,
               tool: str, *args, env: dict | None = None) -> StringCommand:
    """``tool args...`` run once in ``service``, logged in as ``user`` when ``password_key``.

    ``env`` holds the parameters of a mongosh script (``-e NAME=value``: no secrets there).
    """
    if tool not in TOOLS:
        raise ValueError(f"not a MongoDB tool we run: {tool!r}")
    env = dict(env or {})
    export, login = [], []
    if password_key:
        export = [export_from_env_file(stack.env_path, password_key, PASSWORD_VARIABLE)]
        if tool == "mongosh":
            env.update(LAYRA_MONGO_USER=user, LAYRA_MONGO_AUTH_DB=auth_db)
        else:
            login = [QuoteString(f"--username={user}"), QuoteString(f"--authenticationDatabase={auth_db}")]
    env_args = ["-e", PASSWORD_VARIABLE] if password_key else []
    for name, value in env.items():
        env_args += ["-e", QuoteString(f"{name}={value}")]
    return StringCommand(
        *export,
        compose_command(stack, "exec", "-T", *env_args, QuoteString(service),
                        "sh", "-c", QuoteString(TOOL_SHIM), "sh", tool, *login, *args),
    )


def mongosh(stack: Stack, service: str, user: str, password_key: str | None, auth_db: str,
            js: str, **env: str) -> StringCommand:
    """One of our mongosh scripts, its parameters in ``env``; stdin closed."""
    return StringCommand(
        mongo_tool(stack, service, user, password_key, auth_db, "mongosh", "--quiet", "--norc",
                   "--eval", QuoteString(js), env=env),
        "</dev/null",
    )


def database_env(database: str) -> dict:
    """The parameter naming ``database`` to our scripts, once it is a plain name."""
    if not valid_database(database):
        raise ValueError(f"database {database!r} is not a plain name (letters, digits, _; at most 48)")
    return {"LAYRA_DB": database}


def copy_env(database: str, copy: str = "live") -> dict:
    """The parameters naming one copy of ``database`` (see ``COPIES``) to our scripts."""
    if copy not in COPIES:
        raise ValueError(f"not a copy of a database: {copy!r} (one of {', '.join(COPIES)})")
    if copy == "live":
        return {**database_env(database), "LAYRA_COPY_PREFIXES": " ".join(p for p in COPIES.values() if p)}
    return {**database_env(database), "LAYRA_PREFIX": COPIES[copy]}


def fingerprint_command(stack: Stack, database: str, service: str, user: str, password_key: str | None,
                        auth_db: str, copy: str = "live") -> StringCommand:
    """Prints the JSON line `MongoFingerprint` parses."""
    return mongosh(stack, service, user, password_key, auth_db, FINGERPRINT_JS, **copy_env(database, copy))


def json_line(output: list[str], what: str) -> dict:
    """The last line of ``output`` that is a JSON object: a script's answer."""
    for line in reversed(output):
        if line.strip().startswith("{"):
            return json.loads(line)
    raise ValueError(f"mongo {what}: no JSON answer in {output[-3:]!r}")


class MongoFactBase(WholeOutputFact):
    """Facts that ask the MongoDB server of a stack's service."""

    abstract = True

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"


class MongoPing(MongoFactBase):
    """
    Returns whether the server answers ``ping`` once logged in with the stack's credentials.

    .. code:: python

        {"ok": True, "output": '{"ok":1}'}
    """

    def command(self, stack: Stack, service: str = "mongodb", user: str = "root",
                password_key: str | None = PASSWORD_KEY, auth_db: str = "admin") -> StringCommand:
        return probe(mongosh(Stack.of(stack), service, user, password_key, auth_db, PING_JS))

    def process(self, output):
        return parse_probe(output)


class MongoFingerprint(MongoFactBase):
    """
    Returns what one copy of a database holds, independent of its name: each collection's
    document count and ``dbHash`` md5, and dbHash's md5 over them all. A server without
    ``dbHash`` (a mongos) fails the fact: counts alone would call a database whose
    documents changed at the same count unchanged. Views and ``system.*`` collections are left out. ``copy`` is
    ``live`` (default: every collection without a copy's prefix), ``shadow`` (the staged
    ``__restore__<collection>``) or ``aside`` (the displaced ``__pre_restore__<collection>``),
    named without the prefix. ``exists`` is false when the copy has no collection.

    .. code:: python

        {
            "exists": True,
            "collections": {"conversations": {"count": 120, "md5": "5d2f..."}},
            "md5": "a1b2...",
        }
    """

    def command(self, stack: Stack, database: str, service: str = "mongodb", user: str = "root",
                password_key: str | None = PASSWORD_KEY, auth_db: str = "admin", copy: str = "live") -> StringCommand:
        return fingerprint_command(Stack.of(stack), database, service, user, password_key, auth_db, copy)

    def process(self, output):
        answer = json_line(output, "fingerprint")
        collections = {
            name: {"count": int(each["count"]), "md5": each.get("md5")}
            for name, each in (answer.get("collections") or {}).items()
        }
        unhashed = sorted(name for name, each in collections.items() if not each["md5"])
        if unhashed:
            raise PartialFingerprint(
                f"{host_name()}: a MongoDB fingerprint is partial, refused: no dbHash md5 for "
                f"{', '.join(unhashed)} (a server without dbHash, such as a mongos): document counts alone "
                "cannot tell a changed document")
        return {"exists": bool(answer.get("exists")), "collections": collections, "md5": answer.get("md5")}


class MongoCollectionNames(MongoFactBase):
    """
    Returns the names of every collection and view in a database, copies included: no data
    is read.

    .. code:: python

        ["conversations", "__pre_restore__conversations"]
    """

    def command(self, stack: Stack, database: str, service: str = "mongodb", user: str = "root",
                password_key: str | None = PASSWORD_KEY, auth_db: str = "admin") -> StringCommand:
        return mongosh(Stack.of(stack), service, user, password_key, auth_db, NAMES_JS, **database_env(database))

    def process(self, output):
        return sorted(str(name) for name in json_line(output, "collection names")["names"])


def same_data(live: dict | None, snapshot: dict | None) -> bool:
    """Whether two fingerprints describe the same database content: each collection's count
    and md5. (dbHash's md5 over them all adds nothing, and whether it covers the collections'
    names, which differ between a copy and the live collections, is the server's business.)"""
    keys = ("exists", "collections")
    return bool(live) and bool(snapshot) and all(live.get(k) == snapshot.get(k) for k in keys)


def summary(fingerprint: dict) -> str:
    """``3 collections, 120 documents`` (or ``no database``), for plans and checks."""
    if not fingerprint.get("exists"):
        return "no database"
    collections = fingerprint.get("collections", {})
    return (f"{counted(len(collections), 'collection')}, "
            f"{counted(sum(c.get('count', 0) for c in collections.values()), 'document')}")


class MongoVersions(MongoFactBase):
    """
    Returns the server's and the dump tool's versions, for the snapshot's manifest.

    .. code:: python

        {"server": "7.0.14", "dump": "100.9.4"}
    """

    def command(self, stack: Stack, service: str = "mongodb", user: str = "root",
                password_key: str | None = PASSWORD_KEY, auth_db: str = "admin") -> StringCommand:
        stack = Stack.of(stack)
        return StringCommand(
            mongosh(stack, service, user, password_key, auth_db, VERSIONS_JS), "&&",
            mongo_tool(stack, service, user, None, auth_db, "mongodump", "--version"), "</dev/null",
        )

    def process(self, output):
        dump = next((line.split(":", 1)[1].strip() for line in output if line.startswith("mongodump version:")), "")
        return {"server": json_line(output, "versions").get("server", ""), "dump": dump}
