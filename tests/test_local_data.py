"""MNIST from a local copy: where it is looked for, the four official files checked by content and installed,
and the offline failure in words."""

from __future__ import annotations

import gzip
import socket
import struct
import urllib.error

import pytest
import torch

from core import data, local_data

SMALL = {"train": 24, "t10k": 6}  # the official counts are 60,000 and 10,000


def idx(magic: int, dims: tuple[int, ...], payload: bytes, packed: bool = True) -> bytes:
    """An idx file (gzipped if ``packed``), as the official ones are written."""
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload
    return gzip.compress(raw, compresslevel=1) if packed else raw


def official(counts: dict[str, int] = SMALL, packed: bool = True) -> dict[str, bytes]:
    """The four files, named as published."""
    files = {}
    for split, count in counts.items():
        images = torch.randint(0, 255, (count, 28, 28), dtype=torch.uint8).numpy().tobytes()
        labels = (torch.arange(count, dtype=torch.uint8) % 10).numpy().tobytes()
        suffix = ".gz" if packed else ""
        files[f"{split}-images-idx3-ubyte{suffix}"] = idx(2051, (count, 28, 28), images, packed)
        files[f"{split}-labels-idx1-ubyte{suffix}"] = idx(2049, (count,), labels, packed)
    return files


@pytest.mark.parametrize("packed", [True, False])
def test_the_four_files_are_recognised_by_content_and_installed(tmp_path, packed: bool) -> None:
    assert local_data.missing("mnist", tmp_path) == list(local_data.KINDS)
    renamed = [(f"download ({i}).bin", payload) for i, payload in enumerate(official(packed=packed).values())]
    installed = local_data.install("mnist", renamed, tmp_path, counts=SMALL)
    assert sorted(installed) == sorted(local_data.KINDS)
    assert local_data.missing("mnist", tmp_path) == []
    assert local_data.folder("mnist", tmp_path) == (tmp_path / "MNIST" / "raw").resolve()
    assert not list(local_data.folder("mnist", tmp_path).glob("*.part")), "no temporary file is left"
    mnist = data.torchvision_set("mnist", tmp_path, download=False)
    assert len(mnist.train) + len(mnist.val) == 24 and len(mnist.test) == 6


def bad_cases() -> list[tuple[str, bytes, str]]:
    images = bytes(6 * 28 * 28)
    good = official()["t10k-images-idx3-ubyte.gz"]
    return [
        ("magic.gz", idx(2052, (6, 28, 28), images), "magic number is 2052"),
        ("cut.gz", good[: len(good) // 2], "not a complete gzip file"),
        ("cut-raw", idx(2051, (6, 28, 28), images[:-100], packed=False), "truncated or padded"),
        ("count.gz", idx(2049, (7,), bytes(7)), "holds 7 labels; the official files hold 24 or 6"),
        ("cifar.gz", idx(2051, (6, 32, 32), bytes(6 * 32 * 32)), "32×32 images"),
        ("labels.gz", idx(2049, (6,), bytes([0, 1, 2, 3, 4, 10])), "labels above 9"),
        ("tiny", b"\x00\x00", "too short"),
        ("huge", bytes(16 + 24 * 784 + 1), "larger than any official"),
    ]


@pytest.mark.parametrize(("name", "payload", "message"), bad_cases(), ids=[case[0] for case in bad_cases()])
def test_a_bad_file_is_named_with_the_reason_and_nothing_is_written(tmp_path, name, payload, message) -> None:
    uploads = [*official().items(), (name, payload)]
    with pytest.raises(local_data.IdxFileError, match=message) as caught:
        local_data.install("mnist", uploads, tmp_path, counts=SMALL)
    assert str(caught.value).startswith(name)
    assert not local_data.folder("mnist", tmp_path).exists() or not any(local_data.folder("mnist", tmp_path).iterdir())


def test_counts_must_be_the_official_ones_and_each_kind_comes_once(tmp_path) -> None:
    files = official()
    with pytest.raises(local_data.IdxFileError, match="holds 24 images; the official files hold 60,000 or 10,000"):
        local_data.check("train-images-idx3-ubyte.gz", files["train-images-idx3-ubyte.gz"])
    twice = [("a.gz", files["t10k-labels-idx1-ubyte.gz"]), ("b.gz", files["t10k-labels-idx1-ubyte.gz"])]
    with pytest.raises(local_data.IdxFileError, match="a.gz and b.gz are both the test labels"):
        local_data.install("fashion_mnist", twice, tmp_path, counts=SMALL)
    with pytest.raises(local_data.IdxFileError, match="Only MNIST and Fashion-MNIST"):
        local_data.install("cifar10", twice, tmp_path, counts=SMALL)


def test_offline_the_failure_names_the_real_folder_in_words(tmp_path, monkeypatch) -> None:
    import torchvision.datasets.mnist as mnist

    def offline(url: str, **_: object) -> None:
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.torchvision_set("mnist", tmp_path / "data", download=True)
    message = str(caught.value)
    assert "no internet connection" in message and "Errno" not in message
    assert str((tmp_path / "data" / "MNIST" / "raw").resolve()) in message
    with pytest.raises(data.DatasetUnavailableError, match="cifar-10-batches-py folder at /"):
        data.torchvision_set("cifar10", tmp_path / "data", download=False)
