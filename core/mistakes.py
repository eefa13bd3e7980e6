"""Mistakes, explained, and the embedding map: a run's test set scored by its checkpoint.

``score`` runs a model once over a test split (bounded) and keeps, per example, the loss, the top-3 classes with
their probabilities and the penultimate features (``forward_head(..., pre_logits=True)``). ``ranked`` picks the
images of one confusion cell (or all) by loss, highest first; ``stratified_sample`` a bounded sample with every
class present; ``pca_2d`` and ``tsne_2d`` project features to the plane. ``for_run`` loads a run's preferred
checkpoint and its data set and caches the scores per checkpoint (its weights' SHA-256).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ExplorerError

MAX_SCORED = 5000  # test images scored per run: bounded time and memory on a CPU
SHOWN = 24  # images shown for a cell
_CACHE: OrderedDict[tuple[str, str], Scored] = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


class MistakesError(ExplorerError):
    """The run's checkpoint or test data cannot be used to score its test set."""


@dataclass(frozen=True)
class Scores:
    """Per test example (the first ``len(labels)`` of the split): loss, prediction, top-3, features."""

    labels: torch.Tensor  # N, int64
    losses: torch.Tensor  # N, float
    top_classes: torch.Tensor  # N × 3, int64
    top_probs: torch.Tensor  # N × 3, float
    features: torch.Tensor | None  # N × D, or None when the model has no ``forward_head(pre_logits=True)``
    classes: tuple[str, ...]

    @property
    def predicted(self) -> torch.Tensor:
        """The top class of each example."""
        return self.top_classes[:, 0]


@dataclass(frozen=True)
class Scored:
    """A run's scores with the model and inputs that made them (for Grad-CAM on the shown images)."""

    scores: Scores
    model: nn.Module
    inputs: Callable[[list[int]], torch.Tensor]  # indices → normalised model inputs
    images: Callable[[list[int]], list[torch.Tensor]]  # indices → uint8 C × H × W images


def _pre_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, penultimate features or None)."""
    head = getattr(model, "forward_head", None)
    features = getattr(model, "forward_features", None)
    if head is None or features is None:
        return model(x), None
    pooled = features(x)
    return head(pooled), head(pooled, pre_logits=True).flatten(1)


@torch.no_grad()
def score(model: nn.Module, inputs: Callable[[list[int]], torch.Tensor], labels: torch.Tensor,
          classes: tuple[str, ...], batch_size: int = 256) -> Scores:
    """Score ``len(labels)`` examples (``inputs`` turns indices into a batch) with ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    losses, tops, probs, feats = [], [], [], []
    try:
        for start in range(0, len(labels), batch_size):
            chunk = list(range(start, min(start + batch_size, len(labels))))
            logits, features = _pre_logits(model, inputs(chunk))
            logits = logits.float().cpu()
            losses.append(F.cross_entropy(logits, labels[chunk], reduction="none"))
            p, c = logits.softmax(1).topk(min(3, logits.shape[1]), dim=1)
            tops.append(c)
            probs.append(p)
            feats.append(None if features is None else features.float().cpu())
    finally:
        model.train(was_training)
    empty = torch.zeros(0)
    return Scores(labels.clone(), torch.cat(losses) if losses else empty, torch.cat(tops) if tops else empty.long(),
                  torch.cat(probs) if probs else empty,
                  None if not feats or feats[0] is None else torch.cat(feats), tuple(classes))  # type: ignore[arg-type]


def cells(scores: Scores) -> list[tuple[int, int, int]]:
    """The off-diagonal confusion cells with any images: (true, predicted, count), most images first."""
    pairs = torch.stack([scores.labels, scores.predicted], 1)
    found, counts = pairs.unique(dim=0, return_counts=True)
    out = [(int(t), int(p), int(n)) for (t, p), n in zip(found.tolist(), counts.tolist(), strict=True) if t != p]
    return sorted(out, key=lambda cell: (-cell[2], cell[0], cell[1]))


def ranked(scores: Scores, true: int | None = None, predicted: int | None = None, limit: int = SHOWN) -> list[int]:
    """Indices of the examples with true class ``true`` and prediction ``predicted`` (None: any), by loss,
    highest first, at most ``limit``."""
    keep = torch.ones_like(scores.labels, dtype=torch.bool)
    if true is not None:
        keep &= scores.labels == true
    if predicted is not None:
        keep &= scores.predicted == predicted
    chosen = keep.nonzero().flatten()
    order = scores.losses[chosen].argsort(descending=True, stable=True)
    return chosen[order][:limit].tolist()


def stratified_sample(labels: torch.Tensor, limit: int, seed: int = 0) -> list[int]:
    """At most ``limit`` indices, every class present (if ``limit`` ≥ the number of classes), in proportion."""
    if limit < 1:
        raise MistakesError(f"The sample needs at least one point, not {limit}.")
    generator = torch.Generator().manual_seed(seed)
    present = labels.unique().tolist()
    groups = {c: (labels == c).nonzero().flatten() for c in present}
    groups = {c: g[torch.randperm(len(g), generator=generator)] for c, g in groups.items()}
    if len(labels) <= limit:
        return sorted(range(len(labels)))
    share = {c: max(1, int(limit * len(g) / len(labels))) for c, g in groups.items()}
    while sum(share.values()) > limit:  # more classes than room, or rounding up: trim the largest shares
        largest = max(share, key=lambda c: share[c])
        share[largest] -= 1
        if share[largest] == 0:
            del share[largest]
    return sorted(i for c, n in share.items() for i in groups[c][:n].tolist())


def pca_2d(features: torch.Tensor) -> torch.Tensor:
    """The first two principal components (N × 2) of ``features`` (N × D), by SVD of the centred data."""
    x = features.double() - features.double().mean(0, keepdim=True)
    if x.shape[0] < 2:
        return torch.zeros(x.shape[0], 2)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    out = x @ vh[:2].T
    if out.shape[1] < 2:
        out = torch.cat([out, torch.zeros(out.shape[0], 2 - out.shape[1], dtype=out.dtype)], 1)
    return out.float()


def tsne_2d(features: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """t-SNE of ``features`` to N × 2 (scikit-learn), started from PCA; a MistakesError if it is missing."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise MistakesError("t-SNE needs scikit-learn, which is not installed.") from None
    count = features.shape[0]
    if count < 5:
        raise MistakesError(f"t-SNE needs at least 5 points, not {count}.")
    tsne = TSNE(2, perplexity=min(30.0, (count - 1) / 3), init="pca", random_state=seed)
    return torch.from_numpy(tsne.fit_transform(features.double().numpy())).float()


def _sources(sidecar: dict[str, Any], dataset: str, device: torch.device
             ) -> tuple[Callable[[list[int]], torch.Tensor], Callable[[list[int]], list[torch.Tensor]], torch.Tensor]:
    from core import data
    from core.training.batches import Preprocess

    try:
        test = data.load(dataset, download=False).test
    except (ExplorerError, OSError) as error:
        raise MistakesError(f"The run's test set ({dataset}) is not available: {error}") from None
    preprocess = Preprocess(torch.tensor(sidecar["mean"], device=device).view(1, -1, 1, 1),
                            torch.tensor(sidecar["std"], device=device).view(1, -1, 1, 1),
                            int(sidecar["in_channels"]), int(sidecar["input_size"]))

    def images(indices: list[int]) -> list[torch.Tensor]:
        return [test.image(i) for i in indices]

    def inputs(indices: list[int]) -> torch.Tensor:
        return preprocess(torch.stack(images(indices)).to(device))

    return inputs, images, test.labels[:MAX_SCORED].long()


def for_run(checkpoint_dir: Path, dataset: str, device: torch.device | None = None) -> Scored:
    """The run's preferred checkpoint scored on its test set (at most MAX_SCORED images), cached per checkpoint."""
    from core import checkpoints

    try:
        model, sidecar, _ = checkpoints.load_preferred(Path(checkpoint_dir))
    except ExplorerError as error:
        raise MistakesError(f"The run's checkpoint cannot be used: {error}") from None
    key = (str(sidecar.get("sha256") or checkpoint_dir), dataset)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    inputs, images, labels = _sources(sidecar, dataset, device)
    scored = Scored(score(model, inputs, labels, tuple(sidecar["classes"])), model, inputs, images)
    with _LOCK:
        _CACHE[key] = scored
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return scored


def heat_map(scored: Scored, index: int) -> torch.Tensor:
    """Grad-CAM (H × W in [0, 1], the input's size) of example ``index`` for its predicted class."""
    from core import explain

    x = scored.inputs([index])
    layer = explain.default_cam_layer(scored.model, x)
    return explain.grad_cam(scored.model, x, layer, int(scored.scores.predicted[index]))
