"""Every model that can classify an image here: ImageNet-pretrained ones whose weights are on this machine,
and the saved checkpoints of runs in the run store, whatever their status (a stopped, failed or interrupted
run is labelled so) — each with its class names and preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core import checkpoints, labels, models, transfer, weights
from core.errors import ExplorerError
from core.runs import RunStore


@dataclass(frozen=True)
class Choice:
    """A classifier that can be loaded: its key and how to name it."""

    key: str  # "imagenet:resnet50" or "run:<run id>"
    label: str
    note: str = ""  # what a user must know before trusting it (a transfer run on random weights says so)


@dataclass(frozen=True)
class Classifier:
    """A loaded model with what it needs to read an image."""

    key: str
    label: str
    model: nn.Module
    classes: tuple[str, ...]
    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    note: str = ""  # what a user must be told about it (a damaged best checkpoint, the last one used instead)
    interpolation: str = "bilinear"  # how an image is resized for it (its weights' evaluation transform)

    @property
    def digits(self) -> bool:
        """A 28×28 one-channel model: images are read the MNIST way."""
        return self.channels == 1 and self.crop == 28


def _opens(arch: str) -> bool:
    """Whether the explorer can build ``arch``: a registered model, a design, or a torchvision CNN it opens."""
    try:
        models.spec(arch)
    except ExplorerError:
        return False
    return True


def choices(store: RunStore | None) -> list[Choice]:
    """Cached ImageNet models, then every run with a saved checkpoint, whatever its status (newest first;
    ``store`` None: none)."""
    found = [Choice(f"imagenet:{name}", _imagenet_label(name))
             for name in weights.names_with_weights() if weights.is_cached(name)]
    if store is None:
        return found
    for run in store.runs(limit=200):
        saved = store.checkpoints(run.id)
        if not saved or not _opens(run.arch):
            continue
        accuracy = run.test_accuracy
        score = f" · test {accuracy:.1%}" if accuracy is not None else ""
        kind = f" · {labels.strategy_title(run.strategy).lower()}" if run.strategy else ""
        status = "" if run.status == "completed" else f" · {run.status}"
        which = "" if "best" in saved else " · last checkpoint"
        dataset = labels.dataset_title(run.dataset)
        random = transfer.random_start(run.config)
        start = f" · {transfer.RANDOM_SHORT}" if random else ""
        found.append(Choice(f"run:{run.id}", f"{models.spec(run.arch).display_name} · {dataset}{kind}{start}"
                                             f"{score}{status}{which} · run {run.id}",
                            transfer.random_weights_note(run.arch) if random else ""))
    return found


def _imagenet_label(name: str) -> str:
    """ "ResNet-50 · ImageNet (torchvision)", or with the provenance of weights a user supplied."""
    found, info = weights.installed(name), weights.pretrained(name)
    origin = found.provenance if found is not None and not found.official else (info.source if info else "")
    return f"{models.spec(name).display_name} · ImageNet ({origin})"


def best_choice(found: list[Choice], store: RunStore) -> str | None:
    """The key Classify opens on: the cached ImageNet model with the best published top-1, else the finished
    run with the highest test accuracy (never merely the newest), else the first choice."""
    imagenet = [c.key.partition(":")[2] for c in found if c.key.startswith("imagenet:")]
    if imagenet:
        top1 = {name: info.top1 for name in imagenet if (info := weights.pretrained(name)) is not None}
        return f"imagenet:{max(imagenet, key=lambda name: top1.get(name, 0.0))}"
    offered = {c.key.partition(":")[2] for c in found if c.key.startswith("run:")}
    scored = [(run.test_accuracy, run.id) for run in store.runs(limit=200) if run.id in offered]
    scored = [(accuracy, run_id) for accuracy, run_id in scored if accuracy is not None]
    if scored:
        return f"run:{max(scored)[1]}"
    return found[0].key if found else None


def load(key: str, store: RunStore, device: torch.device | str = "cpu") -> Classifier:
    """Load the classifier behind ``key`` onto ``device`` (eval mode); a missing or broken one is an
    ExplorerError saying why."""
    kind, _, name = key.partition(":")
    if kind == "imagenet":
        model, info = weights.load_pretrained(name, download=False)
        return Classifier(key, _imagenet_label(name), model.to(device).eval(),
                          info.categories, info.resize, info.crop, info.mean, info.std, 3,
                          interpolation=info.interpolation)
    if kind == "run":
        model, sidecar, note = checkpoints.load_preferred(store.checkpoint_dir(name))  # best, else the last
        size = int(sidecar["input_size"])
        return Classifier(key, f"{models.spec(sidecar['arch']).display_name} · run {name}", model.to(device).eval(),
                          tuple(sidecar["classes"]), size, size, tuple(sidecar["mean"]), tuple(sidecar["std"]),
                          int(sidecar["in_channels"]), note)
    raise ExplorerError(f"Unknown classifier {key!r}.")
