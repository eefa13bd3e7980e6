"""Checkpoints: safetensors weights, a JSON sidecar that describes them, and the state a run resumes from.

A run's folder holds up to two checkpoints, ``best`` (by validation loss) and ``last`` (every epoch end, and where
training stopped). Each is a set of files made complete by a commit record written last (``core.checkpoint_sets``)::

    best.safetensors  best.json                  best.commit.json
    last.safetensors  last.json  last.state.pt   last.commit.json
    (while a set is being written: the previous one as last.prev.* with last.prev.commit.json)

``last.state.pt`` holds what resuming needs (optimiser, schedule, random generators, counters). The sidecar records
the SHA-256 of its weights, the epoch and step they were taken at, and their own validation and test figures; the
commit record names every file of the set with its SHA-256 and size. Readers take the newest complete set, so a
crash or a full disk during a save leaves the previous checkpoint in use; a folder written before commit records
existed is read as it always was (the sidecar's hash, the training state's ``weights_sha256``). Loading refuses
damaged and non-finite weights; the temporary files of an interrupted write are removed the next time the folder is
written, or read once they are old.
"""

from __future__ import annotations

import json
import os  # noqa: F401 (tests reach the file system calls of a write through this module)
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from core import checkpoint_sets
from core.checkpoint_format import (
    STALE_AFTER,
    Which,
    build,
    clean_temporary,
    encode,
    load,
    load_training_state,
    load_weights,
    model_from,
    preferred,
    read_state,
    save,
    save_training_state,
    saved,
    state_bytes,
    state_path,
    tensors_from,
    weights_path,
)
from core.checkpoint_sets import TEMPORARY_SUFFIX, CommittedSet, atomic_write
from core.errors import plain
from core.sidecars import (
    EPOCH_FIGURES,
    REQUIRED,
    CheckpointError,
    parse_sidecar,
    read_sidecar,
    sound_history,
    sound_test_figures,
)

if TYPE_CHECKING:
    from core.training.config import TrainConfig
    from core.training.progress import Progress

__all__ = [  # one place for the checkpoint API: the format's names, then what is defined here
    "EPOCH_FIGURES", "REQUIRED", "STALE_AFTER", "TEMPORARY_SUFFIX", "CheckpointError", "Which", "atomic_write", "build",
    "clean_temporary", "load", "load_training_state", "load_weights", "parse_sidecar", "preferred", "read_sidecar",
    "save", "save_training_state", "saved", "sound_history", "sound_test_figures", "state_path",
    "weights_path", "exists", "Checkpoint", "read_checkpoint", "damaged_best", "load_preferred", "Download",
    "downloads", "Writer", "Resume", "read_resume"]


def exists(folder: Path, which: Which) -> bool:
    """Whether the folder holds a ``which`` checkpoint at all (complete or not)."""
    return weights_path(folder, which).exists() or bool(checkpoint_sets.candidates(folder, which))


# Reading the newest complete set -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint as read: its bytes, sidecar, tensors and (when asked) training state."""

    which: Which
    weights: bytes
    sidecar_bytes: bytes
    sidecar: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any] | None


def _from_set(found: CommittedSet, which: Which, with_state: bool) -> Checkpoint:
    """The checkpoint in a recorded set, every file it reads checked against the record."""
    problem = found.problem()
    if problem is not None:
        raise ValueError(problem)
    weights, sidecar_bytes = found.read("safetensors"), found.read("json")
    sidecar = parse_sidecar(sidecar_bytes, found.path("json").name)
    tensors = tensors_from(weights, found.path("safetensors").name, sidecar)
    state = None
    if with_state:
        if not found.has("state.pt"):
            raise CheckpointError(f"{found.folder.name} has no training state ({which}.state.pt) to resume from.")
        state = read_state(found.read("state.pt"), found.path("state.pt").name)
    return Checkpoint(which, weights, sidecar_bytes, sidecar, tensors, state)


def _legacy(folder: Path, which: Which, with_state: bool) -> Checkpoint:
    """The checkpoint of a folder written before commit records, checked as it always was."""
    path = weights_path(folder, which)
    sidecar = read_sidecar(path)
    try:
        weights, sidecar_bytes = path.read_bytes(), path.with_suffix(".json").read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path.name} cannot be read ({error.strerror or error}).") from None
    tensors = tensors_from(weights, path.name, sidecar)
    state = None
    if with_state:
        state = load_training_state(folder)
        if state.get("weights_sha256") != sidecar.get("sha256"):
            raise CheckpointError(f"The training state in {Path(folder).name} belongs to other weights than "
                                  f"{path.name} (a write was interrupted between the two); it cannot be resumed.")
    return Checkpoint(which, weights, sidecar_bytes, sidecar, tensors, state)


def read_checkpoint(folder: Path, which: Which, with_state: bool = False) -> Checkpoint:
    """The newest complete ``which`` set of a run folder (the one in place, else the previous one kept while it
    was written), or its legacy files; a CheckpointError says why none can be used."""
    folder = Path(folder)
    clean_temporary(folder, older_than=STALE_AFTER)
    problems: list[str] = []
    for _ in range(2):  # a save may commit between reading a record and its files: look once more
        found = checkpoint_sets.candidates(folder, which)
        if not found:
            return _legacy(folder, which, with_state)
        for candidate in found:
            try:
                return _from_set(candidate, which, with_state)
            except (OSError, ValueError) as error:  # CheckpointError is a ValueError
                problems.append(plain(error).rstrip("."))
    try:  # no complete set: say what is wrong with the files in place, as a folder without records would
        _legacy(folder, which, with_state)
    except CheckpointError:
        raise
    raise CheckpointError(f"{problems[0][:1].upper()}{problems[0][1:]}.")


def damaged_best(error: CheckpointError, instead: str) -> str:
    """The message of a best checkpoint that cannot be used, and what is used ``instead``."""
    return f"The best checkpoint is damaged ({plain(error).rstrip('.')}); {instead}."


def load_preferred(folder: Path) -> tuple[nn.Module, dict[str, Any], str]:
    """The model a run classifies with: its best checkpoint, else its last; with a note (else "") when the best
    is damaged and the last is used instead. A CheckpointError says why neither can be used."""
    folder = Path(folder)
    damaged: CheckpointError | None = None
    if exists(folder, "best"):
        try:
            best = read_checkpoint(folder, "best")
            return model_from(best.tensors, best.sidecar, "best.safetensors"), best.sidecar, ""
        except CheckpointError as error:
            damaged = error
    if not exists(folder, "last"):
        raise damaged or CheckpointError(f"Run {folder.name} has no checkpoint.")
    try:
        last = read_checkpoint(folder, "last")
        model = model_from(last.tensors, last.sidecar, "last.safetensors")
    except CheckpointError as error:
        if damaged is None:
            raise
        raise CheckpointError(f"Neither checkpoint of run {folder.name} can be used: the best ({plain(damaged)}), "
                              f"the last ({plain(error)})") from None
    note = damaged_best(damaged, f"using the last one, epoch {last.sidecar.get('epoch')}") if damaged else ""
    return model, last.sidecar, note


@dataclass(frozen=True)
class Download:
    """A checkpoint as offered for download: its weights and sidecar, checked, or why it is not offered."""

    which: Which
    weights: bytes = b""
    sidecar: bytes = b""
    problem: str = ""


def downloads(folder: Path) -> dict[Which, Download]:
    """Each checkpoint of a run folder, its bytes checked against their SHA-256 before they are offered."""
    offered: dict[Which, Download] = {}
    for which in ("best", "last"):
        if exists(folder, which):
            try:
                found = read_checkpoint(folder, which)
                offered[which] = Download(which, found.weights, found.sidecar_bytes)
            except CheckpointError as error:
                offered[which] = Download(which, problem=plain(error))
    return offered


# Writing sets ------------------------------------------------------------------------------------------------


class Writer:
    """Writes the checkpoints of one run into its folder, each as a set with a commit record written last, and
    remembers what it wrote.

    ``guard`` is called right before every write and raises when this process may no longer write the run's
    checkpoints (its claim was taken over, see core.claims): nothing is written then.
    """

    SUFFIXES = {"best": ("safetensors", "json"), "last": ("safetensors", "json", "state.pt")}

    def __init__(self, folder: Path, run_id: str | None, mean: tuple[float, ...], std: tuple[float, ...],
                 guard: Callable[[], None] | None = None) -> None:
        self.guard = guard or (lambda: None)
        self.folder = Path(folder)
        self.run_id = run_id or self.folder.name
        self.mean, self.std = list(mean), list(std)
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_temporary(self.folder)  # this run is the folder's only writer: any temporary file is stale
        self.sets: dict[str, CommittedSet] = {}
        self.written: dict[str, dict[str, Any]] = {}  # a resumed run's checkpoints count
        for which in ("best", "last"):
            found = self._recover(which)
            if found is not None:
                self.sets[which] = found
                self.written[which] = parse_sidecar(found.path("json").read_bytes(), found.path("json").name)

    def _recover(self, which: Which) -> CommittedSet | None:
        """The complete set in place (an interrupted save undone); a legacy one gets its commit record."""
        found = checkpoint_sets.recover(self.folder, which)
        if found is not None or checkpoint_sets.candidates(self.folder, which) or not exists(self.folder, which):
            return found
        suffixes = [s for s in self.SUFFIXES[which] if (self.folder / f"{which}.{s}").exists()]
        try:
            legacy = _legacy(self.folder, which, with_state="state.pt" in suffixes)
        except CheckpointError:
            try:  # a training state of other weights (an old interrupted write): the weights still classify
                legacy, suffixes = _legacy(self.folder, which, with_state=False), ["safetensors", "json"]
            except CheckpointError:
                return None  # left as it is: readers refuse it, and the next save replaces it
        facts = {key: legacy.sidecar.get(key) for key in ("epoch", "step", "epoch_complete")}
        return checkpoint_sets.adopt(self.folder, which, suffixes, facts)

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
        data, sidecar = encode(weights, f"{which}.safetensors", self.sidecar(progress, which, complete))
        files = {"safetensors": data, "json": json.dumps(sidecar, indent=2).encode()}
        if training_state is not None:
            files["state.pt"] = state_bytes({**training_state, "weights_sha256": sidecar["sha256"]})
        self._commit(which, files, sidecar)

    def update(self, which: Which, **fields: Any) -> None:
        """Change fields of a written checkpoint's sidecar (its test figures, the run's final status)."""
        if which in self.written and which in self.sets:
            self.guard()
            sidecar = {**self.written[which], **fields}
            self._commit(which, {"json": json.dumps(sidecar, indent=2).encode()}, sidecar,
                         keep=("safetensors", "state.pt"))

    def _commit(self, which: Which, files: dict[str, bytes], sidecar: dict[str, Any], keep: tuple[str, ...] = ()) -> None:
        """Write a set; a failure (a full disk) leaves the previous one in place and says so."""
        current = self.sets.get(which)
        facts = {key: sidecar.get(key) for key in ("epoch", "step", "epoch_complete")}
        try:
            self.sets[which] = checkpoint_sets.write(self.folder, which, files, facts, current, keep)
        except OSError as error:
            before = self.written.get(which) if current is not None else None
            kept = (f"the previous one (epoch {before.get('epoch')}, step {before.get('step')}) is kept"
                    if before is not None else "no earlier one was kept")
            raise CheckpointError(f"Saving the {which} checkpoint failed ({error.strerror or error}); {kept}.") \
                from None
        self.written[which] = sidecar

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
    note: str = ""  # what the run must be told (a damaged best checkpoint, not used)


def read_resume(folder: Path, config: TrainConfig) -> Resume:
    """Read and check what resuming the run in ``folder`` with ``config`` needs: the newest complete last set
    (and the best one, if it is intact); a CheckpointError says what is missing or does not match."""
    from core.training.config import config_dict

    folder = Path(folder)
    if not exists(folder, "last"):
        raise CheckpointError(f"Run {folder.name} has no last checkpoint to resume from: it ended before "
                              "saving one.")
    last = read_checkpoint(folder, "last", with_state=True)
    state = last.state or {}
    saved_config = state.get("config", {})
    different = [key for key, value in config_dict(config).items() if key != "device" and saved_config.get(key) != value]
    if different:
        raise CheckpointError(f"Run {folder.name} was trained with other settings ({', '.join(different)}); "
                              "it resumes only with its own.")
    best, note = None, ""
    if exists(folder, "best"):
        try:
            best = read_checkpoint(folder, "best").tensors
        except CheckpointError as error:
            note = damaged_best(error, f"resuming from the last one (epoch {last.sidecar.get('epoch')}) without it")
    return Resume(last.tensors, state, best, last.sidecar, note)
