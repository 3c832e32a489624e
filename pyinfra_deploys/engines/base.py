"""
What every engine module provides, and the shape of a component's settings.

An engine is everything the project knows about one kind of data store, in one module
(borgmatic's data-source hooks are the model): its component settings (a frozen
dataclass, validated and defaulted once), the parts a component is backed up as, its
dump, its plan (current -> snapshot) and how the plan reads, its restore steps, its
phase 2 (ping) and phase 4 (integrity) checks, and what ``components --compose``
recognises. The deploys only look an engine up (``pyinfra_deploys.engines.ENGINES``).

The one decision "does the live data match the snapshot?" lives beside the engine's
fingerprint fact (``facts.<engine>``), where the restore operation's noop check can use it
too: the engine's plan and phase 4 call that same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from pyinfra import host

from facts.compose import SECRET_KEY_NAME, valid_service
from facts.secrets import KEY_PATTERN
from facts.volumes import VolumeSet
from operations.checks import Check, Probe
from operations.parallel import Step

NAME_RULE = "1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"


class SettingError(ValueError):
    """A component setting that is malformed: ``key`` and what it must be."""

    def __init__(self, key: str, what: str):
        super().__init__(f"{key} {what}")
        self.key, self.what = key, what


def one_line(value) -> bool:
    """A non-empty string on one line (no newline, carriage return or NUL)."""
    return isinstance(value, str) and value != "" and not set(value) & set("\n\r\0")


def setting(rule: str, valid: Callable[[object], bool], default=dataclasses.MISSING, *, plural: bool = False):
    """A component setting: its default, what a value must be (``rule``: the refusal's words
    after "must") and the check. ``plural``: a list in host data, a tuple in the settings (which are frozen)."""
    metadata = {"rule": rule, "valid": valid, "plural": plural}
    if default is dataclasses.MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def service_name(value) -> bool:
    return valid_service(value)


def password_key(value) -> bool:
    return value is None or (isinstance(value, str) and bool(KEY_PATTERN.match(value)))


PASSWORD_KEY_RULE = "name a variable of the env file (A-Z a-z 0-9 _, not starting with a digit), or be null for none"
ENV_KEY_RULE = ("name a variable of the env file (A-Z a-z 0-9 _, not starting with a digit) that holds a name, "
                "not a secret, or be null for none")


def env_key(value) -> bool:
    """An env-file key a setting is read from: a name, never one that holds a secret."""
    return value is None or (password_key(value) and not SECRET_KEY_NAME.search(value))
SERVICE_RULE = f"be a compose service name ({NAME_RULE})"


def each(valid: Callable[[object], bool]) -> Callable[[object], bool]:
    """A list (or tuple) whose every item is ``valid``."""
    return lambda value: isinstance(value, (list, tuple)) and all(valid(item) for item in value)


@dataclass(frozen=True)
class Component:
    """One stateful component of a host, as its host data names it: each engine's settings
    extend this with their own fields, made with ``setting(...)``."""

    name: str
    engine: ClassVar[str] = ""
    # settings that may be read on the host from the stack's env file instead of written in
    # host data: {the setting naming the key: the setting its value fills}
    from_env: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_data(cls, name: str, raw: dict) -> Component:
        """The settings from host data, defaults filled in; ``SettingError`` for the first
        malformed or unknown key."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
        unknown = sorted(set(raw) - set(fields) - {"engine"})
        if unknown:
            raise SettingError(unknown[0], f"is not a setting of the {cls.engine} engine "
                                           f"(it takes {', '.join(fields) or 'none'})")
        values = {}
        for key, spec in fields.items():
            if key not in raw:
                continue
            value = raw[key]
            if not spec.metadata["valid"](value):
                raise SettingError(key, f"must {spec.metadata['rule']}, got {value!r}")
            values[key] = tuple(value) if spec.metadata["plural"] else value
        component = cls(name=name, **values)
        component.check()
        return component

    def check(self):
        """Rules that tie several settings together (``SettingError``)."""

    def env_keys(self) -> list[str]:
        """The env-file keys this component's settings are read from (``from_env``)."""
        return [getattr(self, key) for key in self.from_env if getattr(self, key)]

    def with_env(self, values: dict[str, str | None], env_file: str) -> Component:
        """A copy with the settings read from the env file filled in from ``values`` (``{key:
        value}``, ``facts.compose.EnvSettings``): a user replaces ``user``, a database joins
        ``databases``. ``SettingError`` naming the key setting where a value is missing or
        could not be that setting."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for key_setting, target in self.from_env.items():
            key = getattr(self, key_setting)
            if not key:
                continue
            value = values.get(key)
            if value is None:
                raise SettingError(key_setting, f"names {key}, which is not set in {env_file}")
            spec = fields[target].metadata
            new = tuple(dict.fromkeys((*getattr(self, target), value))) if spec["plural"] else value
            if not spec["valid"](new):
                raise SettingError(key_setting, f"names {key}, whose value {value!r} in {env_file} cannot be its "
                                                f"{target}: {target} must {spec['rule']}")
            changes[target] = new
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def label(self) -> str:
        return self.name


class Engine:
    """The protocol every engine module implements (one instance each, registered once).

    Plans are dicts with ``component``, ``engine``, ``part`` (the snapshot part they are
    about) and ``changes``; ``describe`` turns one into the lines the dry run prints.
    """

    name: ClassVar[str]
    component: ClassVar[type[Component]]
    # The last segments of image repositories (or service names) this engine backs up
    # (``components --compose``), and the name Layra gives such a component.
    images: ClassVar[tuple[str, ...]] = ()
    layra_name: ClassVar[str | None] = None
    # whether its restore moves the live data aside (``keep_displaced`` keeps it after the
    # window) instead of replacing it in place (its safety copy then dumped in the window)
    keeps_displaced: ClassVar[bool] = False

    # Backup

    def parts(self, stack, component) -> dict[str, dict]:
        """The snapshot parts the component is backed up as: ``{part name: what the dump needs}``."""
        raise NotImplementedError

    def estimate(self, stack, component, part: dict) -> int:
        """Bytes its dump may take before compression (the backup's room check)."""
        return 0

    def dump(self, stack, component, name: str, part: dict, directory: str, **options) -> list:
        """Register the operations that write the part into the (partial) snapshot directory."""
        raise NotImplementedError

    # Rollback

    def plan(self, stack, component, part: str, descriptor: dict, sha256s: dict) -> dict:
        """Current -> snapshot for one part, read from the host."""
        raise NotImplementedError

    def describe(self, plan: dict) -> list[str]:
        raise NotImplementedError

    def stage(self, stack, component, descriptor: dict, files: dict, sha256s: dict,
              differs: bool = False) -> list[Step]:
        """Before the maintenance window, while the application serves: the snapshot's data
        built beside the live data and checked against the snapshot's fingerprint, all that
        grows with the data (steps run in order; the parts of a host side by side). ``differs``:
        the plan found the part different. [] where the engine stages nothing."""
        return []

    def swap_note(self, component) -> str:
        """What the window's swap of the component waits for, where it is more than a rename
        (the dry run shows it): "" for none."""
        return ""

    def staging_needs(self, stack, component, descriptor: dict) -> list[tuple[str, int]]:
        """Where on the host ``stage`` builds the part's copy and about how many bytes it takes
        there, ``[(path, bytes)]``: checked against the free space before anything is
        staged. [] where the engine stages nothing there, or cannot tell (not checked)."""
        return []

    def restore(self, stack, component, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[Step]:
        """Inside the window: the part put at the snapshot, a swap where ``stage`` built the
        copy, the live data moved aside (the displaced copy). Steps run in order (the parts
        of a host side by side)."""
        raise NotImplementedError

    def keep_displaced(self, stack, component, name: str, descriptor: dict, directory: str, **options) -> list | None:
        """After the window: register the operations that write the displaced copy as part
        ``name`` of the safety snapshot being written in ``directory``. None where the engine
        displaces no copy: its safety copy is dumped inside the window, before its restore."""
        return None

    def displaced_present(self, stack, component, descriptor: dict) -> bool:
        """Whether a displaced copy of the part is aside now, before this run swaps anything:
        one an earlier run left when it died before its safety snapshot was complete."""
        return False

    def aside_dropped(self, stack, component, descriptor: dict, **options) -> list:
        """Once the safety snapshot holding it is verified: register the removal of the
        displaced copy."""
        return []

    def point_in_time(self, stack, component, descriptor: dict, until: dict, snapshot_dir: str,
                      created: str | None, differs: bool) -> dict | None:
        """A point-in-time rollback of the part (``until=``; ``differs``: the live part is not
        at the snapshot): its replay plan, ``{"error"}`` where it is refused, None where the
        engine keeps no log to replay (a part that differs is restored to the snapshot)."""
        return None

    def release_point_saved(self, stack, component, **options) -> list:
        """Immediately before a guarded release: register what saves the point a
        point-in-time rollback of that release replays up to (MySQL: its binlog position).
        [] where the engine has no such point."""
        return []

    def cache_plan(self, stack, component) -> dict | None:
        """Caches flushed after a rollback's change (None: the component has none)."""
        return None

    def caches_flushed(self, stack, component, **options) -> None:
        """Register the flush of the component's caches (where ``cache_plan`` has one)."""

    # Verification

    def integrity(self, stack, component, descriptor: dict, sha256s: dict) -> Callable[[], Check]:
        """Phase 4: a check, run while the rollback executes, that the part is at the snapshot."""
        raise NotImplementedError

    def ping(self, stack, component) -> Callable[[dict], Check]:
        """Phase 2: a check that the component answers (given the stack's services)."""
        raise NotImplementedError

    # components --compose

    def kind_of(self, image: str) -> str | None:
        """What a service whose image (or name) is ``image`` runs, where this engine backs it up."""
        return self.name if image in self.images else None

    def proposals(self, services: list, todo: list[str], unclassified: dict[str, str]) -> list[tuple]:
        """``(Layra name, lead service, settings, why)`` per component proposed for the compose
        file's services of this engine: one each, filled in by ``propose``."""
        found = []
        for service in services:
            if service.engine != self.name:
                continue
            settings = {"engine": self.name, "service": service.name}
            why = [f"{service.origin} -> {self.name} engine" + (" (by its service name)" if service.by_name else "")]
            self.propose(service, settings, why, todo)
            found.append((self.layra_name, service, settings, why))
        return found

    def propose(self, service, settings: dict, why: list[str], todo: list[str]):
        """Fill ``settings`` for a compose service of this engine (what the file shows)."""


def data_path(stack, service: str, target: str) -> str | None:
    """The host path of the named volume mounted at ``target`` in ``service``'s containers
    (None: no such volume, e.g. a bind mount)."""
    volumes = host.get_fact(VolumeSet, stack=stack, services=[service], fingerprint=False)["volumes"]
    return next((volume["path"] for volume in volumes.values() if volume.get("target") == target), None)


def without_credentials(plan: dict, component: Component) -> dict:
    """The plan, marked where the component logs in without a password (``password_key: null``)."""
    if getattr(component, "password_key", "") is None:
        plan["credentials"] = False
    return plan


def healthcheck(name: str, services: list[str]) -> Probe:
    """Phase 2 for an engine with no client of ours: its services' healthchecks (every one
    of a set; "running" where a service has none)."""
    def read(found: dict) -> Check:
        states = {s: found.get(s, {}).get("health") or found.get(s, {}).get("state", "missing") for s in services}
        observed = ", ".join(f"{s} {state}" for s, state in states.items()) if len(services) > 1 else states[services[0]]
        return Check(2, f"{name} healthcheck", observed, "healthy",
                     all(state in ("healthy", "running") for state in states.values()))
    return Probe(read, needs_services=True)
