"""
Propose an inventory's ``layra_components`` from a compose file (``layra-rollback components``).

Plain Python over the parsed YAML: nothing runs, no env file or host is read, so a
credential is named only where the file shows the ``${VAR}`` that feeds it. Each service
is classified by its image (by its name when the image says nothing):

- mysql/mariadb/percona, mongo, redis/valkey, qdrant -> that engine, one service each;
- milvus, etcd, minio, kafka, zookeeper -> the volumes engine, joined into sets: connected
  over ``depends_on`` and shared named volumes among these services only (Milvus, its
  etcd and its MinIO stop, archive and restore together; a MySQL that Milvus depends on
  does not join);
- anything else with a named volume -> not classified, its volumes named;
- the rest -> stateless. Bind mounts are noted but make no service stateful: they are
  mostly configuration from the stack's checkout, which a rollback reverts with git, and
  the volumes engine archives named volumes only.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facts.mysql import valid_database

from .config import ENGINES, LAYRA_COMPONENTS

# The last segment of an image's repository -> what it runs.
KINDS = {
    "mysql": "mysql", "mysql-server": "mysql", "mariadb": "mysql", "percona": "mysql", "percona-server": "mysql",
    "mongo": "mongo", "mongodb": "mongo", "mongodb-community-server": "mongo",
    "redis": "redis", "redis-stack-server": "redis", "valkey": "redis",
    "qdrant": "qdrant",
    "milvus": "milvus", "etcd": "etcd", "minio": "minio",
    "kafka": "kafka", "cp-kafka": "kafka", "zookeeper": "zookeeper", "cp-zookeeper": "zookeeper",
}
VOLUME_KINDS = ("milvus", "kafka", "minio", "etcd", "zookeeper")  # the first present leads (names) a set
LAYRA_NAMES = {"mysql": "mysql", "mongo": "mongodb", "redis": "redis", "qdrant": "qdrant",
               "milvus": "milvus", "kafka": "kafka", "minio": "minio"}
NAMED_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# The whole value is one compose interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $VAR.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[-:?+][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ComposeError(ValueError):
    """The compose file cannot be read as one (missing, not YAML, no services)."""


@dataclass
class Service:
    name: str
    image: str | None
    build: str | None
    volumes: list[str]  # named volumes
    binds: list[str]    # "host path:container path"
    depends: list[str]
    env: dict[str, str]
    words: list[str]    # the command, split into words
    kind: str | None = None
    by_name: bool = False

    @property
    def origin(self) -> str:
        return f"image {self.image}" if self.image else f"build {self.build}" if self.build else "no image"


@dataclass
class Proposal:
    components: dict[str, dict] = field(default_factory=dict)
    why: dict[str, list[str]] = field(default_factory=dict)  # component -> reasons
    todo: list[str] = field(default_factory=list)            # what the file cannot say
    unclassified: dict[str, str] = field(default_factory=dict)  # "service, ..." -> why not
    stateless: list[str] = field(default_factory=list)
    binds: dict[str, list[str]] = field(default_factory=dict)


# Reading the file


def load(path: Path) -> list[Service]:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ComposeError(f"cannot read {path}: {error.strerror or error}")
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ComposeError(f"{path} is not YAML{where}: {getattr(error, 'problem', None) or error}")
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict) or not services:
        raise ComposeError(f"{path} has no `services:` mapping: not a compose file")
    parsed = []
    for name, spec in services.items():
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise ComposeError(f"{path}: service {name!r} is not a mapping")
        try:
            parsed.append(service_of(str(name), spec))
        except (AttributeError, TypeError, ValueError) as error:  # a field of the wrong shape
            raise ComposeError(f"{path}: service {name!r} is not valid compose: {error}")
    return parsed


def service_of(name: str, spec: dict) -> Service:
    build = spec.get("build")
    service = Service(
        name=name, image=str(spec["image"]) if spec.get("image") else None,
        build=build.get("context", ".") if isinstance(build, dict) else build,
        volumes=[], binds=[], depends=list(spec.get("depends_on") or []), env=environment(spec),
        words=command_words(spec.get("command")),
    )
    for mount in spec.get("volumes") or []:
        if isinstance(mount, dict):
            source, target, named = mount.get("source"), mount.get("target"), mount.get("type") == "volume"
        else:
            source, _, target = str(mount).partition(":")
            source, named = (source, NAMED_VOLUME.fullmatch(source)) if target else (None, False)
        if source and named:
            service.volumes.append(source)
        elif source:
            service.binds.append(f"{source}:{target}")
    image_kind = KINDS.get(re.split(r"[:@]", service.image.rsplit("/", 1)[-1])[0].lower()) if service.image else None
    service.kind = image_kind or KINDS.get(name.lower())
    service.by_name = not image_kind and service.kind is not None
    return service


def environment(spec: dict) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in map(str, env))
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def command_words(command) -> list[str]:
    """The command's words; a shell string inside it (``sh -c "..."``) is split too."""
    if isinstance(command, list):
        parts = [str(part) for part in command]
    else:
        try:
            parts = shlex.split(str(command or ""))
        except ValueError:  # unbalanced quotes: words are enough to find a flag
            parts = str(command).split()
    return [word for part in parts for word in (command_words(part) if " " in part else [part])]


def variable(value: str | None) -> str | None:
    """``"${MYSQL_ROOT_PASSWORD}" -> "MYSQL_ROOT_PASSWORD"``: the env file key a value comes from."""
    match = INTERPOLATION.fullmatch(value or "")
    return match and (match.group(1) or match.group(2))


def after(words: list[str], flag: str) -> str | None:
    return words[words.index(flag) + 1] if flag in words[:-1] else None


# One component per engine service


def password(service: Service, sources: dict, settings: dict, why: list[str], todo: list[str]):
    """``password_key`` from the first of ``sources`` (where -> value) that is one ``${VAR}``.

    Only the variable's name is used: a literal password is never copied or printed.
    """
    for source, value in sources.items():
        if key := variable(value):
            settings["password_key"] = key
            why.append(f"password_key {key} (feeds {source})")
            return
    todo.append(f"{service.name}: no ${{VAR}} feeds {' or '.join(sources)}: add password_key "
                f"(the env file key holding the password) if it has one")


def env_of(service: Service, *names: str) -> dict:
    return {name: service.env.get(name) for name in names}


def mysql(service: Service, settings: dict, why: list[str], todo: list[str]):
    settings["user"] = "root"  # whose password MYSQL_ROOT_PASSWORD is
    password(service, env_of(service, "MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD"), settings, why, todo)
    name = next((n for n in ("MYSQL_DATABASE", "MARIADB_DATABASE") if n in service.env), "MYSQL_DATABASE")
    value = service.env.get(name)
    settings["databases"] = [value] if valid_database(value) else []
    if settings["databases"]:
        why.append(f"databases from {name}")
    else:
        told = f"{name} is {value!r}, set outside this file" if value else f"no literal {name}"
        todo.append(f"{service.name}: databases: {told}: name the databases to back up (none are until you do)")


def mongo(service: Service, settings: dict, why: list[str], todo: list[str]):
    password(service, env_of(service, "MONGO_INITDB_ROOT_PASSWORD", "MONGODB_ROOT_PASSWORD"), settings, why, todo)


def redis(service: Service, settings: dict, why: list[str], todo: list[str]):
    given = after(service.words, "--requirepass")
    if given and given.startswith("$$"):  # the container's own variable: what feeds it?
        given = service.env.get(given[2:].strip("{}"))
    password(service, {"--requirepass": given, **env_of(service, "REDIS_PASSWORD", "VALKEY_PASSWORD")},
             settings, why, todo)
    settings["flush_patterns"] = list(LAYRA_COMPONENTS["redis"]["flush_patterns"])
    why.append("flush_patterns: Layra's caches (a compose file cannot say which keys are caches)")
    given = {flag: after(service.words, flag) for flag in ("--appendonly", "--save")}
    persists = [f"{flag} {value}" for flag, value in given.items() if value not in (None, "", "no")]
    settings["rdb"] = bool(service.volumes and persists)
    if settings["rdb"]:
        why.append(f"rdb: true: {' '.join(persists)} keeps its data in volume {', '.join(service.volumes)}: state")
    elif service.volumes:
        why.append(f"rdb: false: volume {', '.join(service.volumes)} but no --appendonly/--save: treated as a "
                   f"cache (set rdb: true if it holds state)")
    else:
        why.append("rdb: false: no named volume, so a cache")


def qdrant(service: Service, settings: dict, why: list[str], todo: list[str]):
    why.append("per-collection snapshots through its REST API, Qdrant running")
    if service.volumes:
        why.append(f"or {{engine: volumes, services: [{service.name}]}} when it may stop "
                   f"(volume {', '.join(service.volumes)})")


ENGINE_OF = {"mysql": mysql, "mongo": mongo, "redis": redis, "qdrant": qdrant}


# Volume sets


def groups(services: list[Service], joined) -> list[list[Service]]:
    """Connected components of ``services`` under ``joined(a, b)``, in compose order."""
    found, left = [], list(services)
    while left:
        group = [left.pop(0)]
        for member in group:  # grows while it is walked
            near = [other for other in left if joined(member, other)]
            group += near
            left = [other for other in left if other not in near]
        found.append(sorted(group, key=services.index))
    return found


def links(a: Service, b: Service) -> list[str]:
    """Why two services keep one data set: one depends on the other, or they share a volume."""
    return ((["depends_on"] if b.name in a.depends or a.name in b.depends else [])
            + [f"shared volume {v}" for v in sorted(set(a.volumes) & set(b.volumes))])


def volume_set(members: list[Service], everyone: list[Service]) -> tuple[dict, list[str]]:
    lead, settings, why = members[0], {"engine": "volumes", "services": [m.name for m in members]}, []
    others = [m.name for m in members[1:]]
    joined = sorted({w for a in members for b in members if a is not b for w in links(a, b)})
    volumes = ", ".join(sorted({v for m in members for v in m.volumes}))
    why.append(f"{lead.origin} -> volumes set with {', '.join(others)} ({', '.join(joined)}); volumes {volumes}"
               if others else f"{lead.origin} -> volumes engine; volume {volumes}")
    client = next((s for s in everyone if lead.name in s.depends and any("MILVUS" in k for k in s.env)), None)
    if lead.kind == "milvus" and client:
        settings["milvus"] = {"client_service": client.name, "uri": f"http://{lead.name}:19530"}
        why.append(f"milvus: row counts through {client.name} (depends on {lead.name}, has MILVUS_* settings; "
                   f"it needs pymilvus)")
    return settings, why


def volume_components(services: list[Service], unclassified: dict[str, str]) -> list[tuple]:
    """``(Layra name, lead service, settings, why)`` per volume set; sets with nothing to archive go to
    ``unclassified``."""
    found = []
    for members in groups([s for s in services if s.kind in VOLUME_KINDS], lambda a, b: bool(links(a, b))):
        lead = min(members, key=lambda m: VOLUME_KINDS.index(m.kind))  # the first of its kind
        members = [lead] + [m for m in members if m is not lead]
        if any(m.volumes for m in members):
            found.append((LAYRA_NAMES.get(lead.kind), lead, *volume_set(members, services)))
            continue
        binds = [b for m in members for b in m.binds]
        unclassified[", ".join(m.name for m in members)] = (
            f"{', '.join(m.origin for m in members)} -> volumes engine, but no named volume to archive"
            + (f" (bind mounts {', '.join(binds)} are not archived)" if binds else
               " (its data does not outlive the container)"))
    return found


# The proposal


def engine_component(service: Service, todo: list[str]) -> tuple:
    """``(Layra name, service, settings, why)`` for a service an engine of its own backs up."""
    settings = {"engine": service.kind, "service": service.name}
    why = [f"{service.origin} -> {service.kind} engine" + (" (by its service name)" if service.by_name else "")]
    ENGINE_OF[service.kind](service, settings, why, todo)
    return LAYRA_NAMES[service.kind], service, settings, why


def propose(services: list[Service]) -> Proposal:
    proposal = Proposal(binds={s.name: s.binds for s in services if s.binds})
    found = [engine_component(s, proposal.todo) for s in services if s.kind in ENGINE_OF]
    found += volume_components(services, proposal.unclassified)
    taken = Counter(name for name, *_ in found)  # a Layra name shared by two components names neither
    for name, lead, settings, why in sorted(found, key=lambda f: (ENGINES.index(f[2]["engine"]),
                                                                  services.index(f[1]))):
        name = name if name and taken[name] == 1 else lead.name
        proposal.components[name], proposal.why[name] = settings, why
    others = [s for s in services if s.kind is None]
    for group in groups([s for s in others if s.volumes], lambda a, b: bool(set(a.volumes) & set(b.volumes))):
        names = ", ".join(s.name for s in group)
        volumes = ", ".join(dict.fromkeys(v for s in group for v in s.volumes))
        proposal.unclassified[names] = (
            f"no engine I know ({', '.join(s.origin for s in group)}); named volume {volumes}; "
            f"to archive (stops {'them all' if len(group) > 1 else 'it'} meanwhile): "
            f"{{engine: volumes, services: [{names}]}}")
    proposal.stateless = [s.name for s in others if not s.volumes]
    return proposal


def comments(proposal: Proposal) -> list[str]:
    """What the map cannot say, as ``# `` lines to follow it."""
    lines = []
    sections = [
        ("To fill in (the compose file does not say):", proposal.todo),
        ("Could not classify (exit 3):", [f"{s}: {why}" for s, why in proposal.unclassified.items()]),
        ("Stateless (no named volume, nothing to back up):",
         [", ".join(proposal.stateless)] if proposal.stateless else []),
        ("Bind mounts (host paths, never archived; a rollback brings back only what git holds):",
         [f"{s}: {', '.join(binds)}" for s, binds in proposal.binds.items()]),
        ("Why:", [f"{name}: {'; '.join(why)}" for name, why in proposal.why.items()]),
    ]
    for title, entries in sections:
        if entries:
            lines += [f"# {title}"] + [f"#   {entry}" for entry in entries]
    return lines


class Dumper(yaml.SafeDumper):
    """Block mappings, lists on one line: ``services: [milvus-standalone, milvus-etcd]``."""


Dumper.add_representer(list, lambda dumper, items: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", items, flow_style=True))


def as_yaml(proposal: Proposal) -> str:
    return yaml.dump({"layra_components": proposal.components}, Dumper=Dumper, sort_keys=False,
                     default_flow_style=False, width=1000)
