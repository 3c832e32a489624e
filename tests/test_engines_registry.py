"""The engines are looked up, never branched on: a sixth engine (tests/sixth_engine.py) is
one module and one line of registration, and then the host data, the backup's parts, the
plan's words, the restore's steps, phase 2 and 4's probes and ``components --compose``
all take it, with no other change."""

from __future__ import annotations

import pytest
import sixth_engine
from pyinfra.api import DeployError

from facts.compose import Stack
from operations.parallel import Step
from pyinfra_deploys import engines
from pyinfra_deploys.backup import backup_parts
from pyinfra_deploys.components import propose
from pyinfra_deploys.compose_file import service_of
from pyinfra_deploys.config import components_from
from pyinfra_deploys.engines import ENGINES, engine_of
from pyinfra_deploys.plan import describe
from pyinfra_deploys.snapshot import restorable_parts

STACK = Stack("/srv/app")


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(ENGINES, "sqlite", sixth_engine.ENGINE)   # the one line a new engine adds


def test_the_five_engines_are_registered_once_each_under_their_own_name():
    assert [name for name, engine in engines.ENGINES.items() if engine.name == name] == \
        ["mysql", "mongo", "redis", "qdrant", "volumes", "sqlite"]


def test_host_data_names_a_sixth_engine_and_gets_its_defaults_and_refusals():
    app, = components_from({"layra_components": {"app": {"engine": "sqlite", "service": "web"}}})
    assert (type(app), app.service, app.path) == (sixth_engine.SqliteComponent, "web", "/data/app.db")
    with pytest.raises(DeployError, match="'layra_components.app.path' must be an absolute path on one line"):
        components_from({"layra_components": {"app": {"engine": "sqlite", "path": "app.db"}}})


def test_its_parts_plan_restore_and_checks_come_from_its_module():
    app, = components_from({"layra_components": {"app": {"engine": "sqlite"}}})
    assert [(name, part) for _, _, name, part in backup_parts(STACK, [app])] == [("app", {"path": "/data/app.db"})]
    manifest = {"parts": {"app": {"component": "app", "engine": "sqlite", "file": "app.db"}}}
    (component, name, part), = restorable_parts(manifest, [app])
    engine = engine_of(component)
    assert describe(engine.plan(STACK, component, name, part, {})) == ["app: copy the snapshot's file back"]
    step, = engine.restore(STACK, component, part, {"app.db": "/var/backups/app/x/app.db"}, {})
    assert step == Step(sixth_engine.file_restored, {"source": "/var/backups/app/x/app.db", "target": "/data/app.db"},
                        "app")
    assert engine.integrity(STACK, component, part, {}).read({}).ok
    assert engine.ping(STACK, component).read({"app": {"state": "running", "health": "healthy"}}).ok


def test_components_compose_recognises_its_image():
    proposal = propose([service_of("web", {"image": "coleifer/sqlite-web:latest"})])
    assert proposal.components == {"sqlite": {"engine": "sqlite", "service": "web"}}
