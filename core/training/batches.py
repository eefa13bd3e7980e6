"""Where training batches come from: three sources behind one small protocol.

- ``DeviceBatches``: data that fits in memory takes the fast path. uint8 images stay on the device, are
  shuffled with a device permutation, normalised and augmented there: no DataLoader, no per-image Python.
- ``LoaderBatches``: image folders. DataLoader workers decode the files, pinned memory feeds the device.
- ``feature_cache``: a frozen backbone's pooled features, computed once, served as ``DeviceBatches``.

An epoch is an *order* (this rank's example indices, shuffled or not) cut into batches. The trainer keeps
the order, so a run interrupted mid-epoch (stopped, out of memory) continues with the very same examples.
A training order is topped up to whole batches (``training_order``): every example trains each epoch, in
batches that are all full.
What turns uint8 images into the model's input is its own object, ``Preprocess``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from core import devices
from core.data import FolderData, FolderSplit, InMemoryData, Split
from core.models.base import ExplorerModel

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels), both on the device
Shard = tuple[int, int]  # (rank, world size) of a distributed run; (0, 1) otherwise


@dataclass(frozen=True)
class Preprocess:
    """uint8 images → the model's input: normalised, adapted to its channels and size, optionally augmented."""

    mean: torch.Tensor  # 1 × C × 1 × 1, on the device
    std: torch.Tensor
    channels: int  # what the model takes
    size: int
    channels_last: bool = False  # the memory format convolutions are fastest in on CUDA
    flip: bool = False  # mirror photos and shapes when augmenting, never digits

    @classmethod
    def of(cls, data: InMemoryData | FolderData, device: torch.device, size: int, channels: int,
           channels_last: bool = False) -> Preprocess:
        """The preprocessing of ``data`` for a model taking ``channels`` × ``size`` × ``size``."""
        flip = isinstance(data, FolderData) or data.name in ("cifar10", "shapes")
        return cls(torch.tensor(data.mean, device=device).view(1, -1, 1, 1),
                   torch.tensor(data.std, device=device).view(1, -1, 1, 1), channels, size, channels_last, flip)

    def __call__(self, images: torch.Tensor, augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        x = (images.float() / 255 - self.mean) / self.std
        if x.shape[1] != self.channels:  # grey data into a colour model, or the reverse
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if augment:
            x = random_shift(x, max_shift=2 / 28, flip=self.flip, generator=generator)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class BatchSource(Protocol):
    """What the trainer and the evaluation read batches from."""

    device: torch.device

    def __len__(self) -> int:
        """Examples in the split."""
        ...

    def order(self, shuffle: bool, generator: torch.Generator | None = None, shard: Shard = (0, 1)) -> torch.Tensor:
        """This rank's example indices for one epoch, shuffled or in order."""
        ...

    def batches(self, order: torch.Tensor, batch_size: int, augment: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Consecutive batches of the examples ``order`` names."""
        ...


def training_steps(source: BatchSource, batch_size: int, shard: Shard = (0, 1)) -> int:
    """Batches per training epoch: enough full batches for every example of the largest shard.

    Every batch is full (``training_order`` tops the last one up): shapes stay fixed for cuDNN's autotuning,
    batch norm never sees a batch of one, and every rank of a distributed run takes the same number of steps.
    Yet no example is left out of an epoch (dropping the remainder left out up to ``batch_size - 1`` images
    each epoch and planned one-cycle over fewer steps). A set smaller than one batch trains as one batch.
    """
    if len(source) // shard[1] < batch_size:  # the smallest shard holds less than one batch
        return 1 if len(source) // shard[1] else 0
    largest = -(-len(source) // shard[1])
    return -(-largest // batch_size)


def training_order(source: BatchSource, batch_size: int, generator: torch.Generator | None = None,
                   shard: Shard = (0, 1)) -> torch.Tensor:
    """This rank's shuffled examples for one training epoch, ``training_steps`` full batches of them.

    The last batch is topped up with the first examples of the same order (as torch's DistributedSampler
    pads a shard), so every example trains once and a few of them twice.
    """
    order = source.order(True, generator, shard)
    size = training_steps(source, batch_size, shard) * batch_size
    if len(order) >= size or len(source) // shard[1] < batch_size:
        return order[:size]
    return torch.cat([order, order[:size - len(order)]])


def epoch(source: BatchSource, batch_size: int, shuffle: bool, augment: bool = False,
          generator: torch.Generator | None = None, shard: Shard = (0, 1)) -> Iterator[Batch]:
    """One epoch's batches: full batches of every example when shuffling (training), every example once
    otherwise (evaluation)."""
    order = (training_order(source, batch_size, generator, shard) if shuffle
             else source.order(False, generator, shard))
    return source.batches(order, batch_size, augment, generator)


class DeviceBatches:
    """Images (or cached features) and labels held on the device, served by indexing."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, preprocess: Preprocess | None) -> None:
        self.images = images
        self.labels = labels
        self.preprocess = preprocess  # None: the tensors are the model's input as they are (cached features)
        self.device = images.device

    @classmethod
    def of(cls, split: Split, preprocess: Preprocess) -> DeviceBatches:
        """One in-memory split moved to the preprocessing's device, still as uint8."""
        device = preprocess.mean.device
        return cls(split.images.to(device, non_blocking=True), split.labels.to(device, non_blocking=True), preprocess)

    def __len__(self) -> int:
        return len(self.labels)

    def order(self, shuffle: bool, generator: torch.Generator | None = None, shard: Shard = (0, 1)) -> torch.Tensor:
        """A device permutation (or range), every world-size-th example from this rank's offset."""
        count = len(self.labels)
        order = (torch.randperm(count, device=self.device, generator=generator) if shuffle
                 else torch.arange(count, device=self.device))
        return order[shard[0]::shard[1]]

    def batches(self, order: torch.Tensor, batch_size: int, augment: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Index the device tensors batch by batch."""
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            images = self.images[index]
            yield (self.preprocess(images, augment, generator) if self.preprocess else images), self.labels[index]


class _FolderImages(torch.utils.data.Dataset):
    """Decodes one image file per item (in DataLoader workers)."""

    def __init__(self, split: FolderSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.split.image(index), int(self.split.labels[index])


class LoaderBatches:
    """The DataLoader path for image folders: workers decode, pinned memory feeds the device."""

    def __init__(self, split: FolderSplit, preprocess: Preprocess, workers: int = 2) -> None:
        self.split = split
        self.labels = split.labels
        self.preprocess = preprocess
        self.device = preprocess.mean.device
        self.workers = workers

    def __len__(self) -> int:
        return len(self.split)

    def order(self, shuffle: bool, generator: torch.Generator | None = None, shard: Shard = (0, 1)) -> torch.Tensor:
        """A CPU permutation (the global generator, seeded by the trainer), this rank's share."""
        count = len(self.split)
        return (torch.randperm(count) if shuffle else torch.arange(count))[shard[0]::shard[1]]

    def batches(self, order: torch.Tensor, batch_size: int, augment: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Batches decoded by DataLoader workers, preprocessed on the device."""
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(_FolderImages(self.split), order.tolist()), batch_size=batch_size,
            num_workers=self.workers, pin_memory=self.device.type == "cuda", persistent_workers=False)
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True)
            yield self.preprocess(images, augment, generator), labels.to(self.device, non_blocking=True)


def make_batches(split: Split | FolderSplit, preprocess: Preprocess) -> DeviceBatches | LoaderBatches:
    """The fast path for in-memory data, the DataLoader path for image folders."""
    if isinstance(split, FolderSplit):
        return LoaderBatches(split, preprocess)
    return DeviceBatches.of(split, preprocess)


@torch.no_grad()
def feature_cache(model: ExplorerModel, source: BatchSource, batch_size: int | None = None) -> DeviceBatches:
    """The feature cache: ``model.forward_features`` and pooling (N × C × 1 × 1), run once over ``source``.

    Default batch: 256 on a GPU (throughput), 32 on a CPU (larger batches only cost memory bandwidth there).
    """
    batch_size = batch_size or (32 if source.device.type == "cpu" else 256)
    was_training = model.training
    model.eval()
    features, labels = [], []
    with devices.autocast(source.device):
        for x, y in epoch(source, batch_size, shuffle=False):
            features.append(F.adaptive_avg_pool2d(model.forward_features(x), 1).float())
            labels.append(y)
    model.train(was_training)
    return DeviceBatches(torch.cat(features), torch.cat(labels), preprocess=None)


class HeadView(nn.Module):
    """Runs only ``forward_head`` of a model: what trains on cached features."""

    def __init__(self, model: ExplorerModel) -> None:
        super().__init__()
        self.model = model

    @property
    def aux_loss_weight(self) -> float:
        """The wrapped model's (its head has no auxiliary classifiers)."""
        return self.model.aux_loss_weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)

    def split_output(self, output: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The wrapped model's split of its output into (logits, auxiliary logits)."""
        return self.model.split_output(output)


def augmentation_preview(images: torch.Tensor, flip: bool, seed: int = 0) -> torch.Tensor:
    """What the model sees with augmentation on: the same random shifts (and flips) as training, as uint8."""
    generator = torch.Generator().manual_seed(seed)
    shifted = random_shift(images.float() / 255, max_shift=2 / 28, flip=flip, generator=generator)
    return (shifted * 255).round().clamp(0, 255).to(torch.uint8)


def random_shift(x: torch.Tensor, max_shift: float, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` of its size (and mirror half of them if ``flip``), on the device."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    if flip:
        theta[:, 0, 0] = torch.where(torch.rand(n, device=x.device, generator=generator) < 0.5, -1.0, 1.0)
    theta[:, :, 2] = (torch.rand(n, 2, device=x.device, generator=generator) * 2 - 1) * max_shift * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
