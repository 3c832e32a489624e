"""
Host data: the defaults (the Layra stack's shape) and reading it into typed values,
rejecting malformed data with the key named before anything runs on a host.
"""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import DeployError

from facts.compose import EnvSettings, Stack, valid_service
from facts.http import FUNCTIONAL_KEYS, BadSetting, functional_spec
from facts.maintenance import settings_problem
from facts.metrics import kafka_spec
from facts.shell import absolute_path
from facts.snapshots import ROOT_RULE, valid_root

from .engines import ENGINES, Component, SettingError
from .engines.base import NAME_RULE, one_line
from .engines.redis import LAYRA_CACHES

# The stateful services of Layra's own docker-compose.yml, their users and database names
# read from Layra's own env-file keys (each engine's own defaults fill in the rest: service
# names, password keys).
LAYRA_COMPONENTS = {
    "mysql": {"engine": "mysql", "databases_key": "MYSQL_DATABASE"},
    "mongodb": {"engine": "mongo", "user_key": "MONGODB_ROOT_USERNAME", "databases_key": "MONGODB_DB"},
    "redis": {"engine": "redis", "flush_patterns": [dict(entry) for entry in LAYRA_CACHES]},
    "minio": {"engine": "volumes", "services": ["minio"]},
    "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd", "milvus-minio"],
               "milvus": {"client_service": "backend", "uri": "http://milvus-standalone:19530"}},
    "kafka": {"engine": "volumes", "services": ["kafka"]},
    "qdrant": {"engine": "qdrant"},
}

DEFAULTS = {
    "layra_stack_dir": "/srv/layra",
    "layra_project": "layra",
    "layra_compose_files": ["docker-compose.yml"],
    "layra_env_file": ".env",
    "layra_health_url": "http://127.0.0.1:8090/api/v1/health/check",
    "layra_ready_timeout": 180,
    # How long a run waits for the data-changing steps of an earlier run (killed, or cut off
    # from the host: they go on running there) to end before it refuses, naming them
    "layra_work_wait": 60,
    # MiB a rollback keeps free on each filesystem beyond the copies it stages there (a
    # database server whose disk fills stops serving)
    "layra_staging_headroom_mb": 64,
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

# A compose project name, as docker compose takes it.
PROJECT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
# A URL fetched on the host: http(s), nothing a shell or a log line would split on.
HEALTH_URL = re.compile(r"^https?://[^\s'\"`\\]+\Z")


def every_host_reached(state):
    """Refuse the run on every host when one of the inventory could not be reached: a fleet
    half rolled back (or half backed up) is worse than none. ``--limit`` leaves a host out."""
    unreachable = sorted(host.name for host in state.failed_hosts)
    if unreachable:
        raise DeployError(f"{', '.join(unreachable)} could not be reached (see above): nothing was done on any "
                          "host. Bring it back, or leave it out knowingly with --limit")


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
    """The stack: where it is and how compose addresses it.

    Every deploy reads it before anything else, so the host's plain settings are checked
    here too (``settings_checked``): a malformed one is refused, naming the key, before the
    first fact of any deploy, by the nightly backup rather than the incident's rollback.
    """
    files = expect(data, "layra_compose_files", list, "a list of compose file paths")
    if not files or not all(one_line(name) for name in files):
        raise DeployError(f"host data 'layra_compose_files' must be a non-empty list of paths, got {files!r}")
    stack_dir = expect(data, "layra_stack_dir", str, "the stack's directory (a string)")
    if not absolute_path(stack_dir):
        raise DeployError(f"host data 'layra_stack_dir' must be the stack's directory (an absolute path on one "
                          f"line), got {stack_dir!r}")
    project = expect(data, "layra_project", str, "the compose project name (a string)")
    if not PROJECT_PATTERN.match(project):
        raise DeployError(f"host data 'layra_project' must be a compose project name (a-z 0-9 _ -, starting with "
                          f"a letter or digit), got {project!r}")
    env_file = expect(data, "layra_env_file", str, "the stack's env file (a string)")
    if not one_line(env_file):
        raise DeployError(f"host data 'layra_env_file' must be the stack's env file (a path on one line), "
                          f"got {env_file!r}")
    settings_checked(data)
    return Stack(dir=stack_dir, project=project, files=tuple(files), env_file=env_file)


def settings_checked(data):
    """Check the host's plain settings, whichever deploy uses them: DeployError naming the
    first malformed one."""
    ready_timeout(data)
    work_wait(data)
    verify_settings(data)
    kafka_from(data)
    snapshot_root(data)


def ready_timeout(data) -> int:
    """``layra_ready_timeout``: how long the stack's services may take to run and be healthy."""
    value = setting(data, "layra_ready_timeout")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 86400:
        raise DeployError(f"host data 'layra_ready_timeout' must be a whole number of seconds from 1 to 86400 "
                          f"(e.g. 180), got {value!r}")
    return value


def work_wait(data) -> int:
    """``layra_work_wait``: seconds to wait for an earlier run's steps still running on the host."""
    value = setting(data, "layra_work_wait")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
        raise DeployError(f"host data 'layra_work_wait' must be a whole number of seconds from 0 to 86400 "
                          f"(e.g. 60), got {value!r}")
    return value


def staging_headroom(data) -> int:
    """``layra_staging_headroom_mb``: bytes kept free beyond the staged copies, per filesystem."""
    value = setting(data, "layra_staging_headroom_mb")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**30:
        raise DeployError(f"host data 'layra_staging_headroom_mb' must be a whole number of MiB from 0 "
                          f"(e.g. 64), got {value!r}")
    return value * 2**20


def percent(data, key: str) -> float:
    value = setting(data, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise DeployError(f"host data {key!r} must be a percentage (a number from 0 to 100), got {value!r}")
    return float(value)


def verify_settings(data) -> dict:
    """Verify phases 1 and 2's settings (``checks.infrastructure``'s disk paths and thresholds,
    ``checks.connectivity``'s health URL)."""
    paths = setting(data, "layra_disk_paths")
    if paths is not None and not (isinstance(paths, (list, tuple)) and paths
                                  and all(absolute_path(path) for path in paths)):
        raise DeployError(f"host data 'layra_disk_paths' must be a non-empty list of absolute paths (or unset: "
                          f"the stack's directory), got {paths!r}")
    url = setting(data, "layra_health_url")
    if not (isinstance(url, str) and HEALTH_URL.match(url)):
        raise DeployError(f"host data 'layra_health_url' must be the backend's health URL (http(s)://..., no "
                          f"whitespace or quotes), got {url!r}")
    return {"disk_paths": list(paths) if paths else None,
            "min_disk_free_pct": percent(data, "layra_min_disk_free_pct"),
            "max_memory_used_pct": percent(data, "layra_max_memory_used_pct"),
            "health_url": url}


def snapshot_root(data) -> str:
    root = expect(data, "layra_snapshot_root", str, "an absolute directory for snapshots")
    if not valid_root(root):
        raise DeployError(f"host data 'layra_snapshot_root' must be {ROOT_RULE}, got {root!r}")
    return root.rstrip("/")


def maintenance_from(data) -> dict | None:
    """``{"service", "nginx_service", "dropin"}``, or None where the host runs no backend
    (``layra_maintenance: False``, e.g. a data host)."""
    settings = setting(data, "layra_maintenance")
    if settings is False:
        return None
    where = "host data 'layra_maintenance'"
    if not isinstance(settings, dict) or not set(settings) <= {"service", "nginx_service", "dropin", "backend_writes"}:
        raise DeployError(f"{where} must be a mapping with service, nginx_service, dropin and backend_writes, "
                          f"got {settings!r}")
    service, nginx, dropin = settings.get("service", "backend"), settings.get("nginx_service"), settings.get("dropin")
    problem = settings_problem(service, nginx, dropin)
    if problem:
        raise DeployError(f"{where}: {problem}")
    if not isinstance(settings.get("backend_writes", True), bool):
        raise DeployError(f"{where}.backend_writes must be true (the backend writes on its own too: consumers, "
                          f"schedulers) or false (only the requests nginx passes), got {settings['backend_writes']!r}")
    return {"service": service, "nginx_service": nginx, "dropin": dropin}


def writes_stop_at_nginx(data, quiesce: dict | None) -> bool:
    """Whether maintenance on stops every write at nginx alone, so that the rollback's window
    does not wait for the backend's replacement: nginx in front, and a backend that writes
    only on the requests nginx passes (``layra_maintenance.backend_writes: false``). Layra's
    backend runs Kafka consumers in its process: the default, true, replaces it."""
    settings = setting(data, "layra_maintenance")
    return bool(quiesce and quiesce["nginx_service"] and isinstance(settings, dict)
                and settings.get("backend_writes") is False)


def rolling_from(data, quiesce: dict | None) -> dict | None:
    """``at_commit``'s ``rolling``: behind nginx the backend is replaced rolling, so reads are
    served while the stack moves; None without nginx in front."""
    if not quiesce or not quiesce["nginx_service"]:
        return None
    return {"service": quiesce["service"], "nginx_service": quiesce["nginx_service"],
            "timeout": ready_timeout(data)}


def components_from(data) -> list[Component]:
    """The host's components, each its engine's settings (defaults filled in), validated:
    a malformed one is refused naming its key."""
    raw = expect(data, "layra_components", dict, "a mapping of component name to settings")
    components = []
    for name, settings in raw.items():
        if not valid_service(name):
            raise DeployError(f"host data 'layra_components' names a component {name!r}: a component name must be "
                              f"{NAME_RULE} (it names the snapshot's files)")
        where = f"host data 'layra_components.{name}"
        if not isinstance(settings, dict):
            raise DeployError(f"{where}' must be a mapping, got {settings!r}")
        engine = ENGINES.get(settings.get("engine"))
        if engine is None:
            raise DeployError(f"{where}.engine' must be one of {', '.join(ENGINES)}, got {settings.get('engine')!r}")
        try:
            components.append(engine.component.from_data(name, settings))
        except SettingError as error:
            raise DeployError(f"{where}.{error.key}' {error.what}") from None
    return components


def with_env_settings(stack: Stack, components: list[Component]) -> list[Component]:
    """The components with the settings they read from the stack's env file (``user_key``,
    ``databases_key``) filled in: one fact for every key. Called once all host data is
    checked (a refusal comes before any command runs on a host)."""
    keys = sorted({key for component in components for key in component.env_keys()})
    if not keys:
        return components
    values = host.get_fact(EnvSettings, stack=stack, keys=keys)
    found = []
    for component in components:
        try:
            found.append(component.with_env(values, stack.env_path))
        except SettingError as error:
            raise DeployError(f"host data 'layra_components.{component.name}.{error.key}' {error.what}") from None
    return found


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
    try:
        kafka_spec(kafka)
    except ValueError as error:  # "kafka.bootstrap must be ...": the key, then what it must be
        key, _, what = str(error).partition(" ")
        raise DeployError(f"host data 'layra_{key}' {what}") from None
    return dict(kafka)


def metrics_args(data) -> dict:
    """`facts.metrics.HostMetrics`' arguments from host data: what the watcher polls."""
    stack = stack_from(data)
    checked = verify_settings(data)
    paths = checked["disk_paths"] or [stack.dir, snapshot_root(data), "/var/lib/docker"]
    return {"stack": stack, "health_url": checked["health_url"], "disk_paths": list(paths), "kafka": kafka_from(data)}
