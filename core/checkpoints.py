"""Checkpoints: safetensors weights, a JSON sidecar that describes them, and the state a run resumes from.

A run's folder holds up to two checkpoints, ``best`` (by validation loss) and ``last`` (every epoch end,
and where training stopped), each ``<which>.safetensors`` + ``<which>.json``; beside the last one,
``last.state.pt`` holds what resuming needs (optimiser, schedule, random generators, counters).

The sidecar records the SHA-256 of its weights file, the epoch and step they were taken at, and their
own validation and test figures. Loading checks the hash and refuses non-finite weights. Every file is
written to a temporary ``*.tmp`` beside it and renamed over the old one, so a crash never leaves a
half-written checkpoint where a good one was; the temporary files of an interrupted write are removed
the next time the folder is written, or read once they are old.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from core import models
from core.errors import ExplorerError, plain, quoted

if TYPE_CHECKING:
    from core.training.config import TrainConfig
    from core.training.progress import Progress

Which = Literal["best", "last"]
TEMPORARY_SUFFIX = ".tmp"
STALE_AFTER = 600.0  # seconds: a temporary file this old is no write in progress any more
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


def weights_path(folder: Path, which: Which) -> Path:
    """Where the ``which`` checkpoint of a run folder lives (its sidecar is beside it, ``.json``)."""
    return Path(folder) / f"{which}.safetensors"


def state_path(folder: Path) -> Path:
    """Where the training state beside the last checkpoint lives."""
    return Path(folder) / "last.state.pt"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def clean_temporary(folder: Path, older_than: float = 0.0) -> list[Path]:
    """Remove the temporary files interrupted writes left in ``folder`` (those older than ``older_than``
    seconds: a reader passes STALE_AFTER so that a write in progress elsewhere is left alone)."""
    removed = []
    now = time.time()
    for path in Path(folder).glob(f"*{TEMPORARY_SUFFIX}"):
        try:
            if now - path.stat().st_mtime >= older_than:
                path.unlink()
                removed.append(path)
        except OSError:  # its writer renamed it meanwhile, or the folder is read-only: nothing to clean here
            continue
    return removed


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(weights: dict[str, torch.Tensor] | nn.Module, path: Path, sidecar: dict[str, Any]) -> dict[str, Any]:
    """Write weights as safetensors and ``sidecar`` (plus the weights' SHA-256) as JSON beside them.

    Returns the sidecar as written.
    """
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state.items()}
    data = save_safetensors(tensors)
    sidecar = {**sidecar, "sha256": _sha256(data), "weights": Path(path).name, "saved": time.time()}
    atomic_write(Path(path), data)
    atomic_write(Path(path).with_suffix(".json"), json.dumps(sidecar, indent=2).encode())
    return sidecar


def update_sidecar(path: Path, **fields: Any) -> dict[str, Any]:
    """Change fields of a checkpoint's sidecar (test figures, final status); the weights are untouched."""
    sidecar = {**read_sidecar(path), **fields}
    atomic_write(Path(path).with_suffix(".json"), json.dumps(sidecar, indent=2).encode())
    return sidecar


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (``path`` is the weights file)."""
    sidecar_path = Path(path).with_suffix(".json")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"No sidecar {sidecar_path.name} beside {Path(path).name}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"The sidecar {sidecar_path.name} is not valid JSON ({error}).") from None
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"The sidecar {sidecar_path.name} is not a JSON object.")
    for key in REQUIRED:
        if key not in sidecar:
            raise CheckpointError(f"The sidecar {sidecar_path.name} lacks {key!r}.")
    wrong = [key for key, fits in _SIDECAR_TYPES.items() if not fits(sidecar[key])]
    if wrong:
        raise CheckpointError(f"The sidecar {sidecar_path.name} has {', '.join(map(repr, wrong))} of the wrong type "
                              "(arch: a name; classes: a list of names; in_channels, input_size: positive whole "
                              "numbers; mean, std: lists of numbers).")
    return sidecar


def load_weights(path: Path, sidecar: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, after checking them against the sidecar's SHA-256 and for NaN/infinity."""
    path = Path(path)
    sidecar = sidecar if sidecar is not None else read_sidecar(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path.name} cannot be read ({error.strerror or error}).") from None
    expected = sidecar.get("sha256")  # absent in checkpoints saved before the hash was recorded
    if expected is not None and _sha256(data) != expected:
        raise CheckpointError(f"{path.name} does not match the SHA-256 its sidecar recorded: the file was changed "
                              "or damaged after it was saved, so it is not loaded.")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path.name} is not a readable safetensors file ({plain(error)}).") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path.name} holds non-finite weights (NaN or infinity, first in {quoted(name)}): "
                                  "a model with them cannot classify, so it is not loaded.")
    return tensors


def build(sidecar: dict[str, Any]) -> nn.Module:
    """The untrained model a sidecar describes."""
    try:
        if sidecar.get("strategy"):  # a transfer model: the backbone with the notes' head
            from core import transfer

            return transfer.build(sidecar["arch"], num_classes=len(sidecar["classes"]))
        return models.build(sidecar["arch"], num_classes=len(sidecar["classes"]), in_channels=sidecar["in_channels"])
    except ExplorerError as error:
        raise CheckpointError(f"The sidecar describes a model this app cannot build: {error}") from None


def load(path: Path, expected_arch: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the sidecar's architecture and load the checked weights, in eval mode; every problem is a
    CheckpointError saying what."""
    from core.weights import bad_values, mismatches

    path = Path(path)
    clean_temporary(path.parent, older_than=STALE_AFTER)
    sidecar = read_sidecar(path)
    if expected_arch is not None and sidecar["arch"] != expected_arch:
        raise CheckpointError(f"This checkpoint is a {quoted(sidecar['arch'])}, not a {expected_arch}.")
    model = build(sidecar)
    tensors = load_weights(path, sidecar)
    problems = mismatches(model, tensors, shown=5)
    if problems:
        raise CheckpointError(f"{path.name} does not fit {quoted(sidecar['arch'])} ({problems}).")
    values = bad_values(model, tensors)  # after the cast to the model's types: float64 1e300 is inf in float32
    if values:
        raise CheckpointError(f"{path.name} cannot be used: {values}.")
    model.load_state_dict(tensors)
    return model.eval(), sidecar


def saved(folder: Path) -> dict[str, dict[str, Any]]:
    """The sidecars of the checkpoints a run folder holds, by name (``best``, ``last``); unreadable ones left out."""
    found = {}
    for which in ("best", "last"):
        path = weights_path(folder, which)
        if path.exists():
            try:
                found[which] = read_sidecar(path)
            except CheckpointError:
                continue
    return found


def save_training_state(folder: Path, state: dict[str, Any]) -> None:
    """Write what resuming needs beside the last checkpoint (tensors and plain values only)."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(state_path(folder), buffer.getvalue())


def load_training_state(folder: Path) -> dict[str, Any]:
    """The training state beside the last checkpoint (loaded with ``weights_only``: no code runs)."""
    path = state_path(folder)
    if not path.exists():
        raise CheckpointError(f"{Path(folder).name} has no training state ({path.name}) to resume from: "
                              "the run saved no checkpoint yet.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (pickle, zip and format errors all mean: unreadable)
        raise CheckpointError(f"{path.name} cannot be read ({type(error).__name__}: {error}).") from None


def preferred(folder: Path) -> Path | None:
    """The checkpoint a run is shown, classified and downloaded by: the best by validation if an epoch was
    validated, else the last (a run stopped in its first epoch), else None."""
    for which in ("best", "last"):
        path = weights_path(folder, which)
        if path.exists():
            return path
    return None


class Writer:
    """Writes the checkpoints of one run into its folder and remembers what it wrote.

    ``guard`` is called right before every write and raises when this process may no longer write the run's
    checkpoints (its claim was taken over, see core.claims): nothing is written then.
    """

    def __init__(self, folder: Path, run_id: str | None, mean: tuple[float, ...], std: tuple[float, ...],
                 guard: Callable[[], None] | None = None) -> None:
        self.guard = guard or (lambda: None)
        self.folder = Path(folder)
        self.run_id = run_id or self.folder.name
        self.mean, self.std = list(mean), list(std)
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_temporary(self.folder)  # this run is the folder's only writer: any temporary file is stale
        self.written: dict[str, dict[str, Any]] = saved(self.folder)  # a resumed run's checkpoints count

    def sidecar(self, progress: Progress, which: Which, complete: bool) -> dict[str, Any]:
        """What describes a checkpoint taken at ``progress``: enough to rebuild the model, its run, and where
        in the run it was taken; test figures are added when the run ends."""
        from core.training.config import config_dict

        config = progress.config
        epoch_figures = progress.history[-1].as_dict() if complete and progress.history else None
        return {"arch": config.arch, "classes": list(progress.classes), "in_channels": progress.model.in_channels,
                "input_size": progress.input_size, "mean": self.mean, "std": self.std, "strategy": config.strategy,
                "dataset": config.dataset, "run_id": self.run_id, "config": config_dict(config), "which": which,
                "epoch": progress.epoch, "step": progress.step, "epoch_complete": complete,
                "metrics": epoch_figures, "history": [row.as_dict() for row in progress.history],
                "status": progress.status, "test": None}

    def save(self, which: Which, weights: dict[str, torch.Tensor] | nn.Module, progress: Progress,
             complete: bool, training_state: dict[str, Any] | None = None) -> None:
        """Write the ``which`` checkpoint (and, for the last one, the training state that resumes from it)."""
        self.guard()
        sidecar = save(weights, weights_path(self.folder, which), self.sidecar(progress, which, complete))
        if training_state is not None:
            save_training_state(self.folder, {**training_state, "weights_sha256": sidecar["sha256"]})
        self.written[which] = sidecar

    def update(self, which: Which, **fields: Any) -> None:
        """Change fields of a written checkpoint's sidecar (its test figures, the run's final status)."""
        if which in self.written:
            self.guard()
            self.written[which] = update_sidecar(weights_path(self.folder, which), **fields)

    def describe(self) -> str:
        """What is kept, in words: for the messages of a run that stopped or failed."""
        parts = []
        for which in ("last", "best"):
            sidecar = self.written.get(which)
            if sidecar is not None:
                where = (f"end of epoch {sidecar['epoch']}" if sidecar.get("epoch_complete")
                         else f"epoch {sidecar['epoch']}, step {sidecar['step']}")
                parts.append(f"the {which} checkpoint ({where})")
        if not parts:
            return "No checkpoint was saved."
        return "Kept: " + " and ".join(parts) + "."


@dataclass(frozen=True)
class Resume:
    """What a run continues from: the last checkpoint's weights and training state, and the best weights."""

    weights: dict[str, torch.Tensor]
    state: dict[str, Any]
    best_weights: dict[str, torch.Tensor] | None
    sidecar: dict[str, Any]


def read_resume(folder: Path, config: TrainConfig) -> Resume:
    """Read and check what resuming the run in ``folder`` with ``config`` needs; a CheckpointError says what
    is missing or does not match."""
    from core.training.config import config_dict

    folder = Path(folder)
    path = weights_path(folder, "last")
    if not path.exists():
        raise CheckpointError(f"Run {folder.name} has no last checkpoint to resume from: it ended before "
                              "saving one.")
    sidecar = read_sidecar(path)
    weights = load_weights(path, sidecar)
    state = load_training_state(folder)
    if state.get("weights_sha256") != sidecar.get("sha256"):
        raise CheckpointError(f"The training state in {folder.name} belongs to other weights than "
                              f"{path.name} (a write was interrupted between the two); it cannot be resumed.")
    saved_config = state.get("config", {})
    different = [key for key, value in config_dict(config).items() if key != "device" and saved_config.get(key) != value]
    if different:
        raise CheckpointError(f"Run {folder.name} was trained with other settings ({', '.join(different)}); "
                              "it resumes only with its own.")
    best_path = weights_path(folder, "best")
    best = load_weights(best_path) if best_path.exists() else None
    return Resume(weights, state, best, sidecar)
