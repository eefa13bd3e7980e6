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
