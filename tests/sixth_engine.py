"""A sixth engine, as a newcomer would add one: this module, and one line in the registry
(``tests/test_engines_registry.py`` adds that line for its tests). A SQLite file in a
service's volume: one part, a copy of the file; a restore copies it back."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import QuoteString, StringCommand, operation

from operations.checks import Check, Probe
from operations.parallel import Step
from pyinfra_deploys.engines.base import (
    SERVICE_RULE,
    Component,
    Engine,
    healthcheck,
    one_line,
    service_name,
    setting,
)


@operation()
def file_restored(source: str, target: str):
    """Copy the snapshot's file back (a throwaway operation: the engine's restore step)."""
    yield StringCommand("cp", QuoteString(source), QuoteString(target))


@dataclass(frozen=True)
class SqliteComponent(Component):
    """``{engine: sqlite, service, path}``"""

    engine = "sqlite"
    service: str = setting(SERVICE_RULE, service_name, "app")
    path: str = setting("be an absolute path on one line", lambda v: one_line(v) and v.startswith("/"), "/data/app.db")


class Sqlite(Engine):
    name, component, layra_name = "sqlite", SqliteComponent, "sqlite"
    images = ("sqlite-web",)

    def parts(self, stack, component):
        return {component.name: {"path": component.path}}

    def plan(self, stack, component, part, descriptor, sha256s):
        return {"part": part, "component": component.name, "engine": self.name, "changes": True}

    def describe(self, plan):
        return [f"{plan['component']}: copy the snapshot's file back"]

    def restore(self, stack, component, descriptor, files, sha256s, differs=False):
        return [Step(file_restored, {"source": files[descriptor["file"]], "target": component.path}, component.name)]

    def integrity(self, stack, component, descriptor, sha256s):
        return Probe(lambda services: Check(4, f"{component.name} file", "as copied", "the snapshot's", True))

    def ping(self, stack, component):
        return healthcheck(component.name, [component.service])


ENGINE = Sqlite()
