"""
Host data: the defaults (the Layra stack's shape) and reading it into typed values,
rejecting malformed data with the key named before anything runs on a host.
"""

from __future__ import annotations

from pyinfra.api import DeployError

from facts.compose import Stack
from facts.http import FUNCTIONAL_KEYS, BadSetting, functional_spec
from facts.maintenance import settings_problem
from facts.mysql import valid_database
from facts.qdrant import valid_name, valid_url
from facts.redis import valid_volatile
from facts.secrets import KEY_PATTERN
from facts.volumes import valid_service

ENGINES = ("mysql", "mongo", "redis", "qdrant", "volumes")

# The stateful services of Layra's own docker-compose.yml.
LAYRA_COMPONENTS = {
    "mysql": {"engine": "mysql", "service": "mysql", "user": "root",
              "password_key": "MYSQL_ROOT_PASSWORD", "databases": ["layra"]},
    "mongodb": {"engine": "mongo", "service": "mongodb", "user": "root", "auth_db": "admin",
                "password_key": "MONGODB_ROOT_PASSWORD", "databases": ["layra"]},
    "redis": {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD",
              "flush_patterns": ["user:session:*", "kb:cache:*", "embedding:*"], "rdb": False},
    "minio": {"engine": "volumes", "services": ["minio"]},
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd", "milvus-minio"],
               "milvus": {"client_service": "backend", "uri": "http://milvus-standalone:19530"}},
    "kafka": {"engine": "volumes", "services": ["kafka"]},
    "qdrant": {"engine": "qdrant", "service": "qdrant", "url": "http://127.0.0.1:6333", "password_key": "QDRANT_API_KEY"},
}

DEFAULTS = {
    "layra_stack_dir": "/srv/layra",
    "layra_project": "layra",
    "layra_compose_files": ["docker-compose.yml"],
    "layra_env_file": ".env",
    "layra_health_url": "http://127.0.0.1:8090/api/v1/health/check",
    "layra_ready_timeout": 180,
    "layra_disk_paths": None,
    "layra_min_disk_free_pct": 10,
    "layra_max_memory_used_pct": 85,
    "layra_components": LAYRA_COMPONENTS,
    "layra_snapshot_root": "/var/backups/layra",
    # Write quiesce: MAINTENANCE_MODE for this service (env file + recreate), and where the
    # stack has nginx in front, a drop-in file (a path its nginx.conf includes in server {})
    "layra_maintenance": {"service": "backend", "nginx_service": None, "dropin": None},
    # Verify phase 3 (login, knowledge-base list, chat): none until the operator names a user
    "layra_functional_checks": None,
    # The watcher's Kafka consumer lag (kafka-lag rule): {"service", "group", "bootstrap", "command"}
    "layra_kafka": None,
}

KAFKA_KEYS = ("service", "group", "bootstrap", "command")


def setting(data, key: str):
    """A host data value, falling back to DEFAULTS (deploy defaults apply inside @deploy only)."""
    value = data.get(key)
    return DEFAULTS.get(key) if value is None else value


def expect(data, key: str, kind, description: str):
    value = setting(data, key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise DeployError(f"host data {key!r} must be {description}, got {value!r}")
    return value


def stack_from(data) -> Stack:
    files = expect(data, "layra_compose_files", list, "a list of compose file paths")
    if not files or not all(isinstance(name, str) and name for name in files):
        raise DeployError(f"host data 'layra_compose_files' must be a non-empty list of paths, got {files!r}")
    return Stack(
        dir=expect(data, "layra_stack_dir", str, "the stack's directory (a string)"),
        project=expect(data, "layra_project", str, "the compose project name (a string)"),
        files=tuple(files),
        env_file=expect(data, "layra_env_file", str, "the stack's env file (a string)"),
    )


def snapshot_root(data) -> str:
    root = expect(data, "layra_snapshot_root", str, "an absolute directory for snapshots")
    if not root.startswith("/") or "\n" in root or root.rstrip("/") == "":
        raise DeployError(f"host data 'layra_snapshot_root' must be an absolute directory, got {root!r}")
    return root.rstrip("/")


def maintenance_from(data) -> dict | None:
    """``{"service", "nginx_service", "dropin"}``, or None where the host runs no backend
    (``layra_maintenance: False``, e.g. a data host)."""
    settings = setting(data, "layra_maintenance")
    if settings is False:
        return None
    where = "host data 'layra_maintenance'"
    if not isinstance(settings, dict) or not set(settings) <= {"service", "nginx_service", "dropin"}:
        raise DeployError(f"{where} must be a mapping with service, nginx_service and dropin, got {settings!r}")
    service, nginx, dropin = settings.get("service", "backend"), settings.get("nginx_service"), settings.get("dropin")
    problem = settings_problem(service, nginx, dropin)
    if problem:
        raise DeployError(f"{where}: {problem}")
    return {"service": service, "nginx_service": nginx, "dropin": dropin}


def rolling_from(data, quiesce: dict | None) -> dict | None:
    """``at_commit``'s ``rolling``: behind nginx the backend is replaced rolling, so reads are
    served while the stack moves; None without nginx in front."""
    if not quiesce or not quiesce["nginx_service"]:
        return None
    return {"service": quiesce["service"], "nginx_service": quiesce["nginx_service"],
            "timeout": int(setting(data, "layra_ready_timeout"))}


def components_from(data) -> list[dict]:
    """The host's components as a list of ``{"name", "engine", ...}``, validated."""
    raw = expect(data, "layra_components", dict, "a mapping of component name to settings")
    components = []
    for name, settings in raw.items():
        where = f"host data 'layra_components.{name}'"
        if not isinstance(settings, dict):
            raise DeployError(f"{where} must be a mapping, got {settings!r}")
        engine = settings.get("engine")
        if engine not in ENGINES:
            raise DeployError(f"{where}.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if engine == "volumes":
            services = settings.get("services")
            if not isinstance(services, list) or not services or not all(valid_service(s) for s in services):
                raise DeployError(f"{where}.services must be a non-empty list of service names, got {services!r}")
            milvus = settings.get("milvus")
            if milvus is not None and not (isinstance(milvus, dict) and set(milvus) <= {"client_service", "uri"}
                                           and all(isinstance(v, str) and v for v in milvus.values())):
                raise DeployError(f"{where}.milvus must be a mapping with client_service (a service with "
                                  f"pymilvus) and/or uri (strings), got {milvus!r}")
        elif not valid_service(settings.get("service")):
            raise DeployError(f"{where}.service must be the compose service name (a string)")
        if engine in ("mysql", "mongo"):
            databases = settings.get("databases", [])
            if not isinstance(databases, list) or not all(valid_database(d) for d in databases):
                raise DeployError(f"{where}.databases must be a list of plain database names "
                                  f"(letters, digits, _; at most 48), got {databases!r}")
        if engine == "redis":
            patterns = settings.get("flush_patterns", [])
            if not isinstance(patterns, list) or not all(isinstance(p, str) and p and "\n" not in p for p in patterns):
                raise DeployError(f"{where}.flush_patterns must be a list of key patterns, got {patterns!r}")
            if not isinstance(settings.get("rdb", False), bool):
                raise DeployError(f"{where}.rdb must be true (Redis holds state: back it up) or false (cache only)")
            if settings.get("rdb") and not all(valid_volatile(p) for p in patterns):
                raise DeployError(f"{where}.flush_patterns: with rdb true they are also left out of the "
                                  f"fingerprint, so only * and ? wildcards, got {patterns!r}")
        if engine == "qdrant":
            if "url" in settings and not valid_url(settings["url"]):
                raise DeployError(f"{where}.url must be http(s)://host[:port], got {settings['url']!r}")
            collections = settings.get("collections", [])
            if not isinstance(collections, list) or not all(valid_name(c) for c in collections):
                raise DeployError(f"{where}.collections must be a list of collection names "
                                  f"(letters, digits, _.-), got {collections!r}")
        for text_key in ("user", "auth_db"):
            if text_key in settings and not (isinstance(settings[text_key], str) and settings[text_key]
                                             and "\n" not in settings[text_key]):
                raise DeployError(f"{where}.{text_key} must be a name on one line, got {settings[text_key]!r}")
        key = settings.get("password_key")
        if key is not None and not (isinstance(key, str) and KEY_PATTERN.match(key)):
            raise DeployError(f"{where}.password_key must name a variable of the env file, got {key!r}")
        components.append({"name": name, **settings})
    return components


def functional_checks_from(data) -> dict | None:
    """Verify phase 3's settings, ``{"base_url", "login", "checks", "timeout"}`` with the
    defaults filled in (``checks.functionality``'s arguments), or None where none are set."""
    settings = setting(data, "layra_functional_checks")
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise DeployError(f"host data 'layra_functional_checks' must be a mapping with "
                          f"{', '.join(FUNCTIONAL_KEYS)}, got {settings!r}")
    try:
        return functional_spec(settings)
    except BadSetting as error:
        raise DeployError(f"host data 'layra_functional_checks.{error.key}' {error.what}") from None


def kafka_from(data) -> dict | None:
    """Where the watcher reads Kafka consumer lag, or None (the kafka-lag rule is then off)."""
    kafka = setting(data, "layra_kafka")
    if kafka is None:
        return None
    if not isinstance(kafka, dict) or not set(kafka) <= set(KAFKA_KEYS) or not valid_service(kafka.get("service")):
        raise DeployError(f"host data 'layra_kafka' must be a mapping with service (the compose service) and "
                          f"optionally {', '.join(KAFKA_KEYS[1:])}, got {kafka!r}")
    for key in KAFKA_KEYS[1:]:
        if key in kafka and not (isinstance(kafka[key], str) and kafka[key] and not set(kafka[key]) & set("\n\r")):
            raise DeployError(f"host data 'layra_kafka.{key}' must be a string on one line, got {kafka[key]!r}")
    return dict(kafka)


def metrics_args(data) -> dict:
    """`facts.metrics.HostMetrics`' arguments from host data: what the watcher polls."""
    stack = stack_from(data)
    paths = setting(data, "layra_disk_paths") or [stack.dir, snapshot_root(data), "/var/lib/docker"]
    return {"stack": stack, "health_url": expect(data, "layra_health_url", str, "the backend's health URL"),
            "disk_paths": list(paths), "kafka": kafka_from(data)}
