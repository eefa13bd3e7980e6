"""Data sets for training: small ones held in memory as uint8 tensors, image folders streamed.

* ``digits``: scikit-learn's bundled 8×8 handwritten digits upsampled to 28×28 — always offline.
* ``mnist``, ``fashion_mnist``, ``cifar10``: torchvision's, from a local copy in torchvision's
  layout (the official ``.gz`` files are accepted too) or downloaded when online.
* image folders: one sub-folder per class (see :func:`image_folder`).

In-memory sets are split once, with a seed, into train / validation / test.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core import paths
from core.errors import ExplorerError, quoted, quoted_list

IN_MEMORY = ("digits", "shapes", "mnist", "fashion_mnist", "cifar10")


class DatasetUnavailableError(ExplorerError):
    """The data set is not on disk and cannot be downloaded (offline)."""


@dataclass(frozen=True)
class Split:
    """Images as uint8 N × C × H × W and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        """One image, uint8 C × H × W."""
        return self.images[index]


@dataclass(frozen=True)
class InMemoryData:
    """A data set small enough to live in (device) memory, already split."""

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split: str = ""  # how it was split, in a sentence

    @property
    def channels(self) -> int:
        """Image channels (1 for digits, 3 for CIFAR-10)."""
        return int(self.train.images.shape[1])

    @property
    def size(self) -> int:
        """Image height (= width)."""
        return int(self.train.images.shape[-1])


def data_dir() -> Path:
    """Where data sets live: ``$CNN_EXPLORER_DATA``, else ``<state dir>/data``."""
    return paths.data_dir()


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the 0–1 scale."""
    scaled = images.float().div_(255)
    return tuple(scaled.mean(dim=(0, 2, 3)).tolist()), tuple(scaled.std(dim=(0, 2, 3)).tolist())


def _split(images: torch.Tensor, labels: torch.Tensor, fractions: tuple[float, ...], seed: int) -> tuple[Split, ...]:
    """Shuffle once with ``seed`` and cut into len(fractions) + 1 parts."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    images, labels = images[order], labels[order]
    cuts, start, parts = [], 0, []
    for fraction in fractions:
        start += round(fraction * len(labels))
        cuts.append(start)
    for begin, end in zip([0, *cuts], [*cuts, len(labels)], strict=True):
        parts.append(Split(images[begin:end].contiguous(), labels[begin:end].contiguous()))
    return tuple(parts)


def digits(seed: int = 0) -> InMemoryData:
    """scikit-learn's 1,797 handwritten digits (8×8, 0–16) upsampled to 28×28 uint8; 70/15/15 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # N x 1 x 8 x 8
    # 8×8 → 20×20 and centred in 28×28, as MNIST digits are.
    large = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False)
    images = (F.pad(large, (4, 4, 4, 4)).clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train, val, test = _split(images, labels, (0.7, 0.15), seed)
    mean, std = _stats(train.images)
    return InMemoryData("digits", tuple(str(i) for i in range(10)), train, val, test, mean, std,
                        _random_text((0.7, 0.15), seed, []))


SHAPES = ("circle", "square", "triangle")


def shapes(seed: int = 0, per_class: int = 300, size: int = 64) -> InMemoryData:
    """A generated photo-like set that always works offline: brightly coloured circles, squares and
    triangles of random size and place on grey textured backgrounds (RGB, 64×64); 70/15/15 split."""
    from PIL import Image, ImageDraw, ImageFilter

    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    images, labels = [], []
    for label, shape in enumerate(SHAPES):
        for _ in range(per_class):
            noise = (torch.rand(size // 8, size // 8, 1, generator=generator) * 80 + 70).expand(-1, -1, 3)
            noise = (noise + torch.rand(size // 8, size // 8, 3, generator=generator) * 30).to(torch.uint8)
            background = Image.fromarray(noise.numpy(), "RGB").resize((size, size), Image.Resampling.BICUBIC)
            picture = background.filter(ImageFilter.GaussianBlur(1))
            draw = ImageDraw.Draw(picture)
            radius = uniform(0.2, 0.35) * size
            cx, cy = uniform(radius, size - radius), uniform(radius, size - radius)
            bright = int(torch.randint(0, 3, (), generator=generator))  # a saturated colour on a grey texture
            colour = tuple(int(uniform(200, 255)) if c == bright else int(uniform(0, 60)) for c in range(3))
            if shape == "circle":
                draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
            elif shape == "square":
                draw.rectangle((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
            else:
                draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=colour)
            images.append(torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8).view(size, size, 3))
            labels.append(label)
    stacked = torch.stack(images).permute(0, 3, 1, 2).contiguous()
    train, val, test = _split(stacked, torch.tensor(labels), (0.7, 0.15), seed)
    mean, std = _stats(train.images)
    return InMemoryData("shapes", SHAPES, train, val, test, mean, std, _random_text((0.7, 0.15), seed, []))


_TORCHVISION = {
    "mnist": ("MNIST", "MNIST"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
}


def _gunzip_raw(raw: Path) -> None:
    """Unpack ``*.gz`` idx files torchvision would otherwise try to download again (it checks archive checksums)."""
    if not raw.is_dir():
        return
    for archive in raw.glob("*-ubyte.gz"):
        target = archive.with_suffix("")
        if not target.exists():
            partial = target.with_name(target.name + ".part")
            with gzip.open(archive, "rb") as source, open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            partial.replace(target)  # atomic: a half-written file never looks complete


def torchvision_set(name: str, root: Path | None = None, download: bool = True, seed: int = 0,
                    val_fraction: float = 1 / 12) -> InMemoryData:
    """MNIST, Fashion-MNIST or CIFAR-10 from ``root`` (downloading if allowed and needed).

    The official training set is split into train and validation; the official test set is the test set.
    Raises DatasetUnavailableError with the expected location when the files are missing offline.
    """
    import torchvision

    if name not in _TORCHVISION:
        raise ExplorerError(f"Unknown data set {name!r}; choose one of {', '.join(IN_MEMORY)}.")
    root = Path(root) if root is not None else data_dir()
    class_name, folder = _TORCHVISION[name]
    factory = getattr(torchvision.datasets, class_name)
    _gunzip_raw(root / folder / "raw")
    try:
        train_set = factory(str(root), train=True, download=download)
        test_set = factory(str(root), train=False, download=download)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a missing file without download is a RuntimeError
        from core.local_data import unavailable

        raise DatasetUnavailableError(unavailable(name, (root / folder).resolve(), error, download)) from None

    def tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.as_tensor(dataset.data)
        images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # N x C x H x W
        return images.to(torch.uint8).contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64)

    images, labels = tensors(train_set)
    train, val = _split(images, labels, (1 - val_fraction,), seed)
    test = Split(*tensors(test_set))
    mean, std = _stats(train.images)
    return InMemoryData(name, tuple(str(c) for c in train_set.classes), train, val, test, mean, std,
                        f"Split: the official training set less {_percent(val_fraction)} % at random for validation "
                        f"(seed {seed}); the official test set.")


@functools.lru_cache(maxsize=4)
def load(name: str, root: Path | None = None, download: bool = True, seed: int = 0) -> InMemoryData | FolderData:
    """Load a data set by name: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10`` or ``folder:PATH``. Cached."""
    if name.startswith(FOLDER_PREFIX):
        return image_folder(Path(name.removeprefix(FOLDER_PREFIX)), seed=seed)
    if name == "digits":
        return digits(seed)
    if name == "shapes":
        return shapes(seed)
    return torchvision_set(name, root, download, seed)


# Image folders: the DataLoader path ------------------------------------------------------------------

FOLDER_PREFIX = "folder:"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
MIN_IMAGES_PER_CLASS = 3  # one each for train, validation and test
SPLIT_FOLDERS = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


@dataclass(frozen=True)
class FolderSplit:
    """Image files (each verified when the folder was scanned) and their labels; images are decoded when read."""

    paths: tuple[Path, ...]
    labels: torch.Tensor
    size: int
    channels: int

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        """Decode (within the pixel limit, reduced early), convert and resize one image to uint8 C × size × size."""
        from core import imaging

        return imaging.read_square(self.paths[index], self.size, self.channels)


@dataclass(frozen=True)
class FolderData:
    """A folder with one sub-folder of images per class (or its own train/val/test folders of them), split once."""

    name: str
    classes: tuple[str, ...]
    train: FolderSplit
    val: FolderSplit
    test: FolderSplit
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # ImageNet's: these sets meet pretrained backbones
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    skipped: int = 0  # hidden and non-image files left out
    rejected: tuple[tuple[str, str], ...] = ()  # (file relative to the folder, why): images that failed the check
    image_sizes: tuple[tuple[str, int], ...] = ()  # ("W×H" as stored, count) of the accepted images
    split: str = ""  # how it was split: its own train/val(/test) folders, or at random (image_folder says)

    @property
    def channels(self) -> int:
        """Image channels after conversion (3: RGB)."""
        return self.train.channels

    @property
    def size(self) -> int:
        """Images are resized to size × size."""
        return self.train.size


def image_folder(root: Path, size: int = 224, seed: int = 0, fractions: tuple[float, float] = (0.7, 0.15)) -> FolderData:
    """Scan ``root``/CLASS/*.{png,jpg,…}, verify every image once, and split it.

    A root that holds ``train/`` and ``val/`` (``valid/``, ``validation/``) and/or ``test/`` folders, each with
    the same class folders, keeps that split; a missing validation or test part is carved out of ``train/``
    with ``seed``. Otherwise each class is split 70/15/15 at random with ``seed`` (split folders whose classes
    differ are pooled first). ``FolderData.split`` says which. Hidden files, ``__MACOSX`` and non-images are
    skipped and counted. Every image is decoded completely (within the pixel limit, and it must be what its
    extension says); one that fails is left out and listed with the reason, and so is a link that leads out of
    ``root``. Fewer than two classes, or a class with fewer than three good images, is an ExplorerError.
    """
    root = Path(root)
    if not root.is_dir():
        raise ExplorerError(f"{root.name or root} is not a folder.")
    inside = root.resolve()
    roles, class_dirs, pooled = _layout(root, inside)
    names = sorted({d.name for d in class_dirs})
    skipped = 0
    candidates: list[tuple[int, str, Path]] = []
    for folder in class_dirs:
        files = sorted(f for f in folder.rglob("*") if f.is_file())
        images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")]
        skipped += len(files) - len(images)
        role = _ROLES.get(folder.parent.name.lower(), "") if roles else ""
        candidates.extend((names.index(folder.name), role, f) for f in images)
    per_class: list[list[tuple[Path, str]]] = [[] for _ in names]
    rejected: list[tuple[str, str]] = []
    sizes: dict[str, int] = {}
    for (label, role, path), outcome in zip(candidates, _verify_all([p for _, _, p in candidates], inside),
                                            strict=True):
        if isinstance(outcome, str):
            rejected.append((_relative(path, root), outcome))
            continue
        per_class[label].append((path, role))
        key = f"{outcome[0]}×{outcome[1]}"
        sizes[key] = sizes.get(key, 0) + 1
    _check_classes(root, names, per_class, rejected)
    found = {role for items in per_class for _, role in items}
    roles = {role: folder for role, folder in roles.items() if role in found or role == "train"}  # empty: carved
    if roles:
        parts, split_text = _kept_parts(per_class, roles, names, fractions, seed)
    else:
        parts, split_text = _random_parts(per_class, fractions, seed), _random_text(fractions, seed, pooled)

    def split(items: list[tuple[Path, int]]) -> FolderSplit:
        return FolderSplit(tuple(p for p, _ in items), torch.tensor([lab for _, lab in items], dtype=torch.int64),
                           size, 3)

    train, val, test = (split(part) for part in parts)
    return FolderData(FOLDER_PREFIX + str(root), tuple(names), train, val, test, skipped=skipped,
                      rejected=tuple(rejected), image_sizes=tuple(sorted(sizes.items(), key=lambda item: -item[1])),
                      split=split_text)


# What a split folder is for: train/ (training/), val/ (valid/, validation/), test/ (testing/).
_ROLES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
          "test": "test", "testing": "test"}
_ROLE_WORDS = {"train": "training", "val": "validation", "test": "test"}


def _subfolders(parent: Path, inside: Path) -> list[Path]:
    """Visible sub-folders of ``parent`` that stay inside ``inside`` (links out are ignored), sorted."""
    return sorted(d for d in parent.iterdir() if d.is_dir() and not d.name.startswith((".", "__MACOSX"))
                  and d.resolve().is_relative_to(inside))


def _layout(root: Path, inside: Path) -> tuple[dict[str, Path], list[Path], list[str]]:
    """(split folders kept, by role; the class folders; split folders pooled because their classes differ).

    Split folders are kept when ``root`` holds only split folders, one per role, ``train/`` among them, and
    each holds the same class folders."""
    top = _subfolders(root, inside)
    if not top or not all(d.name.lower() in SPLIT_FOLDERS for d in top):
        return {}, top, []
    class_dirs = [d for split in top for d in _subfolders(split, inside)]
    roles = {_ROLES[d.name.lower()]: d for d in top}
    same = len({frozenset(c.name for c in _subfolders(d, inside)) for d in top}) == 1
    if "train" in roles and len(roles) == len(top) >= 2 and same:
        return roles, class_dirs, []
    return {}, class_dirs, [d.name for d in top] if len(top) >= 2 else []


def _check_classes(root: Path, names: list[str], per_class: list[list[tuple[Path, str]]],
                   rejected: list[tuple[str, str]]) -> None:
    """Raise an ExplorerError unless there are two classes, each with at least three good images."""
    if len(names) < 2:
        raise ExplorerError(f"{root.name or root} needs at least two class folders (one sub-folder of images per "
                            f"class); found {len(names)}.")
    small = [name for name, images in zip(names, per_class, strict=True) if len(images) < MIN_IMAGES_PER_CLASS]
    if small:
        problems = f" ({len(rejected)} files failed the check, e.g. {quoted(rejected[0][0])}: {rejected[0][1]})" \
            if rejected else ""
        raise ExplorerError(f"Each class needs at least {MIN_IMAGES_PER_CLASS} good images; too few in: "
                            f"{quoted_list(small)}{problems}.")


def _random_parts(per_class: list[list[tuple[Path, str]]], fractions: tuple[float, float],
                  seed: int) -> list[list[tuple[Path, int]]]:
    """Each class cut at random (with ``seed``) into train / validation / test, at least one image in each."""
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[tuple[Path, int]]] = [[], [], []]
    for label, items in enumerate(per_class):
        images = [path for path, _ in items]
        order = torch.randperm(len(images), generator=generator).tolist()
        n_val = max(1, round(fractions[1] * len(images)))
        n_test = max(1, round((1 - fractions[0] - fractions[1]) * len(images)))
        n_train = len(images) - n_val - n_test
        for part, chosen in zip(parts, (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]),
                                strict=True):
            part.extend((images[i], label) for i in chosen)
    return parts


def _percent(fraction: float) -> str:
    """A fraction as a whole percentage, without the sign (0.15 → "15")."""
    return f"{round(100 * fraction)}"


def _random_text(fractions: tuple[float, float], seed: int, pooled: list[str]) -> str:
    """How a random split was made, in a sentence (and why split folders were pooled, if they were)."""
    cut = "/".join(_percent(f) for f in (fractions[0], fractions[1], 1 - fractions[0] - fractions[1]))
    text = f"Split: {cut} at random within each class (seed {seed})."
    if pooled:
        folders = ", ".join(f"{name}/" for name in pooled)
        text = (f"Split: the folders {folders} hold different classes, so their images were pooled, then cut "
                f"{cut} at random within each class (seed {seed}).")
    return text


def _kept_parts(per_class: list[list[tuple[Path, str]]], roles: dict[str, Path], names: list[str],
                fractions: tuple[float, float], seed: int) -> tuple[list[list[tuple[Path, int]]], str]:
    """The data set's own train / validation / test folders; a part it lacks is carved out of ``train/`` at
    random (with ``seed``): validation ``fractions[1]`` of it, test the rest of 1 − both fractions."""
    generator = torch.Generator().manual_seed(seed)
    carve = {"val": fractions[1], "test": 1 - fractions[0] - fractions[1]}
    missing = [role for role in ("val", "test") if role not in roles]
    parts: list[list[tuple[Path, int]]] = [[], [], []]
    for label, items in enumerate(per_class):
        own = {role: [path for path, where in items if where == role] for role in ("train", "val", "test")}
        train = own["train"]
        wanted = {role: max(1, round(carve[role] * len(train))) for role in missing}
        if len(train) - sum(wanted.values()) < 1:
            carved = f", too few to carve {' and '.join(_ROLE_WORDS[r] for r in missing)} out of" if missing else ""
            raise ExplorerError(f"Class {names[label]} has {len(train)} good images in {roles['train'].name}/"
                                f"{carved}: it needs at least {1 + sum(wanted.values())}.")
        order = torch.randperm(len(train), generator=generator).tolist()
        for role in missing:
            own[role], order = [train[i] for i in order[:wanted[role]]], order[wanted[role]:]
        own["train"] = [train[i] for i in sorted(order)]
        for part, role in zip(parts, ("train", "val", "test"), strict=True):
            part.extend((path, label) for path in own[role])
    said = [f"{_ROLE_WORDS[role]} {roles[role].name}/" for role in ("train", "val", "test") if role in roles]
    said += [f"{_ROLE_WORDS[role]} {_percent(carve[role])} % of {roles['train'].name}/ at random (seed {seed})"
             for role in missing]
    return parts, f"Split: the data set's own folders — {', '.join(said)}."


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


# Verified files: (path, size, modification time) → (width, height) or the reason it was refused. A file is
# decoded once however often its folder is scanned; a changed file is checked again.
_VERIFIED: dict[tuple[str, int, int], tuple[int, int] | str] = {}
_VERIFIED_LOCK = threading.Lock()
_VERIFIED_MAX = 200_000


def _verify(path: Path, inside: Path) -> tuple[int, int] | str:
    """(width, height) of a good image file, or why it is not one."""
    from core import imaging

    try:
        if not path.resolve().is_relative_to(inside):
            return "a link that leads out of the data-set folder"
        status = path.stat()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        return f"cannot be read ({getattr(error, 'strerror', None) or type(error).__name__})"
    key = (str(path), status.st_size, status.st_mtime_ns)
    with _VERIFIED_LOCK:
        known = _VERIFIED.get(key)
    if known is not None:
        return known
    try:
        outcome: tuple[int, int] | str = imaging.verify_file(path)
    except imaging.ImageError as error:
        outcome = str(error).removeprefix(path.name).strip(" :") or "not a readable image"
    with _VERIFIED_LOCK:
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[key] = outcome
    return outcome


def _verify_all(paths: list[Path], inside: Path) -> list[tuple[int, int] | str]:
    """:func:`_verify` over many files, two at a time (Pillow decodes without holding the interpreter; two large
    images at the pixel limit stay within the memory an upload may take)."""
    if len(paths) < 16:
        return [_verify(path, inside) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda path: _verify(path, inside), paths))


# Health of a data set ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """What to check before training: balance, image sizes, leaks between splits."""

    per_class: dict[str, dict[str, int]]  # class → {"train": n, "val": n, "test": n}
    sizes: dict[str, int]  # "W×H" of the stored images → count
    duplicates: int  # validation or test images identical to a training image
    skipped: int  # files left out (hidden, not images)
    rejected: tuple[tuple[str, str], ...] = ()  # (file, why): images that failed the check and were left out
    split: str = ""  # how the data set was split (its own folders, or at random)


def _fingerprints(split: Split | FolderSplit) -> list[bytes]:
    if isinstance(split, FolderSplit):
        return [hashlib.sha1(path.read_bytes()).digest() for path in split.paths]
    return [hashlib.sha1(image.numpy().tobytes()).digest() for image in split.images]


def health(dataset: InMemoryData | FolderData) -> Health:
    """Images per class and split, image sizes, and duplicates across train / validation / test."""
    per_class = {name: {"train": 0, "val": 0, "test": 0} for name in dataset.classes}
    for split_name in ("train", "val", "test"):
        for label in getattr(dataset, split_name).labels.tolist():
            per_class[dataset.classes[label]][split_name] += 1
    sizes: dict[str, int] = {}
    if isinstance(dataset, FolderData):
        sizes = dict(dataset.image_sizes)  # measured when the folder was scanned
    else:
        count = len(dataset.train) + len(dataset.val) + len(dataset.test)
        sizes[f"{dataset.size}×{dataset.size}"] = count
    seen = set(_fingerprints(dataset.train))
    duplicates = sum(1 for split in (dataset.val, dataset.test) for print_ in _fingerprints(split) if print_ in seen)
    return Health(per_class, sizes, duplicates, getattr(dataset, "skipped", 0), getattr(dataset, "rejected", ()),
                  dataset.split)
