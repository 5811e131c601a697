"""The package's layers (docs/design.md, "Layout"): every module belongs to one, imports point down only,
there is no import cycle, and no module imports another of the package inside a function to dodge one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "broker"

#: Layer of each top-level module or sub-package; a module may import its own layer and the ones below.
LAYERS: dict[str, int] = {
    "broker": 0, "broker.settings": 0, "broker.sentinel_url": 0, "broker.errors": 0, "broker.schemas": 0,
    "broker.client": 0,  # runs in users' programs: the base modules and libraries only, never the server
    "broker.store": 1,
    "broker.services": 2, "broker.push": 2, "broker.embedded": 2, "broker.telemetry": 2,
    "broker.jobs": 3,
    "broker.http": 4, "broker.sqs": 4,  # the SQS edge, mounted by broker.http.app
    "broker.cli": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return LAYERS[name]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS here and to docs/design.md")


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module of the package, line, inside a function) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, inner) for a in child.names if a.name.startswith("broker"))
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("broker"):
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                        PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").exists()
                    found.append((candidate if is_module else child.module, child.lineno, inner))
            visit(child, inner)

    visit(tree, False)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_scan_sees_the_package() -> None:
    assert {"broker.http.app", "broker.store.queues", "broker.cli.main", "broker.jobs.runner"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = layer_of(module)
    for imported, line, inside in imports(MODULES[module]):
        where = f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"
        assert not inside, f"{where} imports {imported} inside a function"
        assert layer_of(imported) <= own, f"{where}: {module} (layer {own}) imports {imported} " \
                                          f"(layer {layer_of(imported)})"


def test_no_import_cycle() -> None:
    graph = {m: {i for i, _, _ in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    # A package's __init__ may re-export its modules; an import of the package is an import of the __init__.
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
