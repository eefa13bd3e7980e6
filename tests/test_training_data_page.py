"""The Training page says, before Start, whether MNIST is on this machine and where it is looked for, and takes
the four official files by upload."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import data
from tests.apptest import open_page


@pytest.fixture
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data folder of this test's own (the session's is shared by every test)."""
    monkeypatch.setenv("CNN_EXPLORER_DATA", str(tmp_path / "data"))
    data.load.cache_clear()
    yield (tmp_path / "data").resolve()
    data.load.cache_clear()


def official_files() -> list[tuple[str, bytes, str]]:
    """The four MNIST files at their official sizes (blank images, labels 0–9), gzipped as published."""
    files = []
    for split, count in (("train", 60_000), ("t10k", 10_000)):
        images = struct.pack(">IIII", 2051, count, 28, 28) + bytes(count * 28 * 28)
        labels = struct.pack(">II", 2049, count) + bytes(i % 10 for i in range(count))
        for kind, raw in ((f"{split}-images-idx3-ubyte.gz", images), (f"{split}-labels-idx1-ubyte.gz", labels)):
            files.append((kind, gzip.compress(raw, compresslevel=1), "application/gzip"))
    return files


def test_mnist_absent_then_uploaded_then_found(data_folder: Path) -> None:
    at = open_page("training")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    raw = str(data_folder / "MNIST" / "raw")
    assert any("not on this machine" in i.value for i in at.info)
    assert any(raw in c.value and "t10k-labels-idx1-ubyte" in c.value for c in at.code), [c.value for c in at.code]
    uploader = at.file_uploader(key="train-files-mnist")
    bad = [("notes.txt", b"not an idx file at all", "text/plain")]
    uploader.set_value(bad).run()
    assert not at.exception
    assert any("notes.txt is not an MNIST idx file" in e.value.replace("\\", "") for e in at.error)
    at.file_uploader(key="train-files-mnist").set_value([("x.gz", b"", "application/gzip")] * 5).run()
    assert any("at most the four" in e.value for e in at.error)
    at.file_uploader(key="train-files-mnist").set_value(official_files()).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("mnist found" in s.value for s in at.success)
    assert any(c.value == raw for c in at.code)
    assert sorted(p.name for p in Path(raw).iterdir()) == sorted(name.removesuffix(".gz")
                                                                for name, _, _ in official_files())


def test_cifar_absent_names_its_folder_and_offers_no_upload(data_folder: Path) -> None:
    at = open_page("training")
    at.selectbox(key="train-dataset").set_value("cifar10").run()
    assert any(str(data_folder / "cifar-10-batches-py") in c.value and "data_batch_1" in c.value for c in at.code)
    assert not at.file_uploader


def test_messages_name_the_data_folder_as_it_is_and_hide_other_server_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runs import state_dir
    from explorer import services

    monkeypatch.delenv("CNN_EXPLORER_DATA", raising=False)
    folder = data.data_dir().resolve() / "MNIST"
    assert folder.is_relative_to(state_dir().resolve()), "by default the data folder is in the state folder"
    text = services.public_text(f"mnist is not in {folder}; runs are in {state_dir() / 'runs'}")
    assert text == f"mnist is not in {folder}; runs are in state folder/runs"
