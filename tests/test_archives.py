"""Zip uploads: safe extraction of class folders."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core import archives, data
from tests.conftest import at_once, make_zip, png


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


# Every way a zip or one of its members can fail ------------------------------------------------------------------

import os  # noqa: E402
import time  # noqa: E402

from core import imaging  # noqa: E402
from tests import hostile  # noqa: E402

BAD_ZIPS = hostile.bad_zips()


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_every_bad_zip_is_a_clear_refusal_that_leaves_nothing_behind(tmp_path: Path, case: str) -> None:
    payload, message = BAD_ZIPS[case]
    uploads = tmp_path / "uploads"
    with pytest.raises(archives.ArchiveError, match=message) as refusal:
        archives.extract_zip(io.BytesIO(payload), uploads / "digest")
    assert str(tmp_path) not in str(refusal.value)
    assert not uploads.exists() or not list(uploads.iterdir()), "no .partial, no half-extracted folder"
    good = archives.extract_zip(io.BytesIO(hostile.make_zip(hostile.good_members())), uploads / "good")
    assert data.image_folder(good.root, size=16).classes == ("cat", "dog")  # the next upload works


def test_bad_members_are_extracted_then_left_out_and_listed_by_the_scan(tmp_path: Path) -> None:
    bad = hostile.bad_members()
    members = {**hostile.good_members(), **{path: payload for path, payload in bad.values()}}
    extracted = archives.extract_zip(io.BytesIO(hostile.make_zip(members)), tmp_path / "out")
    loaded = data.image_folder(extracted.root, size=16)
    rejected = dict(loaded.rejected)
    assert set(rejected) == {path for path, _ in bad.values()}
    assert "pixels" in rejected["dog/huge.png"] and "pixels" in rejected["dog/real-huge.png"]
    assert "JPEG" in rejected["dog/wrong.jpg"] and "truncated" in rejected["cat/cut.jpg"]
    kept = {p.name for split in (loaded.train, loaded.val, loaded.test) for p in split.paths}
    assert kept == {"0.png", "1.png", "2.png"} and len(loaded.train) + len(loaded.val) + len(loaded.test) == 6
    health = data.health(loaded)
    assert health.rejected == loaded.rejected and sum(health.sizes.values()) == 6
    assert all(str(tmp_path) not in reason for reason in rejected.values())


def test_a_class_left_with_too_few_good_images_says_why(tmp_path: Path) -> None:
    members = {**hostile.good_members(), "dog/1.png": b"not a picture"}
    extracted = archives.extract_zip(io.BytesIO(hostile.make_zip(members)), tmp_path / "out")
    with pytest.raises(data.ExplorerError, match="too few in: 'dog'.*'dog/1.png'"):
        data.image_folder(extracted.root)


def test_a_server_folder_keeps_links_inside_it(tmp_path: Path) -> None:
    root = tmp_path / "set"
    for name, payload in hostile.good_members().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)
    outside = tmp_path / "secret.png"
    outside.write_bytes(hostile.png())
    (root / "cat" / "link.png").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    (root / "bird").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    loaded = data.image_folder(root, size=16)
    assert loaded.classes == ("cat", "dog")
    assert dict(loaded.rejected) == {"cat/link.png": "a link that leads out of the data-set folder"}


def test_a_changed_file_is_verified_again(tmp_path: Path) -> None:
    root = tmp_path / "set"
    for name, payload in hostile.good_members(per_class=4).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)
    assert not data.image_folder(root, size=16).rejected
    (root / "cat" / "3.png").write_bytes(b"now junk")
    os.utime(root / "cat" / "3.png", ns=(1, 1))
    assert dict(data.image_folder(root, size=16).rejected) == {"cat/3.png": "is not an image Pillow can read as PNG."}


def test_two_sessions_extracting_the_same_upload_both_succeed(tmp_path: Path) -> None:
    payload = hostile.make_zip(hostile.good_members(per_class=20))
    for trial in range(4):
        target = tmp_path / f"digest{trial}"
        results = at_once(lambda target=target: archives.extract_zip(io.BytesIO(payload), target), 2)
        assert all(isinstance(r, archives.Extracted) for r in results) and len(results) == 2, results
        assert len(list(target.rglob("*.png"))) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"digest{i}" for i in range(4)]


def test_the_uploads_folder_is_kept_under_its_cap_oldest_first(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    for age, name in enumerate(["newest", "middle", "used-by-a-run", "oldest"]):
        folder = uploads / name / "cat"
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(b"\0" * 1000)
        stamp = time.time() - 100 * (age + 1)
        os.utime(uploads / name, (stamp, stamp))
    stale = uploads / f".abc{archives.PARTIAL}xyz"
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    removed = archives.prune(uploads, max_bytes=2500, keep={uploads / "used-by-a-run" / "cat"})
    assert {p.name for p in removed} == {stale.name, "oldest", "middle"}
    assert sorted(p.name for p in uploads.iterdir()) == ["newest", "used-by-a-run"]


def test_images_in_a_zip_use_the_one_pixel_limit(tmp_path: Path) -> None:
    members = {**hostile.good_members(), **{f"cat/big{i}.png": hostile.png_stream(13000, 13000) for i in range(3)}}
    payload = hostile.make_zip(members)
    assert len(payload) < 200_000
    extracted = archives.extract_zip(io.BytesIO(payload), tmp_path / "out")
    loaded = data.image_folder(extracted.root, size=16)
    assert len(loaded.rejected) == 3 and all(f"{imaging.MAX_PIXELS:,}" in why for _, why in loaded.rejected)


# What issue 18's hostile inputs found ------------------------------------------------------------------------------


def test_a_zip_declaring_far_more_than_its_size_is_refused_before_writing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Every member under the per-member ratio, the total under 1 GiB, yet 20+ times the zip: a 6.7 MB zip wrote
    1 GiB before the scan refused it. Now the declared total is weighed against the zip's size first."""
    members = {f"{label}/{i}.bmp": bytes(range(256)) * 4096 + os.urandom(8192) for label in ("cat", "dog")
               for i in range(40)}  # 1 MiB each, compressing about 75-fold: 80 MiB in about 1 MiB
    payload = make_zip(members).getvalue()
    assert len(payload) < (2 << 20)
    written: list[str] = []
    monkeypatch.setattr(archives, "_copy_bounded", lambda _archive, info, _to: written.append(info.filename))
    with pytest.raises(archives.ArchiveError, match="times its size.*zip bomb.*Nothing was written"):
        archives.extract_zip(io.BytesIO(payload), tmp_path / "out")
    assert written == [] and list(tmp_path.iterdir()) == []
    archives.extract_zip(io.BytesIO(payload), tmp_path / "generous", max_total_ratio=1000)  # the bound, not the zip
    assert len(written) == 80


def test_a_one_class_zip_says_it_found_one_class(tmp_path: Path) -> None:
    """It said "found 0": its single class folder was taken for a wrapper and descended into."""
    members = {f"cat/{i}.png": png("red") for i in range(4)}
    wrapped = {f"photos/{name}": payload for name, payload in members.items()}
    for name, zipped in (("plain", make_zip(members)), ("wrapped", make_zip(wrapped))):
        extracted = archives.extract_zip(zipped, tmp_path / name)
        with pytest.raises(data.ExplorerError, match="at least two class folders.*found 1"):
            data.image_folder(extracted.root)
