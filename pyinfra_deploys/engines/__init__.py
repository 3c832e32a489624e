"""
The engines: one module each (``base.Engine`` says what every one provides), registered
here once. The deploys, the plan, the host data and ``components --compose`` only look an
engine up by the name a component's ``engine:`` gives.

A sixth engine is one new module with its ``Component`` settings and ``Engine`` subclass,
and one line below (``tests/test_engines_registry.py`` adds one that way).
"""

from __future__ import annotations

from . import mongo, mysql, qdrant, redis, volumes
from .base import Component, Engine, SettingError

ENGINES: dict[str, Engine] = {engine.name: engine for engine in (
    mysql.ENGINE,
    mongo.ENGINE,
    redis.ENGINE,
    qdrant.ENGINE,
    volumes.ENGINE,
)}


def engine_of(component: Component) -> Engine:
    """The engine that backs ``component`` up."""
    return ENGINES[component.engine]


__all__ = ["ENGINES", "Component", "Engine", "SettingError", "engine_of"]
