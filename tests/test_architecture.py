"""The dependency rules of ARCHITECTURE.md, checked on the source.

The import graph is read from the code (every ``import`` anywhere in a module, also
inside functions and under ``TYPE_CHECKING``), so a rule broken by a hidden import
fails here as much as one broken at the top of a file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sorregistry", "hierarchy", "applications", "notifications")
FEATURES = ("hierarchy", "applications", "notifications", "sorregistry.accounts")
# The composition root names the features; the CLI entry point and the package's lazy
# create_app attribute lead to it.
COMPOSITION = {"sorregistry.app", "sorregistry.cli", "sorregistry"}
MAX_LINES = 500
# Modules being split on their own branches; this set empties as each lands.
SPLIT_UNDER_WAY: set[str] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str) -> Iterator[str]:
    """The project modules *module* imports (a name imported from a package counts as
    its submodule when there is one)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if candidate in MODULES:
                    yield candidate
                elif target in MODULES:
                    yield target


GRAPH = {module: set(_imports(module)) - {module} for module in MODULES}


def _cycle() -> list[str] | None:
    """One import cycle among the modules, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for start in sorted(GRAPH):
        if state.get(start):
            continue
        path = [start]
        iterators = [iter(sorted(GRAPH[start]))]
        state[start] = 1
        while iterators:
            following = next(iterators[-1], None)
            if following is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(following) == 1:
                return [*path[path.index(following):], following]
            elif not state.get(following):
                state[following] = 1
                path.append(following)
                iterators.append(iter(sorted(GRAPH[following])))
    return None


def _is_feature(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FEATURES)


def test_the_graph_is_read_from_the_code() -> None:
    # A guard against a test that passes because it reads nothing.
    assert "sorregistry.app" in GRAPH and "hierarchy" in GRAPH["sorregistry.app"]
    assert "sorregistry.security" in GRAPH["applications.routes"]


def test_a_cycle_is_found_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GRAPH, "sorregistry.errors", GRAPH["sorregistry.errors"] | {"hierarchy"})
    monkeypatch.setitem(GRAPH, "hierarchy", GRAPH["hierarchy"] | {"sorregistry.errors"})
    cycle = _cycle()
    assert cycle is not None and "hierarchy" in cycle and "sorregistry.errors" in cycle


def test_no_import_cycle_between_modules() -> None:
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_core_imports_no_feature() -> None:
    core = [m for m in MODULES if not _is_feature(m) and m not in COMPOSITION]
    offenders = {m: sorted(filter(_is_feature, GRAPH[m])) for m in core}
    assert {m: f for m, f in offenders.items() if f} == {}


def test_only_the_composition_root_imports_create_app() -> None:
    offenders = [
        module for module, path in MODULES.items()
        if module not in COMPOSITION and "create_app" in path.read_text(encoding="utf-8")
        and "sorregistry.app" in GRAPH[module]
    ]
    assert offenders == []


@pytest.mark.parametrize("rule", [
    ("hierarchy", ("applications", "notifications", "sorregistry.accounts")),
    ("notifications", ("applications", "hierarchy", "sorregistry.accounts")),
    ("applications", ("sorregistry.accounts",)),
], ids=lambda rule: rule[0])
def test_one_way_dependencies_between_features(rule: tuple[str, tuple[str, ...]]) -> None:
    """The register knows nothing of applications or mail; mail is told what to send."""
    feature, forbidden = rule
    offenders = {
        module: sorted(t for t in GRAPH[module]
                       if any(t == f or t.startswith(f + ".") for f in forbidden))
        for module in MODULES if module == feature or module.startswith(feature + ".")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_no_module_over_500_lines_unless_its_docstring_says_why() -> None:
    long = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES or module in SPLIT_UNDER_WAY:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "one module" not in docstring.lower():
            long.append(f"{module} ({text.count(chr(10))} lines)")
    assert long == []
