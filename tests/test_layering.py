"""dlhwc's layers import downward only, and no module imports itself in a circle.

    spec  <-  dialects  <-  compiler  <-  runtime  <-  backends

`spec` (the ground layer: fixed point, errors, file output, ISA tables, configs, the
container, the encoding, the target registry) imports nothing of dlhwc's; `dialects`
only `spec`; `compiler` never imports `runtime` or `backends` (it finds targets, their
passes, simulators and golden models through the registry); `runtime` never imports
`backends`. Every import of dlhwc's code is absolute, under the `dlhwc` namespace. Imports
inside functions count as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("spec", "dialects", "compiler", "runtime", "backends")
RANK = {name: i for i, name in enumerate(LAYERS)}


def _modules() -> dict[str, Path]:
    mods = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported name) of every absolute import in the file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _resolve(name: str) -> str | None:
    """The dlhwc module an imported name lives in (None: not dlhwc's)."""
    if not name.startswith("dlhwc."):
        return None
    name = name.removeprefix("dlhwc.")
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for _, name in _imports(path):
            target = _resolve(name)
            if target and target != mod:
                graph[mod].add(target)
    return graph


def test_every_import_of_dlhwc_code_is_under_the_namespace():
    bare = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in [*MODULES.values(), *sorted((ROOT / "tests").rglob("*.py"))]
        for line, name in _imports(path)
        if name.split(".")[0] in LAYERS
    ]
    assert not bare, "\n".join(bare)


def test_layers_import_downward_only():
    upward = [
        f"{mod} -> {dep}"
        for mod, deps in _graph().items()
        for dep in sorted(deps)
        if RANK[dep.split(".")[0]] > RANK[mod.split(".")[0]]
    ]
    assert not upward, "\n".join(upward)


def test_no_module_imports_itself_in_a_circle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)
