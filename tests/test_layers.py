"""The code's structure, read from its imports (the standard library's ``ast``): the layers
point one way, facts <- operations <- pyinfra_deploys <- the entry files; no module of
ours imports another that (through any chain) imports it back; and no import of ours
hides inside a function, where a reader would miss a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("facts", "operations", "pyinfra_deploys")
LAYER = {"facts": 0, "operations": 1, "pyinfra_deploys": 2}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(module of ours imported, whether at the top of the module) for each import."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, id(node) in top))
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: {target for target, _ in imports(name, path, set(found))} for name, path in found.items()}


def test_no_module_of_ours_imports_inside_a_function():
    found = modules()
    lazy = sorted(f"{name} -> {target}" for name, path in found.items()
                  for target, at_top in imports(name, path, set(found)) if not at_top)
    assert lazy == []


def test_the_layers_point_one_way():
    upward = sorted(f"{name} -> {target}" for name, targets in graph().items() for target in targets
                    if LAYER[target.split(".")[0]] > LAYER[name.split(".")[0]])
    assert upward == []


def test_no_import_cycle_among_our_modules():
    edges = graph()
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_graph_is_read_at_all():
    edges = graph()
    assert "facts.mysql" in edges["pyinfra_deploys.engines.mysql"]
    assert "operations.mysql" in edges["pyinfra_deploys.engines.mysql"]
    assert "pyinfra_deploys.engines" in edges["pyinfra_deploys.rollback"]
