"""One checkpoint's files and how each is checked: safetensors weights (their SHA-256 recorded in the sidecar,
no NaN or infinity), the JSON sidecar that describes them, and the training state a run resumes from.

How a run's checkpoints are written and read together, as sets with a commit record, is ``core.checkpoints``.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from core import checkpoint_sets, models
from core.checkpoint_sets import TEMPORARY_SUFFIX, atomic_write
from core.errors import ExplorerError, plain, quoted
from core.sidecars import CheckpointError, read_sidecar

Which = Literal["best", "last"]
STALE_AFTER = 600.0  # seconds: a temporary file this old is no write in progress any more


def weights_path(folder: Path, which: Which) -> Path:
    """Where the ``which`` checkpoint of a run folder lives (its sidecar is beside it, ``.json``)."""
    return Path(folder) / f"{which}.safetensors"


def state_path(folder: Path) -> Path:
    """Where the training state beside the last checkpoint lives."""
    return Path(folder) / "last.state.pt"


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


def encode(weights: dict[str, torch.Tensor] | nn.Module, name: str,
            sidecar: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The safetensors bytes of ``weights`` and ``sidecar`` completed with their SHA-256 and file name."""
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    tensors = {key: tensor.detach().to("cpu").contiguous() for key, tensor in state.items()}
    data = save_safetensors(tensors)
    return data, {**sidecar, "sha256": checkpoint_sets.sha256(data), "weights": name, "saved": time.time()}


def save(weights: dict[str, torch.Tensor] | nn.Module, path: Path, sidecar: dict[str, Any]) -> dict[str, Any]:
    """Write weights as safetensors and ``sidecar`` (plus the weights' SHA-256) as JSON beside them, with no
    commit record (one checkpoint on its own; a run's checkpoints are written as sets by :class:`Writer`).

    Returns the sidecar as written.
    """
    data, sidecar = encode(weights, Path(path).name, sidecar)
    atomic_write(Path(path), data)
    atomic_write(Path(path).with_suffix(".json"), json.dumps(sidecar, indent=2).encode())
    return sidecar


def load_weights(path: Path, sidecar: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, after checking them against the sidecar's SHA-256 and for NaN/infinity."""
    path = Path(path)
    sidecar = sidecar if sidecar is not None else read_sidecar(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path.name} cannot be read ({error.strerror or error}).") from None
    return tensors_from(data, path.name, sidecar)


def tensors_from(data: bytes, name: str, sidecar: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors in ``data`` (the file ``name``), checked against the sidecar's SHA-256 and for NaN/infinity."""
    expected = sidecar.get("sha256")  # absent in checkpoints saved before the hash was recorded
    if expected is not None and checkpoint_sets.sha256(data) != expected:
        raise CheckpointError(f"{name} does not match the SHA-256 its sidecar recorded: the file was changed "
                              "or damaged after it was saved, so it is not loaded.")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{name} is not a readable safetensors file ({plain(error)}).") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{name} holds non-finite weights (NaN or infinity, first in {quoted(key)}): "
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
    path = Path(path)
    clean_temporary(path.parent, older_than=STALE_AFTER)
    sidecar = read_sidecar(path)
    if expected_arch is not None and sidecar["arch"] != expected_arch:
        raise CheckpointError(f"This checkpoint is a {quoted(sidecar['arch'])}, not a {expected_arch}.")
    return model_from(load_weights(path, sidecar), sidecar, path.name), sidecar


def model_from(tensors: dict[str, torch.Tensor], sidecar: dict[str, Any], name: str) -> nn.Module:
    """The sidecar's architecture with ``tensors`` loaded, in eval mode, if they fit it."""
    from core.weights import bad_values, mismatches

    model = build(sidecar)
    problems = mismatches(model, tensors, shown=5)
    if problems:
        raise CheckpointError(f"{name} does not fit {quoted(sidecar['arch'])} ({problems}).")
    values = bad_values(model, tensors)  # after the cast to the model's types: float64 1e300 is inf in float32
    if values:
        raise CheckpointError(f"{name} cannot be used: {values}.")
    model.load_state_dict(tensors)
    return model.eval()


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


def state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def read_state(data: bytes, name: str) -> dict[str, Any]:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (pickle, zip and format errors all mean: unreadable)
        raise CheckpointError(f"{name} cannot be read ({type(error).__name__}: {error}).") from None


def save_training_state(folder: Path, state: dict[str, Any]) -> None:
    """Write what resuming needs beside the last checkpoint (tensors and plain values only)."""
    atomic_write(state_path(folder), state_bytes(state))


def load_training_state(folder: Path) -> dict[str, Any]:
    """The training state beside the last checkpoint (loaded with ``weights_only``: no code runs)."""
    path = state_path(folder)
    if not path.exists():
        raise CheckpointError(f"{Path(folder).name} has no training state ({path.name}) to resume from: "
                              "the run saved no checkpoint yet.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path.name} cannot be read ({error.strerror or error}).") from None
    return read_state(data, path.name)


def preferred(folder: Path) -> Path | None:
    """The checkpoint a run is shown, classified and downloaded by: the best by validation if an epoch was
    validated, else the last (a run stopped in its first epoch), else None."""
    for which in ("best", "last"):
        path = weights_path(folder, which)
        if path.exists():
            return path
    return None
