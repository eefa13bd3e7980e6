"""The data sets: built-in sets offline, MNIST from local files, image folders, health checks."""

from __future__ import annotations

import gzip
import struct

import pytest
import torch

from core import data
from tests.conftest import make_image_folder


def test_digits_is_the_offline_default() -> None:
    digits = data.digits()
    assert (digits.channels, digits.size, len(digits.classes)) == (1, 28, 10)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert digits.train.images.dtype == torch.uint8


def _idx(path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as handle:
        handle.write(header + payload)


def test_mnist_from_a_local_copy_of_the_official_gz_files(tmp_path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 24), ("t10k", 6)):
        images = torch.randint(0, 255, (count, 28, 28), dtype=torch.uint8)
        labels = torch.arange(count, dtype=torch.uint8) % 10
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", 2051, (count, 28, 28), images.numpy().tobytes())
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", 2049, (count,), labels.numpy().tobytes())
    mnist = data.torchvision_set("mnist", tmp_path, download=False)
    assert len(mnist.train) + len(mnist.val) == 24 and len(mnist.test) == 6
    assert mnist.channels == 1 and mnist.size == 28


def test_missing_data_set_offline_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(data.DatasetUnavailableError, match="digits"):
        data.torchvision_set("fashion_mnist", tmp_path, download=False)


def test_bad_image_folders_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        data.image_folder(tmp_path / "missing")
    (tmp_path / "one").mkdir()
    with pytest.raises(ValueError, match="at least two class folders"):
        data.image_folder(tmp_path)
    make_image_folder(tmp_path / "few", per_class=2)
    with pytest.raises(ValueError, match="too few in: 'circle', 'square'"):
        data.image_folder(tmp_path / "few")


def test_generated_shapes_and_health() -> None:
    shapes = data.load("shapes")
    assert shapes.classes == ("circle", "square", "triangle") and (shapes.channels, shapes.size) == (3, 64)
    report = data.health(shapes)
    assert sum(sum(s.values()) for s in report.per_class.values()) == 900
    assert report.sizes == {"64×64": 900} and report.duplicates == 0


def test_health_finds_duplicates_across_splits(tmp_path) -> None:
    import shutil

    folder = make_image_folder(tmp_path / "shapes")
    loaded = data.image_folder(folder)
    assert data.health(loaded).duplicates == 0
    shutil.copy(loaded.train.paths[0], loaded.val.paths[0])  # leak a training image into validation
    assert data.health(loaded).duplicates == 1
    assert data.health(loaded).skipped == 4


# A folder (or zip) with its own train / val / test folders keeps that split ---------------------------------------


def _parts(loaded: data.FolderData) -> dict[str, set[str]]:
    """The folder each split's images come from (train, val, test, or a class folder)."""
    return {name: {path.parent.parent.name for path in getattr(loaded, name).paths} for name in ("train", "val", "test")}


def test_a_folder_with_its_own_train_val_and_test_folders_keeps_them(tmp_path) -> None:
    for split, count in (("train", 8), ("valid", 4), ("test", 3)):
        make_image_folder(tmp_path / "set" / split, per_class=count)
    loaded = data.image_folder(tmp_path / "set", size=16)
    assert loaded.classes == ("circle", "square")
    assert _parts(loaded) == {"train": {"train"}, "val": {"valid"}, "test": {"test"}}
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (16, 8, 6)
    assert loaded.split == "Split: the data set's own folders — training train/, validation valid/, test test/."
    assert data.health(loaded).split == loaded.split


def test_train_and_test_folders_only_carve_validation_out_of_train(tmp_path) -> None:
    make_image_folder(tmp_path / "set" / "train", per_class=10)
    make_image_folder(tmp_path / "set" / "test", per_class=3)
    loaded = data.image_folder(tmp_path / "set", size=16)
    assert _parts(loaded) == {"train": {"train"}, "val": {"train"}, "test": {"test"}}
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (2 * 8, 2 * 2, 2 * 3)  # 15 % of 10 → 2
    assert not set(loaded.train.paths) & set(loaded.val.paths)
    assert "validation 15 % of train/ at random (seed 0)" in loaded.split and "test test/" in loaded.split
    assert data.image_folder(tmp_path / "set", size=16, seed=0).val.paths == loaded.val.paths  # the seed decides
    assert data.image_folder(tmp_path / "set", size=16, seed=1).val.paths != loaded.val.paths


def test_split_folders_that_cannot_be_kept_are_pooled_and_say_so(tmp_path) -> None:
    make_image_folder(tmp_path / "set" / "train", classes=("circle", "square"), per_class=6)
    make_image_folder(tmp_path / "set" / "val", classes=("circle", "triangle"), per_class=6)
    loaded = data.image_folder(tmp_path / "set", size=16)
    assert loaded.classes == ("circle", "square", "triangle")
    assert "train/, val/ hold different classes" in loaded.split and "70/15/15 at random" in loaded.split
    flat = data.image_folder(make_image_folder(tmp_path / "flat"), size=16)
    assert flat.split == "Split: 70/15/15 at random within each class (seed 0)."
    assert data.load("digits").split == flat.split


def test_a_train_folder_too_small_to_carve_from_is_explained(tmp_path) -> None:
    make_image_folder(tmp_path / "set" / "train", per_class=1)
    make_image_folder(tmp_path / "set" / "val", per_class=3)
    with pytest.raises(ValueError, match="Class circle has 1 good images in train/, too few to carve test out of"):
        data.image_folder(tmp_path / "set", size=16)
