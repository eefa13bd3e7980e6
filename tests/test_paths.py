"""core.paths: the state folder and every ``CNN_EXPLORER_*`` setting are read in one place (issue 19)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core import paths

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"CNN_EXPLORER_[A-Z_]+")
# core.weights belongs to the model registry's work (issue 19 wave 1): it still names its mirror variable itself.
ELSEWHERE = {"core/weights.py"}


def _named_settings(path: Path) -> set[str]:
    """String literals in ``path`` that are exactly a setting's name (docstrings and messages only mention them)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value)}


def test_only_core_paths_names_a_setting() -> None:
    sources = [path for folder in ("core", "explorer", "scripts") for path in sorted((ROOT / folder).rglob("*.py"))]
    found = {str(path.relative_to(ROOT)): names for path in sources
             if path.name != "paths.py" and str(path.relative_to(ROOT)) not in ELSEWHERE
             and (names := _named_settings(path))}
    assert found == {}


def test_settings_keep_their_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (paths.STATE_ENV, paths.DATA_ENV, paths.FOLDERS_ENV, paths.HEARTBEAT_TIMEOUT_ENV,
                 paths.BUSY_TIMEOUT_ENV, paths.DIST_TIMEOUT_ENV, paths.SHARE_ENV, paths.UPLOADS_ENV, paths.CPU_BFLOAT16_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.state_dir() == (tmp_path / "state").resolve()
    assert paths.data_dir() == tmp_path.resolve() / "state" / "data"
    assert paths.folders_dir() == (tmp_path / "state" / "folders").resolve()
    assert (paths.heartbeat_timeout(), paths.busy_timeout(), paths.dist_timeout()) == (30.0, 120.0, 300.0)
    assert paths.share_idle_cores() and paths.cpu_bfloat16() and paths.uploads_max_bytes() == 2048 * 2**20
    monkeypatch.setenv(paths.BUSY_TIMEOUT_ENV, "-3")  # not positive: the default
    monkeypatch.setenv(paths.HEARTBEAT_TIMEOUT_ENV, "soon")  # not a number: the default
    monkeypatch.setenv(paths.SHARE_ENV, " No ")
    monkeypatch.setenv(paths.CPU_BFLOAT16_ENV, "off")
    assert (paths.busy_timeout(), paths.heartbeat_timeout(), paths.share_idle_cores()) == (120.0, 30.0, False)
    assert not paths.cpu_bfloat16()


def test_the_state_folder_moves_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.data import data_dir
    from core.runs import RunStore, state_dir

    monkeypatch.setenv(paths.STATE_ENV, str(tmp_path / "elsewhere"))
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    assert state_dir() == tmp_path / "elsewhere" == RunStore().root
    assert data_dir() == tmp_path / "elsewhere" / "data"
