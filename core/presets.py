"""Image-folder data sets to download once: the course notes' rock-paper-scissors, the PyTorch tutorial's
ants and bees, and Oxford's Flowers-102. Each lands in ``<data dir>/presets/NAME`` as class folders and is
then an ordinary ``folder:PATH`` data set. Offline, the error says what was tried and what works instead.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import archives
from core.data import FOLDER_PREFIX, DatasetUnavailableError, data_dir, image_folder
from core.errors import ExplorerError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Preset:
    """A downloadable data set."""

    name: str
    title: str
    url: str
    description: str


PRESETS: dict[str, Preset] = {
    "rock_paper_scissors": Preset("rock_paper_scissors", "Rock, paper, scissors",
                                  "https://storage.googleapis.com/download.tensorflow.org/data/rps.zip",
                                  "The course notes' example: 2,520 computer-generated hands, 3 classes."),
    "hymenoptera": Preset("hymenoptera", "Ants and bees",
                          "https://download.pytorch.org/tutorial/hymenoptera_data.zip",
                          "PyTorch's transfer-learning tutorial: about 400 photos, 2 classes."),
    "flowers102": Preset("flowers102", "Flowers-102", "torchvision:Flowers102",
                         "Oxford's 102 flower categories, 8,189 photos (through torchvision)."),
}


def folder(name: str) -> Path:
    """Where preset ``name`` is kept once downloaded."""
    return data_dir() / "presets" / name


def is_downloaded(name: str) -> bool:
    """True if the preset is on disk, ready to use offline."""
    return (folder(name) / "READY").exists()


def download(url: str, target: Path, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Fetch ``url`` into ``target`` (through a partial file), reporting (bytes done, bytes total)."""
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as sink:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(CHUNK):
                sink.write(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def fetch(name: str, on_progress: Callable[[int, int], None] | None = None) -> str:
    """Make preset ``name`` available (downloading once) and return its ``folder:PATH`` data-set name."""
    if name not in PRESETS:
        raise ExplorerError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    preset, home = PRESETS[name], folder(name)
    if not is_downloaded(name):
        shutil.rmtree(home, ignore_errors=True)
        try:
            if preset.url.startswith("torchvision:"):
                _flowers(home)
            else:
                archive = home.with_name(name + ".zip")
                archive.parent.mkdir(parents=True, exist_ok=True)
                download(preset.url, archive, on_progress)
                archives.extract_zip(archive, home / "extracted")
                archive.unlink()
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            shutil.rmtree(home, ignore_errors=True)
            raise DatasetUnavailableError(
                f"{preset.title} is not on this machine and could not be downloaded from {preset.url} ({error}). "
                f"Online, try again; offline, use the generated shapes, or upload a zip of class folders.") from None
        (home / "READY").write_text(preset.url)
    root = _class_root(home)
    image_folder(root)  # fails clearly if the download was not what it should be
    return FOLDER_PREFIX + str(root)


def _class_root(home: Path) -> Path:
    return archives.class_root(home / "extracted") if (home / "extracted").exists() else home / "classes"


def _flowers(home: Path) -> None:
    """Flowers-102 through torchvision, rearranged into one folder per class."""
    import torchvision

    raw = home / "torchvision"
    classes = home / "classes"
    for split in ("train", "val", "test"):
        dataset = torchvision.datasets.Flowers102(str(raw), split=split, download=True)
        names = getattr(dataset, "classes", None)
        for path, label in zip(dataset._image_files, dataset._labels, strict=True):
            class_name = names[label] if names else f"{label + 1:03d}"
            destination = classes / class_name / Path(path).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    shutil.rmtree(raw, ignore_errors=True)
