"""Sidecars: the JSON that describes a checkpoint's weights, and what each field must be to be used.

A sidecar is a file anyone with the folder can edit: building a model needs its fields to have the right types,
and the pages read its figures only when they have the shape the pages expect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ExplorerError

REQUIRED = ("arch", "classes", "in_channels", "input_size", "mean", "std")  # what building the model needs


class CheckpointError(ExplorerError):
    """A checkpoint that is missing, damaged, non-finite, or does not fit the architecture it claims."""


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _numbers(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


# What each field building the model needs must be (a sidecar is a file anyone with the folder can edit).
_SIDECAR_TYPES: dict[str, Callable[[object], bool]] = {
    "arch": lambda value: isinstance(value, str),
    "classes": lambda value: isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value),
    "in_channels": _count, "input_size": _count, "mean": _numbers, "std": _numbers,
}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _index(value: object, below: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0 and (below is None or value < below)


def sound_test_figures(test: object) -> dict[str, Any] | None:
    """A sidecar's test figures if they have the shape the pages read (one name per class, numbers where numbers
    belong, a square confusion matrix, misclassified images paired with predicted classes), else None."""
    if not isinstance(test, dict):
        return None
    classes = test.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(name, str) for name in classes)):
        return None
    size = len(classes)
    confusion, per_class = test.get("confusion"), test.get("per_class")
    wrong, predicted = test.get("misclassified") or [], test.get("predicted") or []
    fits = (_number(test.get("accuracy")) and _number(test.get("loss"))
            and isinstance(confusion, list) and len(confusion) == size
            and all(isinstance(row, list) and len(row) == size and all(map(_index, row)) for row in confusion)
            and isinstance(per_class, list) and len(per_class) == size
            and all(isinstance(row, dict) and all(_number(row.get(k)) for k in ("precision", "recall", "f1"))
                    for row in per_class)
            and isinstance(wrong, list) and isinstance(predicted, list) and len(wrong) == len(predicted)
            and all(map(_index, wrong)) and all(_index(label, size) for label in predicted))
    return test if fits else None


EPOCH_FIGURES = ("train_loss", "train_acc", "val_loss", "val_acc")  # what the pages draw of every epoch


def sound_history(rows: object) -> list[dict[str, Any]]:
    """The epochs of a sidecar's history that have a count for their epoch and numbers for all their figures,
    the drawn ones included (others are left out)."""
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, dict) and _index(row.get("epoch")) and row["epoch"] > 0
            and all(key in row for key in EPOCH_FIGURES) and all(_number(row[key]) for key in row if key != "epoch")]


def parse_sidecar(data: bytes, name: str) -> dict[str, Any]:
    """The sidecar in ``data`` (the file ``name``), checked: a JSON object with every field building the model
    needs, each of the right type."""
    try:
        sidecar = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"The sidecar {name} is not valid JSON ({error}).") from None
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"The sidecar {name} is not a JSON object.")
    for key in REQUIRED:
        if key not in sidecar:
            raise CheckpointError(f"The sidecar {name} lacks {key!r}.")
    wrong = [key for key, fits in _SIDECAR_TYPES.items() if not fits(sidecar[key])]
    if wrong:
        raise CheckpointError(f"The sidecar {name} has {', '.join(map(repr, wrong))} of the wrong type "
                              "(arch: a name; classes: a list of names; in_channels, input_size: positive whole "
                              "numbers; mean, std: lists of numbers).")
    return sidecar


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (``path`` is the weights file)."""
    sidecar_path = Path(path).with_suffix(".json")
    try:
        data = sidecar_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"No sidecar {sidecar_path.name} beside {Path(path).name}.") from None
    except OSError as error:
        raise CheckpointError(f"The sidecar {sidecar_path.name} cannot be read ({error.strerror or error}).") from None
    return parse_sidecar(data, sidecar_path.name)
