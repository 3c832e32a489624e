"""
Propose an inventory's ``layra_components`` from a compose file (``layra-rollback components``).

Plain Python over the parsed YAML (``compose_file``): nothing runs, no env file or host is
read, so a credential is named only where the file shows the ``${VAR}`` that feeds it.
Each service is classified by its image (by its name when the image says nothing), and
the engine that backs such a service up proposes its settings (``Engine.proposals``):

- mysql/mariadb/percona, mongo, redis/valkey, qdrant -> that engine, one service each;
- milvus, etcd, minio, kafka, zookeeper -> the volumes engine, joined into sets: connected
  over ``depends_on`` and shared named volumes among these services only (Milvus, its
  etcd and its MinIO stop, archive and restore together; a MySQL that Milvus depends on
  does not join);
- anything else with a named volume -> not classified, its volumes named;
- the rest -> stateless. Bind mounts are noted but make no service stateful: they are
  mostly configuration from the stack's checkout, which a rollback reverts with git, and
  the volumes engine archives named volumes only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .compose_file import ComposeError, Service, image_name, load
from .engines import ENGINES
from .engines.volumes import groups

__all__ = ["ComposeError", "Proposal", "propose", "proposal_for", "as_yaml", "comments"]


@dataclass
class Proposal:
    components: dict[str, dict] = field(default_factory=dict)
    why: dict[str, list[str]] = field(default_factory=dict)  # component -> reasons
    todo: list[str] = field(default_factory=list)            # what the file cannot say
    unclassified: dict[str, str] = field(default_factory=dict)  # "service, ..." -> why not
    stateless: list[str] = field(default_factory=list)
    binds: dict[str, list[str]] = field(default_factory=dict)


def classified(services: list[Service]) -> list[Service]:
    """Each service with the engine that backs it up (by its image, else by its name)."""
    for service in services:
        for candidate in (image_name(service), service.name.lower()):
            found = [(engine.name, kind) for engine in ENGINES.values() if (kind := engine.kind_of(candidate or ""))]
            if found:
                (service.engine, service.kind), service.by_name = found[0], candidate != image_name(service)
                break
    return services


def propose(services: list[Service]) -> Proposal:
    services = classified(services)
    proposal = Proposal(binds={s.name: s.binds for s in services if s.binds})
    found = [item for engine in ENGINES.values()
             for item in engine.proposals(services, proposal.todo, proposal.unclassified)]
    order = list(ENGINES)
    taken = Counter(name for name, *_ in found)  # a Layra name shared by two components names neither
    for name, lead, settings, why in sorted(found, key=lambda f: (order.index(f[2]["engine"]), services.index(f[1]))):
        name = name if name and taken[name] == 1 else lead.name
        proposal.components[name], proposal.why[name] = settings, why
    others = [s for s in services if s.engine is None]
    for group in groups([s for s in others if s.volumes], lambda a, b: bool(set(a.volumes) & set(b.volumes))):
        names = ", ".join(s.name for s in group)
        volumes = ", ".join(dict.fromkeys(v for s in group for v in s.volumes))
        proposal.unclassified[names] = (
            f"no engine I know ({', '.join(s.origin for s in group)}); named volume {volumes}; "
            f"to archive (stops {'them all' if len(group) > 1 else 'it'} meanwhile): "
            f"{{engine: volumes, services: [{names}]}}")
    proposal.stateless = [s.name for s in others if not s.volumes]
    return proposal


def proposal_for(path: Path) -> Proposal:
    """The proposal for the compose file at ``path`` (``ComposeError`` when it is not one)."""
    return propose(load(path))


def comments(proposal: Proposal) -> list[str]:
    """What the map cannot say, as ``# `` lines to follow it."""
    lines = []
    sections = [
        ("To fill in (the compose file does not say):", proposal.todo),
        ("Could not classify (exit 3):", [f"{s}: {why}" for s, why in proposal.unclassified.items()]),
        ("Stateless (no named volume, nothing to back up):",
         [", ".join(proposal.stateless)] if proposal.stateless else []),
        ("Bind mounts (host paths, never archived; a rollback brings back only what git holds):",
         [f"{s}: {', '.join(binds)}" for s, binds in proposal.binds.items()]),
        ("Why:", [f"{name}: {'; '.join(why)}" for name, why in proposal.why.items()]),
    ]
    for title, entries in sections:
        if entries:
            lines += [f"# {title}"] + [f"#   {entry}" for entry in entries]
    return lines


class Dumper(yaml.SafeDumper):
    """Block mappings, lists on one line: ``services: [milvus-standalone, milvus-etcd]``."""


Dumper.add_representer(list, lambda dumper, items: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", items, flow_style=True))


def as_yaml(proposal: Proposal) -> str:
    return yaml.dump({"layra_components": proposal.components}, Dumper=Dumper, sort_keys=False,
                     default_flow_style=False, width=1000)
