"""Shared fixtures: a fixed seed and the registry's names."""

from __future__ import annotations

import pytest
import torch

from core import models

NAMES = models.names()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs, checkpoints and data sets of the whole test session go to a temporary state directory."""
    import os

    os.environ["CNN_EXPLORER_STATE"] = str(tmp_path_factory.mktemp("state"))


# Helpers shared by test files (import them from here: no test file imports another) ---------------

FAST = dict(optimizer="adam", lr=3e-3, batch_size=16, weight_decay=0.0)  # a recipe that learns tiny() in a few epochs


def tiny(classes: int = 3, per_class: int = 24, size: int = 28, channels: int = 1):
    """A learnable toy set: each class is a bright square in its own corner."""
    from core import data

    generator = torch.Generator().manual_seed(0)
    images, labels = [], []
    for label in range(classes):
        for _ in range(per_class):
            image = torch.randint(0, 40, (channels, size, size), generator=generator, dtype=torch.uint8)
            row, column = divmod(label, 2)
            image[:, row * 14:row * 14 + 10, column * 14:column * 14 + 10] = 250
            images.append(image)
            labels.append(label)
    train, val, test = data._split(torch.stack(images), torch.tensor(labels), (0.6, 0.2), seed=0)
    return data.InMemoryData("tiny", tuple(map(str, range(classes))), train, val, test, (0.2,) * channels,
                             (0.3,) * channels)


def make_image_folder(root, classes=("circle", "square"), per_class: int = 6):
    """A tiny generated image folder: one sub-folder per class, plus files that are not images."""
    from PIL import Image, ImageDraw

    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            picture = Image.new("RGB", (40 + i, 36), "white")
            draw = ImageDraw.Draw(picture)
            box = (8, 8, 30, 28)
            (draw.ellipse if label == 0 else draw.rectangle)(box, fill=(200, 30 * i, 40))
            picture.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
        (folder / "notes.txt").write_text("not an image")
        (folder / ".DS_Store").write_bytes(b"\0")
    (root / "__MACOSX").mkdir()
    return root


class Recorder:
    """A subscriber that records every hook call, and the progress snapshots it was given."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.snapshots: list = []

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda progress: (self.calls.append(name), self.snapshots.append(progress))
        raise AttributeError(name)
