"""The layering rule, read from the import graph: pages → explorer → core; core never imports streamlit.

Every ``import x`` and ``from x import y`` counts, at any depth (inside functions and ``if`` blocks too),
relative imports resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (``from a import b`` yields ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module:
                found.add(module)
            found.update(f"{module}.{alias.name}" if module else alias.name for alias in node.names
                         if alias.name != "*")
    return found


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in _sources(folder):
        bad = sorted({name for name in imports(path) if any(_within(name, f) for f in forbidden)})
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_core_imports_neither_streamlit_nor_the_shell() -> None:
    assert _violations("core", ("streamlit", "explorer", "pages")) == {}


def test_the_explanation_oracles_stay_in_the_tests() -> None:
    """Captum and pytorch-grad-cam check core.attributions in the tests; the app never needs them."""
    oracles = ("captum", "pytorch_grad_cam")
    assert _violations("core", oracles) == {} and _violations("explorer", oracles) == {}
    assert _violations("pages", oracles) == {}


def test_pages_reach_core_only_through_explorer() -> None:
    assert _violations("pages", ("core",)) == {}


def test_explorer_never_imports_a_page() -> None:
    assert _violations("explorer", ("pages",)) == {}


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in tests/conftest.py and helper modules (apptest, browser, hostile, footprint), so a test
    module can move or be deleted without breaking another's collection."""
    found = {str(path.relative_to(ROOT)): sorted(name for name in imports(path) if name.startswith("tests.test_"))
             for path in sorted((ROOT / "tests").glob("*.py"))}
    assert {path: names for path, names in found.items() if names} == {}


@pytest.mark.parametrize(("source", "expected"), [
    ("import streamlit as st", {"streamlit"}),
    ("from core.models import build", {"core.models", "core.models.build"}),
    ("def f():\n    from core import engine\n", {"core", "core.engine"}),
    ("if True:\n    import core.runs\n", {"core.runs"}),
    ("from . import services", {"explorer", "explorer.services"}),
    ("from .. import core", {"core"}),
])
def test_the_reader_finds_every_kind_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                               expected: set[str]) -> None:
    """The checks above can fail: each form of import is seen, nested ones and relative ones included."""
    module = tmp_path / "explorer" / "probe.py"
    module.parent.mkdir()
    module.write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert imports(module) == expected


def _module_level_imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it is loaded: not inside functions, not under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, node.module] if node.module else base)
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return found


def _import_cycles(folder: str) -> list[list[str]]:
    """Strongly connected groups of more than one module in ``folder``'s module-level import graph (a package and
    its own submodules do not count as a cycle: its ``__init__`` re-exports them)."""
    modules = {_module_name(path): path for path in _sources(folder)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _module_level_imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and not _within(target, name) and not _within(name, target):
                targets.add(target)
        graph[name] = targets
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def test_core_has_no_import_cycles() -> None:
    assert _import_cycles("core") == []


def test_the_cycle_rule_sees_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("import pkg.a\n")
    (tmp_path / "pkg" / "c.py").write_text("def f():\n    import pkg.a\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert _import_cycles("pkg") == [["pkg.a", "pkg.b"]]
