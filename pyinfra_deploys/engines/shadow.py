"""
What MySQL and MongoDB share: one part per database, ``<component>.<database>``, restored
into a shadow database that is checked against the snapshot's fingerprint and only then
swapped in (``shadow_loaded``, then ``swapped_in``, of the engine's operations module).
Each engine module fills in its facts, operations and words.
"""

from __future__ import annotations

from pyinfra import host

from facts.shadow import PREVIOUS_SUFFIX, valid_database
from facts.text import moved
from operations.checks import Check, Probe
from operations.parallel import Step

from ..compose_file import key_from
from .base import ENV_KEY_RULE, Engine, data_path, each, env_key, setting

DATABASES = setting("be a list of plain database names (letters, digits, _; at most 48)", each(valid_database), (),
                    plural=True)
# The env-file keys holding the client's user and a database's name (Layra's compose file
# takes both from its env file): read on the host, the user replacing ``user``, the
# database joining ``databases``.
USER_KEY = setting(ENV_KEY_RULE, env_key, None)
DATABASES_KEY = setting(ENV_KEY_RULE, env_key, None)
FROM_ENV = {"user_key": "user", "databases_key": "databases"}


class ShadowDatabases(Engine):
    """An engine whose component lists ``databases``, each restored through a shadow copy."""

    keeps_displaced = True     # the swap moves the live data aside (the engine says where)
    operations = None          # the engine's operations module (dumped, shadow_loaded, swapped_in)
    fingerprint_fact = None    # its fingerprint fact
    file_argument = ""         # what shadow_loaded calls the part's file
    ping_fact = None           # its ping fact, and what a server that answers says
    ping_answer = ""
    data_target = ""           # the server's data directory in its container, where the shadow grows

    def matches(self, live: dict | None, snapshot: dict) -> bool:
        """The one "live equals the snapshot" decision (the facts module's, which the
        operations' noop checks use too)."""
        raise NotImplementedError

    def summary(self, fingerprint: dict) -> str:
        raise NotImplementedError

    def parts(self, stack, component) -> dict[str, dict]:
        return {f"{component.name}.{db}": {"database": db} for db in component.databases}

    def dump(self, stack, component, name: str, part: dict, directory: str, **options) -> list:
        return [self.operations.dumped(name=f"Dump {component.name}/{part['database']}", stack=stack,
                                       database=part["database"], directory=directory, part=name,
                                       **component.client, **options)]

    def live(self, stack, component, database: str) -> dict:
        return host.get_fact(self.fingerprint_fact, stack=stack, database=database, **component.client)

    def load_arguments(self, descriptor: dict) -> dict:
        """What ``shadow_loaded`` takes from the part's descriptor besides its file."""
        return {}

    def loaded(self, stack, component, descriptor: dict, files: dict, sha256s: dict, differs: bool) -> Step:
        database = descriptor["database"]
        return Step(self.operations.shadow_loaded,
                    {"stack": stack, "database": database, "fingerprint": descriptor["fingerprint"],
                     "live_differs": differs, "sha256": sha256s[descriptor["file"]],
                     self.file_argument: files[descriptor["file"]], **self.load_arguments(descriptor),
                     **component.client}, f"{component.name}/{database}")

    def stage(self, stack, component, descriptor: dict, files: dict, sha256s: dict,
              differs: bool = False) -> list[Step]:
        # the shadow database loaded and checked while the application serves; a part at
        # the snapshot when planned has nothing to stage
        if not differs:
            return []
        database = descriptor["database"]
        return [self.loaded(stack, component, descriptor, files, sha256s, differs),
                Step(self.operations.shadow_checked, {"stack": stack, "database": database,
                                                      "fingerprint": descriptor["fingerprint"], **component.client},
                     f"{component.name}/{database}")]

    def staging_needs(self, stack, component, descriptor: dict) -> list[tuple[str, int]]:
        # the shadow takes about what the live database takes (its estimate), on the
        # server's data volume
        size = self.estimate(stack, component, descriptor) if self.data_target else 0
        path = data_path(stack, component.service, self.data_target) if size else None
        return [(path, size)] if path else []

    def restore(self, stack, component, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[Step]:
        database = descriptor["database"]
        swap = Step(self.operations.swapped_in, {"stack": stack, "database": database,
                                                 "fingerprint": descriptor["fingerprint"], "live_differs": differs,
                                                 "shadow_checked": differs, **component.client},
                    f"{component.name}/{database}")
        # staged and checked before the window: only the swap; a part that matched when
        # planned is checked again (writes may have landed since) and loaded only if they did
        return [swap] if differs else [self.loaded(stack, component, descriptor, files, sha256s, differs), swap]

    def displaced_dump(self, database: str) -> dict:
        """What the engine's ``dumped`` takes to read the copy a swap moved aside: here the
        database ``<database>__pre_restore``."""
        return {"source": database + PREVIOUS_SUFFIX}

    def displaced_fingerprint(self, stack, component, database: str) -> dict:
        """The fingerprint of the copy a swap moved aside."""
        return self.live(stack, component, database + PREVIOUS_SUFFIX)

    def keep_displaced(self, stack, component, name: str, descriptor: dict, directory: str, **options) -> list:
        database = descriptor["database"]
        return [self.operations.dumped(name=f"Keep the displaced {component.name}/{database}", stack=stack,
                                       database=database, directory=directory, part=name,
                                       **self.displaced_dump(database), **component.client, **options)]

    def holds_data(self, fingerprint: dict) -> bool:
        """Whether a copy with this fingerprint holds anything to keep (a swap that died
        before it moved anything may leave an empty one)."""
        return bool(fingerprint.get("exists"))

    def displaced_present(self, stack, component, descriptor: dict) -> bool:
        # absent, it costs one query; present (after a run died), a fingerprint of it
        return self.holds_data(self.displaced_fingerprint(stack, component, descriptor["database"]))

    def aside_dropped(self, stack, component, descriptor: dict, **options) -> list:
        database = descriptor["database"]
        return [self.operations.aside_dropped(name=f"Drop the displaced {component.name}/{database}", stack=stack,
                                              database=database, **component.client, **options)]

    def target(self, stack, component, descriptor: dict) -> dict:
        """The fingerprint the restored part must have, read when verify phase 4 runs: the
        snapshot's (MySQL's point-in-time rollback: what it replayed to)."""
        return descriptor["fingerprint"]

    def integrity(self, stack, component, descriptor: dict, sha256s: dict) -> Probe:
        def read(services: dict) -> Check:
            live = self.live(stack, component, descriptor["database"])
            want = self.target(stack, component, descriptor)
            what = "the snapshot" if want is descriptor["fingerprint"] else "the replayed target"
            ok = self.matches(live, want)
            return Check(4, f"{component.name}/{descriptor['database']} fingerprint",
                         self.summary(live) + ("" if ok else f", differs from {what}"),
                         f"{what}'s: {self.summary(want)}", ok)
        return Probe(read)

    def ping(self, stack, component) -> Probe:
        def read(services: dict) -> Check:
            answer = host.get_fact(self.ping_fact, stack=stack, **component.client)
            return Check(2, f"{component.name} ping", answer["output"] or "no answer", self.ping_answer, answer["ok"])
        return Probe(read)

    def describe_changes(self, plan: dict, items: str, noun: str) -> list[str]:
        """The plan's head line and its per-item lines (tables, collections)."""
        head = f"{plan['component']}: "
        if not plan["changes"]:
            return [head + "no change: already matches the snapshot"]
        lines = [head + ("restore from the snapshot" if plan["exists"] else "create from the snapshot (no live database)")]
        lines += [f"  {item}: {moved(*counts, noun)}" + (" (same count, other content)" if counts[0] == counts[1] else "")
                  for item, counts in plan[f"{items}_changed"].items()]
        return lines


def databases_from(service, names: tuple[str, ...], settings: dict, why: list[str], todo: list[str]):
    """``databases_key`` where the first of the service's env ``names`` it sets is one
    ``${VAR}``, ``databases`` where it is a literal name; otherwise a line to fill in."""
    name = next((n for n in names if n in service.env), names[0])
    value = service.env.get(name)
    if key_from({name: value}, settings, "databases_key", why):
        return
    settings["databases"] = [value] if valid_database(value) else []
    if settings["databases"]:
        why.append(f"databases from {name}")
    else:
        told = f"{name} is {value!r}, not one ${{VAR}}" if value else f"no {name}"
        todo.append(f"{service.name}: databases: {told}: name the databases to back up, or the env-file key "
                    f"holding one as databases_key (none are until you do)")
