"""Words for the things the app names: data sets, strategies, counts and number lists, as a reader sees them.

Stored ids (``fashion_mnist``, ``feature_extraction``, ``folder:/…/uploads/3fa4…``) stay what the run store and
the URLs hold; everything drawn on a page goes through here, so one rule names each thing everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

FOLDER_PREFIX = "folder:"  # core.data.FOLDER_PREFIX (not imported: this module stays free of torch)
DATASETS = {"digits": "Digits", "shapes": "Shapes", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
            "cifar10": "CIFAR-10"}
STRATEGIES = {"feature_extraction": "Feature extraction", "partial": "Partial fine-tuning",
              "full": "Full fine-tuning", "": "From scratch"}
UPLOAD_FOLDER = re.compile(r"[0-9a-f]{16,64}")  # an uploaded zip's folder is named by its content's hash
UPLOAD_NAME = ".upload-name"  # in that folder: the zip's own file name, written when it is extracted


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 model"``, ``"3 models"``, ``"1,200 images"``; ``nouns`` for an irregular plural."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def every(count: int, noun: str, nouns: str | None = None) -> str:
    """``"the model"`` for one, ``"both models"`` for two, ``"all 5 models"`` beyond."""
    many = nouns or noun + "s"
    return f"the {noun}" if count == 1 else f"both {many}" if count == 2 else f"all {count:,} {many}"


def short_authors(authors: str) -> str:
    """A paper's authors as a table cites them: ``"Simonyan, Zisserman"`` for two, ``"Szegedy et al."`` beyond
    (surnames: the last word of each comma-separated name)."""
    surnames = [name.split()[-1] for name in authors.split(",") if name.strip()]
    return ", ".join(surnames) if len(surnames) <= 2 else f"{surnames[0]} et al."


def strategy_title(strategy: str | None) -> str:
    """``"feature_extraction"`` → ``"Feature extraction"``; ``""`` or ``None`` (a run from scratch) → ``"From scratch"``."""
    key = strategy or ""
    return STRATEGIES.get(key, key.replace("_", " ").capitalize())


def dataset_title(name: str, upload_name: str | None = None) -> str:
    """A data set as a reader names it: ``"Fashion-MNIST"``, a folder by its own name (``"rock-paper-scissors"``),
    an uploaded zip by its file name (``upload_name``) or else as ``"uploaded zip"``; never a path or a hash."""
    if name in DATASETS:
        return DATASETS[name]
    if not name.startswith(FOLDER_PREFIX):
        return name.replace("_", " ")
    path = name.removeprefix(FOLDER_PREFIX).replace("\\", "/")
    parts = [part for part in PurePosixPath(path).parts if part not in ("/", "")]
    if parts and UPLOAD_FOLDER.fullmatch(parts[-1]):
        return upload_name or _upload_name(path) or "uploaded zip"
    named = [part for part in parts if not UPLOAD_FOLDER.fullmatch(part)]
    return named[-1] if named else "folder"


def _upload_name(path: str) -> str | None:
    """The file name an uploaded zip's folder keeps beside its classes (``UPLOAD_NAME``), if it is there."""
    try:
        text = (Path(path) / UPLOAD_NAME).read_text(errors="replace")[:80]
    except OSError:
        return None
    return "".join(c for c in text if c.isprintable()).strip() or None


def number_list(values: Iterable[float]) -> str:
    """``(0.1307,)`` → ``"0.1307"``; ``(0.485, 0.456, 0.406)`` → ``"0.485, 0.456, 0.406"`` (no tuple syntax)."""
    return ", ".join(f"{value:g}" for value in values)
