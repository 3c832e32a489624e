"""
Reading a compose file as ``components --compose`` needs it: each service's image, build,
named volumes and bind mounts, dependencies, environment and command words. Plain Python
over the parsed YAML: nothing runs, no env file or host is read. The engines use the
helpers below to propose their settings (a credential only by the ``${VAR}`` that feeds it).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

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
    engine: str | None = None   # the engine that backs it up (components.classified)
    kind: str | None = None     # what it runs, for that engine (milvus, etcd...)
    by_name: bool = False       # known by its service name, its image saying nothing

    @property
    def origin(self) -> str:
        return f"image {self.image}" if self.image else f"build {self.build}" if self.build else "no image"



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
    return service


def image_name(service: Service) -> str | None:
    """The last segment of the service's image repository, without tag or digest (``mariadb``)."""
    return re.split(r"[:@]", service.image.rsplit("/", 1)[-1])[0].lower() if service.image else None


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




def env_of(service: Service, *names: str) -> dict:
    return {name: service.env.get(name) for name in names}


def key_from(sources: dict, settings: dict, setting: str, why: list[str]) -> bool:
    """``setting`` (``password_key``, ``user_key``, ``databases_key``) from the first of
    ``sources`` (where -> value) that is one ``${VAR}``: whether one was."""
    for source, value in sources.items():
        if key := variable(value):
            settings[setting] = key
            why.append(f"{setting} {key} (feeds {source})")
            return True
    return False


def password_from(service: Service, sources: dict, settings: dict, why: list[str], todo: list[str]):
    """``password_key`` from the first of ``sources`` (where -> value) that is one ``${VAR}``.

    Only the variable's name is used: a literal password is never copied or printed.
    """
    if key_from(sources, settings, "password_key", why):
        return
    todo.append(f"{service.name}: no ${{VAR}} feeds {' or '.join(sources)}: add password_key "
                f"(the env file key holding the password) if it has one")
