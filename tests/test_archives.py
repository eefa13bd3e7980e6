"""Zip uploads: safe extraction of class folders."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core import archives, data
from tests.conftest import make_zip, png


def classes(wrapper: str = "") -> dict[str, bytes]:
    members = {f"{wrapper}{label}/{i}.png": png(colour) for label, colour in (("cat", "red"), ("dog", "blue"))
               for i in range(3)}
    members[f"__MACOSX/{wrapper}cat/._0.png"] = b"resource fork"
    members[f"{wrapper}cat/.DS_Store"] = b"\0"
    members[f"{wrapper}README.txt"] = b"hello"
    return members


def test_a_single_wrapping_folder_is_descended_into(tmp_path: Path) -> None:
    result = archives.extract_zip(make_zip(classes("photos/")), tmp_path / "out")
    assert result.root == (tmp_path / "out" / "photos").resolve()
    assert (result.images, result.skipped) == (6, 3)
    loaded = data.image_folder(result.root, size=16)
    assert loaded.classes == ("cat", "dog")


@pytest.mark.parametrize("member", ["../evil.png", "a/../../evil.png", "/tmp/evil.png", "C:/evil.png"])
def test_paths_that_escape_are_refused(tmp_path: Path, member: str) -> None:
    with pytest.raises(archives.ArchiveError, match="outside"):
        archives.extract_zip(make_zip({**classes(), member: png()}), tmp_path / "out")
    assert not (tmp_path / "evil.png").exists() and not list(tmp_path.rglob("evil.png"))


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    with pytest.raises(archives.ArchiveError, match="symbolic link"):
        archives.extract_zip(make_zip(classes(), symlinks=("cat/link.png",)), tmp_path / "out")


def test_a_zip_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    bomb = make_zip({**classes(), "cat/bomb.png": b"\0" * (20 << 20)})
    with pytest.raises(archives.ArchiveError, match="zip bomb"):
        archives.extract_zip(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_size_and_count_limits(tmp_path: Path) -> None:
    with pytest.raises(archives.ArchiveError, match="MiB"):
        archives.extract_zip(make_zip(classes()), tmp_path / "a", max_total=100)
    with pytest.raises(archives.ArchiveError, match="members"):
        archives.extract_zip(make_zip(classes()), tmp_path / "b", max_members=3)


def test_not_a_zip_and_no_images(tmp_path: Path) -> None:
    with pytest.raises(archives.ArchiveError, match="not a readable zip"):
        archives.extract_zip(io.BytesIO(b"PK but not really"), tmp_path / "a")
    with pytest.raises(archives.ArchiveError, match="no images"):
        archives.extract_zip(make_zip({"notes.txt": b"x"}), tmp_path / "b")
