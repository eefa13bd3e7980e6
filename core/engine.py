"""The training engine: one readable loop with named hook points.

Subscribers (the UI's metrics store, the run store, a console progress bar, a
test) are plain objects with any of these methods, each given the live
``TrainState``: ``on_fit_start``, ``on_epoch_start``, ``on_batch_end``,
``on_epoch_end``, ``on_fit_end``.

Data that fits in memory takes the fast path: uint8 images stay on the device,
are shuffled with a device permutation, normalised and augmented there — no
DataLoader, no per-image Python.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from core import devices, models
from core.data import FOLDER_PREFIX, IN_MEMORY, FolderData, FolderSplit, InMemoryData, Split
from core.errors import InvalidArgumentError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
LOG_EVERY = 20  # batches between progress reports (each one reads the loss back from the device)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults: the course notes' LeNet-5 recipe."""

    arch: str = "lenet5"
    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 5e-4  # the notes' "L2 penalty"
    schedule: str = "none"  # none | step | cosine | onecycle | plateau
    step_size: int = 30  # epochs between step decays
    gamma: float = 0.1  # decay factor (step, plateau)
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    patience: int = 0  # early stopping: epochs without a better validation loss; 0 = off
    augment: bool = False  # random shifts (and flips for photos) on the device
    feature_cache: bool = True  # with a frozen backbone and no augmentation, compute its features once
    strategy: str = ""  # "" trains the model from scratch; else a transfer strategy (core.transfer.STRATEGIES)
    pretrained: bool = False  # start the backbone from its ImageNet weights (transfer learning)
    unfreeze_last: int = 2  # blocks the "partial" strategy unfreezes
    seed: int = 0
    device: str = "auto"  # auto | cuda | mps | cpu

    def validate(self) -> TrainConfig:
        """Return self, or raise InvalidArgumentError naming the first bad field."""
        models.spec(self.arch)
        checks = [
            (self.dataset in IN_MEMORY or self.dataset.startswith(FOLDER_PREFIX),
             f"data set must be one of {', '.join(IN_MEMORY)}, or {FOLDER_PREFIX}PATH"),
            (self.epochs >= 1, "epochs must be ≥ 1"),
            (self.batch_size >= 1, "batch size must be ≥ 1"),
            (self.lr > 0 and math.isfinite(self.lr), "learning rate must be a positive number"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.weight_decay >= 0, "weight decay must be ≥ 0"),
            (0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)"),
            (self.grad_clip >= 0 and self.patience >= 0, "gradient clipping and patience must be ≥ 0"),
            (self.step_size >= 1 and 0 < self.gamma <= 1, "step size must be ≥ 1 and gamma in (0, 1]"),
            (self.strategy in ("", "feature_extraction", "partial", "full"),
             "strategy must be feature_extraction, partial or full (or empty to train from scratch)"),
            (not self.pretrained or self.strategy != "", "pretrained weights come with a transfer strategy"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidArgumentError(message + ".")
        if self.pretrained:
            from core import weights

            if weights.pretrained(self.arch) is None:
                raise InvalidArgumentError(f"{models.spec(self.arch).display_name} has no ImageNet weights; "
                                           f"choose one of {', '.join(weights.names_with_weights())}.")
        return self


# Presets: the course notes' recipes as written, and one tuned for time-to-accuracy.
PRESETS: dict[str, dict[str, Any]] = {
    # LeNet-5 in the notes: SGD momentum 0.9, lr 0.01, batch 128, L2 5e-4, 20–50 epochs, "with decay".
    "LeNet-5 (course notes)": dict(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=128, weight_decay=5e-4,
                                   schedule="step", step_size=10, gamma=0.1, epochs=20),
    # AlexNet: SGD 0.9, lr 0.01 divided by 10 on plateaus, batch 128, weight decay 5e-4, 90 epochs.
    "AlexNet (course notes)": dict(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=128, weight_decay=5e-4,
                                   schedule="plateau", gamma=0.1, epochs=90),
    # VGG: SGD 0.9, lr 0.01 divided by 10 on plateaus, batch 256, weight decay 5e-4, 74 epochs.
    "VGG (course notes)": dict(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=256, weight_decay=5e-4,
                               schedule="plateau", gamma=0.1, epochs=74),
    # ResNet: SGD 0.9, lr 0.1 divided by 10 every 30 epochs, weight decay 1e-4, batch 256.
    "ResNet (course notes)": dict(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=256, weight_decay=1e-4,
                                  schedule="step", step_size=30, gamma=0.1, epochs=90),
    # Fast: Adam with a one-cycle schedule; few epochs to a good accuracy on digits and MNIST.
    "Fast": dict(optimizer="adam", lr=3e-3, batch_size=64, weight_decay=0.0, schedule="onecycle", epochs=8),
    # Fast on a GPU: a small model there is bound by kernel launches, not arithmetic, so time goes with the
    # number of steps: 8× larger batches, a higher peak rate, and random shifts to make up for fewer updates.
    "Fast, large batch (GPU)": dict(optimizer="adam", lr=1e-2, batch_size=512, weight_decay=0.0,
                                    schedule="onecycle", epochs=10, augment=True),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a preset, with overrides."""
    if name not in PRESETS:
        raise InvalidArgumentError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return TrainConfig(**{**PRESETS[name], **overrides}).validate()


class Callback(Protocol):
    """What a subscriber may implement; every method is optional (the engine looks each one up)."""

    def on_fit_start(self, state: TrainState) -> None:
        """Model, data and optimiser are ready; nothing trained yet."""

    def on_epoch_start(self, state: TrainState) -> None:
        """``state.epoch`` is about to run."""

    def on_batch_end(self, state: TrainState) -> None:
        """Every LOG_EVERY batches and at each epoch's last batch, with the running loss and accuracy."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After validation: ``state.history[-1]`` holds the epoch's figures."""

    def on_fit_end(self, state: TrainState) -> None:
        """The run ended (``state.status``); ``state.test`` holds the test evaluation if there is one."""


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a subscriber to end the run cleanly after the current batch."""


@dataclass
class TrainState:
    """What the loop knows, handed to every hook."""

    config: TrainConfig
    device: str = "cpu"
    classes: tuple[str, ...] = ()
    input_size: int = 0
    epoch: int = 0  # 1-based once started
    step: int = 0  # batches done so far
    steps_per_epoch: int = 0
    batch_size: int = 0
    lr: float = 0.0
    train_loss: float = float("nan")
    train_acc: float = float("nan")
    val_loss: float = float("nan")
    val_acc: float = float("nan")
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    images_seen: int = 0
    started: float = 0.0
    elapsed: float = 0.0
    status: str = "running"  # running | completed | stopped | failed
    messages: list[str] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    model: nn.Module | None = None
    test: Evaluation | None = None  # set before on_fit_end
    test_labels: list[int] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        """Batches in the whole run at the current batch size."""
        return self.steps_per_epoch * self.config.epochs

    @property
    def images_per_second(self) -> float:
        """Training throughput so far."""
        return self.images_seen / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float:
        """Estimated seconds left, from the pace so far."""
        done = self.step / self.total_steps if self.total_steps else 0
        return self.elapsed * (1 - done) / done if done > 0 else float("nan")

    def say(self, message: str) -> None:
        """Record a message for the user (OOM retries, resizing, stops)."""
        self.messages.append(message)


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and per-class figures on one split."""

    loss: float
    accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted
    predictions: list[int]

    def per_class(self) -> list[dict[str, float]]:
        """Precision, recall, F1 and support of each class."""
        matrix = torch.tensor(self.confusion, dtype=torch.float64)
        true_positive = matrix.diag()
        precision = true_positive / matrix.sum(0).clamp(min=1)
        recall = true_positive / matrix.sum(1).clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        return [
            {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for p, r, f, s in zip(precision, recall, f1, matrix.sum(1), strict=True)
        ]


@dataclass
class FitResult:
    """The trained model, the final state and the test evaluation."""

    model: nn.Module
    state: TrainState
    test: Evaluation | None


class Batches:
    """The fast path: one split on the device as uint8, served as normalised float batches."""

    def __init__(self, split: Split, data: InMemoryData, device: torch.device, size: int, channels: int,
                 channels_last: bool = False) -> None:
        self.images = split.images.to(device, non_blocking=True)
        self.labels = split.labels.to(device, non_blocking=True)
        self._set_up(data, device, size, channels, channels_last, flip=data.name in ("cifar10", "shapes"))

    def _set_up(self, data: InMemoryData | FolderData, device: torch.device, size: int, channels: int,
                channels_last: bool, flip: bool) -> None:
        """What ``prepare`` needs: device, target size and channels, normalisation, whether to mirror."""
        self.device = device
        self.size = size
        self.channels = channels
        self.channels_last = channels_last
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
        self.flip = flip  # mirror photos and shapes, never digits

    def __len__(self) -> int:
        return len(self.labels)

    def prepare(self, images: torch.Tensor, augment: bool, generator: torch.Generator | None) -> torch.Tensor:
        """uint8 → normalised float, adapted to the model's channels and size, optionally augmented."""
        x = (images.float() / 255 - self.mean) / self.std
        if x.shape[1] != self.channels:  # grey data into a colour model, or the reverse
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if augment:
            x = _random_shift(x, max_shift=2 / 28, flip=self.flip, generator=generator)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def epoch(self, batch_size: int, shuffle: bool, augment: bool = False, generator: torch.Generator | None = None,
              shard: tuple[int, int] = (0, 1)):
        """Yield (inputs, labels) batches; ``shard`` = (rank, world size) keeps every world-size-th example."""
        count = len(self.labels)
        order = (torch.randperm(count, device=self.device, generator=generator) if shuffle
                 else torch.arange(count, device=self.device))
        rank, world = shard
        order = order[rank::world]
        for start in range(0, self.steps(batch_size, shard, training=shuffle) * batch_size, batch_size):
            index = order[start:start + batch_size]
            yield self.prepare(self.images[index], augment, generator), self.labels[index]

    def steps(self, batch_size: int, shard: tuple[int, int] = (0, 1), training: bool = True) -> int:
        """Batches per epoch: every image when evaluating. Training takes full batches only (the images left
        over join the next epoch's shuffle): shapes stay fixed for cuDNN's autotuning, batch norm never sees a
        batch of one, and every rank of a distributed run takes the same number of steps. A set smaller than
        one batch trains as one batch."""
        if not training:
            return -(-len(range(shard[0], len(self.labels), shard[1])) // batch_size)
        count = len(self.labels) // shard[1]  # the smallest shard, so that no rank waits for another
        return count // batch_size or (1 if count else 0)


class _FolderImages(torch.utils.data.Dataset):
    """Decodes one image file per item (in DataLoader workers)."""

    def __init__(self, split: FolderSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.split.image(index), int(self.split.labels[index])


class LoaderBatches(Batches):
    """The DataLoader path for image folders: workers decode, pinned memory feeds the device."""

    def __init__(self, split: FolderSplit, data: FolderData, device: torch.device, size: int, channels: int,
                 channels_last: bool = False, workers: int = 2) -> None:
        self.split = split
        self.labels = split.labels
        self.workers = workers
        self._set_up(data, device, size, channels, channels_last, flip=True)

    def epoch(self, batch_size: int, shuffle: bool, augment: bool = False, generator: torch.Generator | None = None,
              shard: tuple[int, int] = (0, 1)):
        """Yield (inputs, labels) batches decoded by DataLoader workers."""
        count = len(self.split)
        order = torch.randperm(count) if shuffle else torch.arange(count)  # the CPU generator, seeded by fit()
        order = order[shard[0]::shard[1]][:self.steps(batch_size, shard, training=shuffle) * batch_size]
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(_FolderImages(self.split), order.tolist()), batch_size=batch_size,
            num_workers=self.workers, pin_memory=self.device.type == "cuda", persistent_workers=False)
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True)
            yield self.prepare(images, augment, generator), labels.to(self.device, non_blocking=True)


class FeatureBatches(Batches):
    """The feature cache: a frozen backbone's pooled features (N × C × 1 × 1), computed once, on the device."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = features
        self.labels = labels
        self.device = features.device

    @classmethod
    @torch.no_grad()
    def of(cls, model: nn.Module, batches: Batches, batch_size: int | None = None) -> FeatureBatches:
        """Run ``model.forward_features`` and pooling once over every image of ``batches``.

        Default batch: 256 on a GPU (throughput), 32 on a CPU (larger batches only cost memory bandwidth there).
        """
        batch_size = batch_size or (32 if batches.device.type == "cpu" else 256)
        was_training = model.training
        model.eval()
        features, labels = [], []
        with devices.autocast(batches.device):
            for x, y in batches.epoch(batch_size, shuffle=False):
                features.append(F.adaptive_avg_pool2d(model.forward_features(x), 1).float())
                labels.append(y)
        model.train(was_training)
        return cls(torch.cat(features), torch.cat(labels))

    def prepare(self, images: torch.Tensor, augment: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Cached features are ready as they are."""
        return images


class HeadView(nn.Module):
    """Runs only ``forward_head`` of a model: what trains on cached features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)

    def split_output(self, output):
        return self.model.split_output(output)


def make_batches(split: Split | FolderSplit, data: InMemoryData | FolderData, device: torch.device, size: int,
                 channels: int, channels_last: bool = False) -> Batches:
    """The fast path for in-memory data, the DataLoader path for image folders."""
    if isinstance(split, FolderSplit):
        return LoaderBatches(split, data, device, size, channels, channels_last)
    return Batches(split, data, device, size, channels, channels_last)


def augmentation_preview(images: torch.Tensor, flip: bool, seed: int = 0) -> torch.Tensor:
    """What the model sees with augmentation on: the same random shifts (and flips) as training, as uint8."""
    generator = torch.Generator().manual_seed(seed)
    shifted = _random_shift(images.float() / 255, max_shift=2 / 28, flip=flip, generator=generator)
    return (shifted * 255).round().clamp(0, 255).to(torch.uint8)


def _random_shift(x: torch.Tensor, max_shift: float, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
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


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    # On CUDA the fused kernel updates every parameter in one launch: small models are launch-bound there.
    fused = bool(parameters) and all(p.is_cuda and p.is_floating_point() for p in parameters)
    return optimizer_class(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """(scheduler, steps per call): one-cycle steps every batch, the others every epoch."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma, patience=2)
    return None


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _loss(model: nn.Module, output: Any, labels: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Main loss plus the model's auxiliary losses (through the model interface); returns (loss, main logits)."""
    logits, auxiliary = model.split_output(output)
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    for aux in auxiliary:
        loss = loss + model.aux_loss_weight * F.cross_entropy(aux, labels, label_smoothing=label_smoothing)
    return loss, logits


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, batch_size: int = 1024, num_classes: int | None = None) -> Evaluation:
    """Loss, accuracy, confusion matrix and predictions on a split (eval mode, then back to train mode)."""
    was_training = model.training
    model.eval()
    num_classes = num_classes or models_num_classes(model)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=batches.device)
    total_loss = torch.zeros((), device=batches.device)
    predictions = []
    autocast = devices.autocast(batches.device)
    for x, y in batches.epoch(batch_size, shuffle=False):
        with autocast:
            logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        predicted = logits.argmax(1)
        predictions.append(predicted)
        confusion += torch.bincount(y * num_classes + predicted, minlength=num_classes**2).view(num_classes, -1)
    model.train(was_training)
    count = max(len(batches), 1)
    matrix = confusion.cpu()
    return Evaluation(loss=float(total_loss) / count, accuracy=float(matrix.diag().sum()) / count,
                      confusion=matrix.tolist(), predictions=torch.cat(predictions).cpu().tolist() if predictions else [])


def models_num_classes(model: nn.Module) -> int:
    """Classes of a zoo model, also when wrapped in DistributedDataParallel."""
    return getattr(model, "module", model).num_classes


def _emit(callbacks: list[Any], hook: str, state: TrainState) -> None:
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(state)


def build_model(config: TrainConfig, num_classes: int, in_channels: int) -> nn.Module:
    """The model a config trains: a zoo model from scratch, or a transfer model with its strategy applied."""
    if not config.strategy:
        return models.build(config.arch, num_classes=num_classes, in_channels=in_channels)
    from core import transfer, weights

    backbone = weights.load_pretrained(config.arch)[0] if config.pretrained else models.build(config.arch)
    model = transfer.TransferModel(backbone, num_classes)
    transfer.apply_strategy(model, config.strategy, config.unfreeze_last)
    return model


def training_input_size(arch: str, data_size: int) -> int:
    """The size images are fed at: the data's own, or the model's minimum if the images are smaller."""
    minimum, maximum = models.input_size_range(arch, training=True)
    if maximum is not None and data_size > maximum:
        return maximum
    return max(data_size, minimum)


def fit(config: TrainConfig, data: InMemoryData | FolderData, callbacks: list[Any] | tuple = (),
        stop: threading.Event | None = None, model: nn.Module | None = None,
        shard: tuple[int, int] = (0, 1), wrap: Any = None) -> FitResult:
    """Train ``config.arch`` on ``data``; evaluate on validation each epoch and on test at the end.

    Stops early on ``stop`` (within one batch), on a StopTraining from a subscriber, on early stopping,
    or on a non-finite loss (status "failed", with the reason). CUDA out-of-memory halves the batch
    size and restarts the epoch. ``shard``/``wrap`` serve distributed training (see core.train).
    """
    config.validate()
    callbacks = list(callbacks)
    stop = stop or threading.Event()
    device = devices.pick_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    if model is None:
        model = build_model(config, len(data.classes), data.channels)
    channels_last = device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)
    size = training_input_size(config.arch, data.size)
    state = TrainState(config=config, device=devices.describe(device), classes=data.classes, input_size=size,
                       batch_size=config.batch_size, model=model)
    if size != data.size:
        state.say(f"{models.spec(config.arch).display_name} needs at least {size}×{size} px: the "
                  f"{data.size}×{data.size} images are resized to {size}×{size}.")
    base = getattr(model, "module", model)
    train = make_batches(data.train, data, device, size, base.in_channels, channels_last)
    val = make_batches(data.val, data, device, size, base.in_channels, channels_last)
    step_model: nn.Module = model
    if config.feature_cache and getattr(base, "frozen_backbone", False) and not config.augment:
        state.say("The backbone is frozen and augmentation is off: its features are computed once and only "
                  "the head trains on them (feature cache).")
        train, val = FeatureBatches.of(base, train), FeatureBatches.of(base, val)
        step_model = HeadView(base)
    trained = wrap(step_model) if wrap else step_model
    optimizer = _optimizer(model, config)
    steps_per_epoch = train.steps(state.batch_size, shard)
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    state.steps_per_epoch = steps_per_epoch
    state.started = time.perf_counter()
    _emit(callbacks, "on_fit_start", state)
    epochs_without_improvement = 0
    try:
        epoch = 1
        while epoch <= config.epochs:
            state.epoch = epoch
            _emit(callbacks, "on_epoch_start", state)
            try:
                train_loss, train_acc = _train_epoch(trained, step_model, train, optimizer, scheduler, config, state,
                                                     callbacks, stop, generator, shard)
            except RuntimeError as error:
                if not _is_out_of_memory(error) or state.batch_size == 1:
                    raise
                _recover_memory(device)
                state.batch_size //= 2
                state.steps_per_epoch = train.steps(state.batch_size, shard)
                state.say(f"Out of memory at batch size {state.batch_size * 2}: retrying epoch {epoch} "
                          f"with batch size {state.batch_size}.")
                continue
            if state.status != "running":
                break
            result = evaluate(step_model, val, num_classes=len(data.classes))
            state.train_loss, state.train_acc = train_loss, train_acc
            state.val_loss, state.val_acc = result.loss, result.accuracy
            state.elapsed = time.perf_counter() - state.started
            state.history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                                  "val_loss": result.loss, "val_acc": result.accuracy, "lr": state.lr,
                                  "elapsed": state.elapsed})
            improved = result.loss < state.best_val_loss
            if improved:
                state.best_val_loss, state.best_epoch = result.loss, epoch
            epochs_without_improvement = 0 if improved else epochs_without_improvement + 1
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(result.loss)
            elif scheduler is not None and config.schedule != "onecycle":
                scheduler.step()
            _emit(callbacks, "on_epoch_end", state)
            if config.patience and epochs_without_improvement >= config.patience:
                state.say(f"Early stop: no better validation loss for {config.patience} epochs "
                          f"(best at epoch {state.best_epoch}).")
                break
            epoch += 1
    except StopTraining as signal:
        state.status = "stopped"
        state.say(str(signal) or "Stopped.")
    if state.status == "running":
        state.status = "completed"
    state.elapsed = time.perf_counter() - state.started
    test = None
    if state.status in ("completed", "stopped") and len(data.test):
        test_batches = make_batches(data.test, data, device, size, base.in_channels, channels_last)
        if isinstance(step_model, HeadView):
            test_batches = FeatureBatches.of(base, test_batches)
        test = evaluate(step_model, test_batches, num_classes=len(data.classes))
        state.test, state.test_labels = test, data.test.labels.tolist()
    _emit(callbacks, "on_fit_end", state)
    return FitResult(model=base, state=state, test=test)


def _recover_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _train_epoch(trained: nn.Module, base: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer,
                 scheduler: Any, config: TrainConfig, state: TrainState, callbacks: list[Any],
                 stop: threading.Event, generator: torch.Generator, shard: tuple[int, int]) -> tuple[float, float]:
    """One pass over the training batches; returns (mean loss, accuracy)."""
    trained.train()
    device = batches.device
    loss_sum = torch.zeros((), device=device)  # accumulated on the device: .item() each batch would sync
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    autocast = devices.autocast(device)
    for index, (x, y) in enumerate(batches.epoch(state.batch_size, shuffle=True, augment=config.augment,
                                                 generator=generator, shard=shard)):
        if stop.is_set():
            raise StopTraining("Stopped by the user; the model keeps what it learned so far.")
        with autocast:
            output = trained(x)
            loss, logits = _loss(base, output, y, config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(base.parameters(), config.grad_clip)
        optimizer.step()
        if config.schedule == "onecycle" and scheduler.last_epoch < scheduler.total_steps - 1:
            scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        state.step += 1
        state.images_seen += len(y) * shard[1]
        state.lr = optimizer.param_groups[0]["lr"]
        if state.step % LOG_EVERY == 0 or index == state.steps_per_epoch - 1:
            state.train_loss = float(loss_sum) / seen  # a sync point on a GPU, so only every LOG_EVERY batches
            state.train_acc = float(correct) / seen
            state.elapsed = time.perf_counter() - state.started
            if not math.isfinite(state.train_loss):
                state.status = "failed"
                state.say(f"The loss became {state.train_loss} at epoch {state.epoch}, batch {state.step}: training "
                          "diverged (try a lower learning rate). The last good checkpoint is kept.")
                return state.train_loss, state.train_acc
            _emit(callbacks, "on_batch_end", state)
    return float(loss_sum) / max(seen, 1), float(correct) / max(seen, 1)


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as a plain dict (for JSON)."""
    return asdict(config)

