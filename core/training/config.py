"""What defines a training run: the config dataclass, its choices as types, and the presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from core import models
from core.data import FOLDER_PREFIX, IN_MEMORY
from core.devices import Device
from core.errors import InvalidArgumentError

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["none", "step", "cosine", "onecycle", "plateau"]
Strategy = Literal["", "feature_extraction", "partial", "full"]  # "" trains from scratch (core.transfer.STRATEGIES)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults: the course notes' LeNet-5 recipe."""

    arch: str = "lenet5"
    dataset: str = "digits"  # an in-memory set (core.data.IN_MEMORY) or "folder:PATH"
    epochs: int = 10
    batch_size: int = 128
    optimizer: Optimizer = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 5e-4  # the notes' "L2 penalty"
    schedule: Schedule = "none"
    step_size: int = 30  # epochs between step decays
    gamma: float = 0.1  # decay factor (step, plateau)
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    patience: int = 0  # early stopping: epochs without a better validation loss; 0 = off
    augment: bool = False  # random shifts (and flips for photos) on the device
    feature_cache: bool = True  # with a frozen backbone and no augmentation, compute its features once
    cuda_graphs: bool = True  # on CUDA, replay the training step and evaluation as CUDA graphs where possible
    strategy: Strategy = ""  # "" trains the model from scratch; else a transfer strategy
    pretrained: bool = False  # start the backbone from its ImageNet weights (transfer learning)
    unfreeze_last: int = 2  # blocks the "partial" strategy unfreezes
    seed: int = 0
    device: Device = "auto"  # auto | cuda | mps | cpu (core.devices.CHOICES)
    lr_find: bool = False  # a learning-rate range test (core.training.lr_sweep) instead of training

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
            (self.strategy in STRATEGIES,
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
    # Fast on a CPU for a data set of tens of thousands of images (MNIST): a CPU is bound by arithmetic and
    # memory traffic, so time goes with the images seen: 4 epochs at batch 256, a higher peak rate, and label
    # smoothing, which gained most in a sweep (benchmarks/train_mnist.py; LeNet-5: 99.2 % in ~10 s on 2 cores).
    "Fast, few epochs (CPU)": dict(optimizer="adam", lr=1e-2, batch_size=256, weight_decay=0.0,
                                   schedule="onecycle", epochs=4, label_smoothing=0.1),
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


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as a plain dict (for JSON)."""
    return asdict(config)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from a stored dict, ignoring keys this version does not know; validated."""
    known = TrainConfig.__dataclass_fields__
    return TrainConfig(**{key: value for key, value in values.items() if key in known}).validate()
