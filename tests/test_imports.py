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
    """Shared test helpers live in tests/conftest.py and helper modules (apptest, browser, hostile), so a test
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
