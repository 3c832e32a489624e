"""
Facts about the stack's Docker Compose project: its services and containers, and the
configuration a target commit would bring.

Every fact and operation here addresses the project the same way, through
`compose_command`: project directory, project name, compose files and env file.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass

import yaml
from pyinfra.api import QuoteString, StringCommand

from .secrets import KEY_PATTERN
from .shell import WholeOutputFact, assign, script, section, split_sections
from .stack import git_command

CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
# A compose service's name, as our commands take it: nothing a shell or a path would split on.
SERVICE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")

# Only the fields we need, so that container env (passwords) never leaves the host.
CONTAINER_TEMPLATE = (
    '{"service":{{json (index .Config.Labels "com.docker.compose.service")}},'
    '"name":{{json .Name}},"state":{{json .State.Status}},'
    '"health":{{if .State.Health}}{{json .State.Health.Status}}{{else}}""{{end}},'
    '"health_log":{{if .State.Health}}{{json .State.Health.Log}}{{else}}[]{{end}},'
    '"image":{{json .Image}},'
    '"config_hash":{{json (index .Config.Labels "' + CONFIG_HASH_LABEL + '")}}}'
)


@dataclass(frozen=True)
class Stack:
    """Where a Compose stack lives on a host and how `docker compose` addresses it."""

    dir: str
    project: str = "layra"
    files: tuple[str, ...] = ("docker-compose.yml",)
    env_file: str = ".env"

    def __post_init__(self):
        object.__setattr__(self, "files", tuple(self.files))

    def __str__(self) -> str:
        # Also the fact-cache key pyinfra-testing case files name: keep it short and whole.
        return f"{self.project}:{self.dir}:{','.join(self.files)}:{self.env_file}"

    @classmethod
    def of(cls, value: "Stack | dict") -> "Stack":
        """A Stack from itself or from its fields as a mapping (inventory data, case files)."""
        return value if isinstance(value, cls) else cls(**value)

    def as_data(self) -> dict:
        """Plain data (lists, not tuples), for FunctionCommand arguments and JSON."""
        return {"dir": self.dir, "project": self.project, "files": list(self.files), "env_file": self.env_file}

    @property
    def env_path(self) -> str:
        return self.env_file if self.env_file.startswith("/") else posixpath.join(self.dir, self.env_file)


def valid_service(name) -> bool:
    return isinstance(name, str) and bool(SERVICE_PATTERN.match(name))


def compose_command(stack: Stack, *args, files_var: str | None = None) -> StringCommand:
    """`docker compose` bound to the stack's project.

    `files_var` names a shell variable holding a directory to read the compose files
    from instead of the stack directory (the target commit's files, for a plan).
    """
    file_args: list = []
    for name in stack.files:
        if files_var:
            file_args += ["-f", f'"${files_var}"/' + shlex.quote(name)]
        else:
            path = name if name.startswith("/") else posixpath.join(stack.dir, name)
            file_args += ["-f", QuoteString(path)]
    return StringCommand(
        "docker", "compose",
        "--project-directory", QuoteString(stack.dir),
        "-p", QuoteString(stack.project),
        *file_args,
        "--env-file", QuoteString(stack.env_path),
        *args,
    )


def project_containers_command(project: str) -> StringCommand:
    """Inspect the project's service containers (one-off `run` containers excluded)."""
    return StringCommand(
        "ids=$(docker", "ps", "-aq",
        "--filter", QuoteString(f"label=com.docker.compose.project={project}"),
        "--filter", "label=com.docker.compose.oneoff=False", ");",
        '[ -z "$ids" ]', "||", "docker", "inspect", "--format", QuoteString(CONTAINER_TEMPLATE), "$ids",
    )


def parse_hashes(lines: list[str]) -> dict[str, str]:
    hashes = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def parse_containers(lines: list[str]) -> dict[str, dict]:
    containers = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        raw = json.loads(line)
        log = raw.pop("health_log") or []
        raw["health_output"] = (log[-1].get("Output") or "").strip()[-300:] if log else ""
        raw["name"] = raw["name"].lstrip("/")
        containers[raw.pop("service")] = raw
    return containers


class ComposeServices(WholeOutputFact):
    """
    Returns every service of the project: what its container is doing, and whether it
    was created from the compose configuration now on disk (config hash label).

    .. code:: python

        {
            "backend": {
                "name": "layra-backend-1",
                "state": "running",          # or "exited", ..., "missing"
                "health": "healthy",         # "" when the service has no healthcheck; "healthy"
                                             # also where Docker still says "starting" but the
                                             # healthcheck passes when run now (wait_ready.sh)
                "health_output": "...",      # last healthcheck output, trimmed
                "image": "sha256:...",
                "config_hash": "5a1f...",    # label on the container
                "desired_hash": "5a1f...",   # `docker compose config --hash`
            },
        }
    """

    shell_executable = "bash"  # wait_ready.sh

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"

    def command(self, stack: Stack) -> StringCommand:
        stack = Stack.of(stack)
        return StringCommand(
            section("desired"), ";",
            compose_command(stack, "config", "--hash", "'*'"), ";",
            section("containers"), ";",
            project_containers_command(stack.project), ";",
            # where Docker has not checked a started container yet, its own healthcheck, now
            section("probed"), "; [ -z \"$ids\" ] || {", script("wait_ready"), "\nlayra_probed $ids; }",
        )

    def process(self, output):
        sections = split_sections(output)
        desired = parse_hashes(sections.get("desired", []))
        containers = parse_containers(sections.get("containers", []))
        passed = {line.split()[0] for line in sections.get("probed", []) if line.strip().endswith(" passed")}
        for container in containers.values():
            if container["health"] == "starting" and container["name"] in passed:
                container["health"] = "healthy"
                container["health_output"] = "its healthcheck passes, run now (Docker has yet to run it)"
        services = {}
        for name in sorted(set(desired) | set(containers)):
            container = containers.get(name) or {
                "name": "", "state": "missing", "health": "", "health_output": "",
                "image": "", "config_hash": "",
            }
            services[name] = {**container, "desired_hash": desired.get(name, "")}
        return services


# Names of env-file keys that hold secrets: never read into a fact, whose output pyinfra may
# print (a password travels only as facts.secrets exports it).
SECRET_KEY_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY", re.IGNORECASE)


class EnvSettings(WholeOutputFact):
    """
    Returns the values ``docker compose`` gives the named env-file keys (as it reads the
    stack's env file: ``scripts/env_value.sh``), None where a key is not set or is empty:

    .. code:: python

        {"MYSQL_DATABASE": "layra", "MONGODB_ROOT_USERNAME": "root", "MONGODB_DB": None}

    For settings that are names (a user, a database), never secrets: a key whose name
    says it holds one (``SECRET_KEY_NAME``) is refused before anything runs. Each value
    travels hex-encoded, so that no byte of it can end its line early.
    """

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"

    def command(self, stack: Stack, keys: list[str]) -> StringCommand:
        stack = Stack.of(stack)
        bad = [key for key in keys if not isinstance(key, str) or not KEY_PATTERN.match(key) or SECRET_KEY_NAME.search(key)]
        if isinstance(keys, str) or not keys or bad:
            raise ValueError(f"keys must be env-file keys that do not hold secrets, got {bad or keys!r}")
        reads = [StringCommand(
            "if v=$(layra_env_value", QuoteString(key), QuoteString(stack.env_path), "&& echo .); then",
            "printf '%s ' ", QuoteString(key), "; printf '%s' \"${v%.}\" | od -An -v -tx1 | tr -d ' \\n'; echo;",
            "else printf '%s\\n'", QuoteString(key), "; fi;",
        ) for key in keys]
        return StringCommand(script("env_value"), ";", *reads)

    def process(self, output):
        found = {}
        for line in output:
            key, _, value = line.strip().partition(" ")
            if not line.strip():
                continue
            if not KEY_PATTERN.match(key) or not re.fullmatch(r"(?:[0-9a-f]{2})*", value):
                raise ValueError(f"env settings: unexpected line {line!r}")
            found[key] = bytes.fromhex(value).decode() if value else None
        return found


class ComposeTargetConfig(WholeOutputFact):
    """
    Returns what the compose files at ``ref`` would ask for, without checking it out:
    the config hash of each service, the build context of services that build, and the
    image name each service runs (its ``image:``, or compose's ``<project>-<service>`` for
    a service that only builds; uninterpolated, so ``${TAG}`` stays as written).

    .. code:: python

        {
            "hashes": {"backend": "77c0...", "mysql": "5a1f..."},
            "build_contexts": {"backend": "backend"},   # relative to the stack directory
            "images": {"backend": "layra-backend", "mysql": "mariadb:10.11"},
        }
    """

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"

    def command(self, stack: Stack, ref: str) -> StringCommand:
        stack = Stack.of(stack)
        target = QuoteString(f"{ref}^{{commit}}")
        files = [QuoteString(name) for name in stack.files]
        shows = []
        for name in stack.files:
            shows += [section("file"), ";", git_command(stack.dir, "show", QuoteString(f"{ref}:{name}")), ";"]
        return StringCommand(
            'tmp=$(mktemp -d) &&',
            git_command(stack.dir, "archive", target, "--", *files), '| tar -x -C "$tmp" &&',
            section("hashes"), "&&",
            compose_command(stack, "config", "--hash", "'*'", files_var="tmp"),
            '; rc=$?; rm -rf "$tmp";',
            section("project"), ";", "echo", QuoteString(stack.project), ";",
            *shows,
            "exit $rc",
        )

    def process(self, output):
        sections = {"hashes": [], "project": []}
        current = None
        files: list[list[str]] = []
        for line in output:
            marker = line.strip()
            if marker in ("--- layra:hashes ---", "--- layra:project ---"):
                current = sections[marker[len("--- layra:"):-len(" ---")]]
            elif marker == "--- layra:file ---":
                files.append([])
                current = files[-1]
            elif current is not None:
                current.append(line)
        contexts: dict[str, str] = {}
        named: dict[str, str] = {}
        for lines in files:
            # later files override earlier ones, key by key, as compose merges them
            document = yaml.safe_load("\n".join(lines)) or {}
            for name, service in (document.get("services") or {}).items():
                build = (service or {}).get("build")
                if build:
                    context = build if isinstance(build, str) else build.get("context", ".")
                    contexts[name] = posixpath.normpath(context)
                if (service or {}).get("image"):
                    named[name] = str(service["image"])
        project = "".join(sections["project"]).strip()
        images = {name: named.get(name) or f"{project}-{name}" for name in sorted(set(named) | set(contexts))}
        return {"hashes": parse_hashes(sections["hashes"]), "build_contexts": contexts, "images": images}


def replaced_command(stack: Stack, service: str, nginx_service: str | None = None,
                     timeout: int = 120) -> StringCommand:
    """Recreate one service's containers from the compose configuration on disk, and wait
    (up to ``timeout`` s) until they run and, with a healthcheck, are healthy.

    Behind nginx (``nginx_service``; the service publishes no port) the replace rolls, so
    reads keep being served: ``up --no-deps --no-recreate --scale <service>=2n`` starts n
    new containers beside the n old ones; once they are ready nginx reloads (it resolves
    the service name again and sees both), its previous workers finish their requests, the
    old containers stop, nginx reloads again and the old containers are removed. New
    containers that do not become ready are removed and the old ones keep serving; the
    failure names the service and the last healthcheck output. When every old container
    is already unhealthy (quiescing writes on a bad release, to roll it back), the new ones
    only need to run: as ready as what they replace. Without nginx, or with no container
    running, it is ``up -d --no-deps --force-recreate <service>``.

    A request nginx sends to an old container as it stops (between its SIGTERM and the
    second reload, well under a second) is retried on a new one when it is a GET; a POST
    already sent is not retried by nginx and can get a 502.

    The shell is ``scripts/replace_service.sh``, given the values and a ``compose``
    function bound to the stack.
    """
    for name in (service, nginx_service):
        if name is not None and not valid_service(name):
            raise ValueError(f"not a compose service name: {name!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a whole number of seconds, got {timeout!r}")
    return StringCommand(
        "set -o pipefail;",
        assign(project=stack.project, service=service, nginx=nginx_service or "", timeout=timeout),
        "compose() {", compose_command(stack, '"$@"'), "; };",
        script("wait_ready"), "\n", script("replace_service"),
        _shell_executable="bash",
    )
