"""Downloadable presets, with the download replaced by a local file (tests never use the network)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from core import data, presets
from tests.conftest import make_zip, png


def hymenoptera_like() -> bytes:
    members = {f"hymenoptera_data/{split}/{label}/{i}.png": png(colour)
               for split, count in (("train", 4), ("val", 2))
               for label, colour in (("ants", "black"), ("bees", "yellow")) for i in range(count)}
    return make_zip(members).getvalue()


def test_a_preset_is_downloaded_once_then_used_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_EXPLORER_DATA", str(tmp_path))
    calls = []

    def fake_download(url, target, on_progress=None):
        calls.append(url)
        Path(target).write_bytes(hymenoptera_like())
        if on_progress:
            on_progress(10, 10)

    monkeypatch.setattr(presets, "download", fake_download)
    name = presets.fetch("hymenoptera")
    assert presets.is_downloaded("hymenoptera") and calls == [presets.PRESETS["hymenoptera"].url]
    loaded = data.image_folder(Path(name.removeprefix(data.FOLDER_PREFIX)))
    assert loaded.classes == ("ants", "bees")  # train/ and val/ pooled, then split with our seed
    assert len(loaded.train) + len(loaded.val) + len(loaded.test) == 12
    assert presets.fetch("hymenoptera") == name and len(calls) == 1  # no second download


def test_offline_the_preset_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_EXPLORER_DATA", str(tmp_path))

    def offline(url, target, on_progress=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(presets, "download", offline)
    with pytest.raises(data.DatasetUnavailableError, match="generated shapes"):
        presets.fetch("rock_paper_scissors")
    assert not presets.is_downloaded("rock_paper_scissors")
    with pytest.raises(ValueError, match="Unknown preset"):
        presets.fetch("imagenet")
