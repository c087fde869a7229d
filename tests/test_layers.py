"""The floors of the house (README "Layout", DESIGN.md): nothing imports upward, no import loops.

Every import counts, at module level or inside a function (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "tasks", "model", "review_ui", "flows")

#: (unit, floor): a module may import its own unit and units on lower floors only.
FLOORS = (
    ("core", 0),  # shared rules, settings base, data-root layout: numpy / pydantic only
    ("tasks.catalog", 1),
    ("tasks.ingest", 2),
    ("tasks.labels", 3),
    ("tasks.review", 4),
    ("tasks.publish", 4),
    ("tasks.audit", 5),
    ("model", 6),
    ("review_ui", 6),
    ("flows", 7),
)


def unit_of(module: str) -> str:
    for unit, _ in sorted(FLOORS, key=lambda u: -len(u[0])):
        if module == unit or module.startswith(unit + "."):
            return unit
    raise AssertionError(f"{module} belongs to no floor: add its package to FLOORS (and to README's layout)")


def floor_of(module: str) -> int:
    return dict(FLOORS)[unit_of(module)]


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:  # alembic scripts, run by the catalog
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            if name in PACKAGES and name not in dict(FLOORS):  # ``tasks``: a folder of stage packages, no code
                assert not path.read_text().strip(), f"{path} must stay empty"
                continue
            found[name] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its body (``from a import b`` counts a.b if it is a module)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            candidates = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for cand in candidates:
            # the longest project module the name lies in (``tasks.labels.process.process_pair`` -> the module)
            while cand and cand not in modules:
                cand = cand.rpartition(".")[0]
            if cand and cand != name and cand.split(".")[0] in PACKAGES and cand not in PACKAGES:
                out.add(cand)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_floor(graph):
    for name in graph:
        unit_of(name)


def test_nothing_imports_upward_or_sideways(graph):
    bad = []
    for name, targets in graph.items():
        for target in targets:
            same_unit = unit_of(target) == unit_of(name)
            if not same_unit and floor_of(target) >= floor_of(name):
                bad.append(f"{name} (floor {floor_of(name)}) imports {target} (floor {floor_of(target)})")
    assert not bad, "imports that run up or sideways:\n" + "\n".join(sorted(bad))


def test_no_import_loops(graph):
    """No module reaches itself through imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                loops.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not loops, f"import loops: {loops}"


def test_the_checker_sees_an_upward_and_a_lazy_import(tmp_path):
    """The rules above can fail: a lazy upward import in a function is found."""
    module = tmp_path / "mod.py"
    module.write_text("def f():\n    from flows.config import load_config\n    return load_config\n")
    found = imports_of("tasks.labels.fake", module, {"flows.config", "tasks.labels.fake"})
    assert found == {"flows.config"}
    assert floor_of("flows.config") > floor_of("tasks.labels.fake")
