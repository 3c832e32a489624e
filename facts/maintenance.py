"""
Facts about a stack's maintenance mode (write quiesce): what ``MAINTENANCE_MODE`` the env
file sets, what each running container of the backend service was created with, and
whether the nginx drop-in that answers writes with 503 is in place.

Nothing else leaves the host: of the env file only the ``MAINTENANCE_MODE`` line is read,
and of a container's environment only its ``MAINTENANCE_MODE`` entry, picked out by
``docker inspect``'s template itself (the other entries hold passwords).
"""

from __future__ import annotations

import hashlib
import posixpath

from pyinfra.api import QuoteString, StringCommand

from .compose import Stack, valid_service
from .shell import WholeOutputFact, section, split_sections

KEY = "MAINTENANCE_MODE"

# The nginx drop-in, included inside `server { }`: `if` with `set`/`return` is safe there.
# Health and auth paths stay open to writes (the runbook's rule: logins keep working).
# Its sha256 is how MaintenanceState tells our file from anyone else's.
DROPIN_CONTENT = (
    "# layra-rollback maintenance mode: writes answer 503, reads are served. "
    "Written and removed by maintenance.mode.\n"
    'set $layra_maintenance "";\n'
    'if ($request_method ~ ^(POST|PUT|PATCH|DELETE)$) { set $layra_maintenance "write"; }\n'
    'if ($uri ~ ^/api/v1/(health|auth)(/|$)) { set $layra_maintenance ""; }\n'
    'if ($layra_maintenance = "write") { return 503 '
    "'{\"detail\":\"System undergoing maintenance. Please try again in a few minutes.\"}'; }\n"
)
DROPIN_SHA256 = hashlib.sha256(DROPIN_CONTENT.encode()).hexdigest()
DROPIN_MARKER = DROPIN_CONTENT.splitlines()[0]

# One line per container: its id and its MAINTENANCE_MODE entry (nothing when it has none).
ENV_TEMPLATE = (
    "{{.Id}} {{range .Config.Env}}"
    '{{if eq (index (split . "=") 0) "' + KEY + '"}}{{.}}{{end}}'
    "{{end}}"
)


def valid_dropin(dropin) -> bool:
    """A drop-in path we write to: one line, no ``..`` component."""
    return (
        isinstance(dropin, str) and bool(dropin.strip("/")) and not any(c in dropin for c in "\n\r\0")
        and ".." not in dropin.split("/")
    )


def settings_problem(service, nginx_service, dropin) -> str | None:
    """What is wrong with maintenance settings, in words, or None: one check for the
    operation and for host data."""
    if not valid_service(service):
        return f"service must be a compose service name, got {service!r}"
    if nginx_service is not None and not valid_service(nginx_service):
        return f"nginx_service must be a compose service name or None, got {nginx_service!r}"
    if (nginx_service is None) != (dropin is None):
        return (f"nginx_service and dropin go together (the nginx service, and a file its "
                f"configuration includes in server {{}}), got {nginx_service!r} and {dropin!r}")
    if dropin is not None and not valid_dropin(dropin):
        return f"dropin must be a file path on one line without '..', got {dropin!r}"
    return None


def dropin_path(stack: Stack, dropin: str) -> str:
    """The drop-in's path on the host: relative to the stack directory unless absolute."""
    return dropin if dropin.startswith("/") else posixpath.join(stack.dir, dropin)


def running_ids(stack: Stack, service: str) -> StringCommand:
    """``ids=...``: the service's running containers (one-off `run` containers excluded)."""
    return StringCommand(
        "ids=$(docker", "ps", "-q",
        "--filter", QuoteString(f"label=com.docker.compose.project={stack.project}"),
        "--filter", QuoteString(f"label=com.docker.compose.service={service}"),
        "--filter", "label=com.docker.compose.oneoff=False", ")",
    )


def container_values_command() -> StringCommand:
    """``<id> MAINTENANCE_MODE=<value>`` for each container in ``$ids``."""
    return StringCommand("docker", "inspect", "--format", QuoteString(ENV_TEMPLATE), "$ids")


def env_value(line: str) -> str:
    """The value of a ``KEY=value`` line as compose reads it: one pair of quotes removed,
    an unquoted value's `` #comment`` dropped."""
    value = line.split("=", 1)[1].strip() if "=" in line else ""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value.split(" #", 1)[0].strip()


class MaintenanceFactBase(WholeOutputFact):
    """Facts about a stack's maintenance mode, read with docker and coreutils on the host."""

    abstract = True

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"


class MaintenanceState(MaintenanceFactBase):
    """
    Returns the ``MAINTENANCE_MODE`` of the stack's env file (its last such line) and of
    each running container of ``service`` (short id), as written (quotes removed; ``None``
    where unset), and whether the nginx drop-in at ``dropin`` (relative to the stack
    directory unless absolute) is ours, someone else's or absent (``None`` without one).

    .. code:: python

        {
            "env_file": "true",                       # "false", ..., None
            "containers": {"4f2a9c1d0e3b": "true"},   # {} when none runs
            "dropin": "ours",                         # "absent", "other", None
        }
    """

    def command(self, stack: Stack, service: str, dropin: str | None = None) -> StringCommand:
        stack = Stack.of(stack)
        parts = [
            section("env_file"), ";",
            "grep", QuoteString(f"^{KEY}="), QuoteString(stack.env_path), "2>/dev/null | tail -n 1;",
            section("containers"), ";",
            running_ids(stack, service), "|| exit 1;",
            '[ -z "$ids" ] ||', container_values_command(), "|| exit 1",
        ]
        if dropin is not None:
            parts += [
                ";", section("dropin"), ";",
                StringCommand("f=", QuoteString(dropin_path(stack, dropin)), _separator=""), ";",
                'if [ -e "$f" ]; then sha256sum <"$f" | cut -c 1-64; else echo absent; fi',
            ]
        return StringCommand(*parts)

    def process(self, output):
        sections = split_sections(output)
        env_lines = [line for line in sections.get("env_file", []) if line.strip()]
        containers = {}
        for line in sections.get("containers", []):
            container_id, _, entry = line.strip().partition(" ")
            if container_id:
                containers[container_id[:12]] = env_value(entry) if entry else None
        state = {
            "env_file": env_value(env_lines[-1]) if env_lines else None,
            "containers": containers,
            "dropin": None,
        }
        if "dropin" in sections:
            found = "".join(sections["dropin"]).strip()
            state["dropin"] = "absent" if found == "absent" else "ours" if found == DROPIN_SHA256 else "other"
        return state
