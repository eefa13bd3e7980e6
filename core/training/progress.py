"""The one progress snapshot every subscriber reads (run store, live view, console bar, checkpoints, tests).

The trainer builds a new frozen ``Progress`` for each hook call; subscribers keep it, copy from it or ignore
it, but cannot change what the trainer or another subscriber sees.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from torch import nn

if TYPE_CHECKING:
    from core.training.config import TrainConfig
    from core.training.evaluation import Evaluation

Status = Literal["running", "completed", "stopped", "failed"]
Which = Literal["best", "last"]  # the two checkpoints of a run
LOG_EVERY = 20  # batches between progress reports (each one reads the loss back from the device)


@dataclass(frozen=True)
class EpochFigures:
    """One finished epoch: training figures (over the epoch), validation figures (at its end)."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    elapsed: float  # seconds since the run started, when the epoch ended

    def as_dict(self) -> dict[str, float]:
        """The figures as a plain dict (JSON, tables)."""
        return asdict(self)


@dataclass(frozen=True)
class TestFigures:
    """The test evaluation of one saved checkpoint (or of the final weights when nothing is saved)."""

    checkpoint: Which
    epoch: int
    step: int
    evaluation: Evaluation
    labels: tuple[int, ...]  # the true labels, in the order of ``evaluation.predictions``
    saved: bool  # whether that checkpoint is on disk

    def report(self, classes: tuple[str, ...], shown: int = 64) -> dict[str, Any]:
        """The JSON the run store and the sidecars keep: figures, confusion, and the first misclassified."""
        result = self.evaluation
        wrong = [i for i, p in enumerate(result.predictions) if p != self.labels[i]][:shown]
        return {"accuracy": result.accuracy, "loss": result.loss, "confusion": result.confusion,
                "per_class": result.per_class(), "classes": list(classes), "misclassified": wrong,
                "predicted": [result.predictions[i] for i in wrong],
                "checkpoint": self.checkpoint, "epoch": self.epoch, "step": self.step, "saved": self.saved}


@dataclass(frozen=True)
class Progress:
    """What the trainer knows at one hook call."""

    config: TrainConfig
    device: str  # described for people, e.g. "CPU · x86_64, 2 threads of 2 cores"
    classes: tuple[str, ...]
    input_size: int
    epoch: int  # the epoch running (1-based), or the last one that ran
    step: int  # batches done so far in the whole run
    steps_per_epoch: int  # at the current batch size
    total_steps: int  # planned for the whole run (re-planned when the batch size changes)
    batch_size: int
    lr: float
    train_loss: float  # running mean over the epoch so far
    train_acc: float
    val_loss: float  # of the last finished epoch
    val_acc: float
    best_val_loss: float
    best_epoch: int  # 0 until an epoch has been validated
    images_seen: int
    elapsed: float
    status: Status
    messages: tuple[str, ...]
    history: tuple[EpochFigures, ...]
    model: nn.Module = field(repr=False, compare=False)  # the model being trained (never wrapped in DDP)
    test: TestFigures | None = None  # set for on_fit_end: the figures shown for the run, and their checkpoint

    @property
    def images_per_second(self) -> float:
        """Training throughput so far."""
        return self.images_seen / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float:
        """Estimated seconds left, from the pace so far (NaN before the first step)."""
        done = self.step / self.total_steps if self.total_steps else 0
        return self.elapsed * (1 - done) / done if done > 0 else math.nan

    @property
    def best_val_acc(self) -> float:
        """The best validation accuracy of any finished epoch (NaN before the first)."""
        return max((row.val_acc for row in self.history), default=math.nan)


class Callback(Protocol):
    """What a subscriber may implement; every method is optional (the trainer looks each one up).

    A subscriber may raise ``StopTraining`` from any hook to end the run cleanly.
    """

    def on_fit_start(self, progress: Progress) -> None:
        """Model, data and optimiser are ready; nothing trained yet (or a resumed run's counters restored)."""

    def on_epoch_start(self, progress: Progress) -> None:
        """``progress.epoch`` is about to run."""

    def on_batch_end(self, progress: Progress) -> None:
        """Every LOG_EVERY batches and at each epoch's last batch, with the running loss and accuracy."""

    def on_step(self) -> None:
        """After every batch, with no snapshot (it must cost next to nothing): core.activity.ThreadShare."""

    def on_epoch_end(self, progress: Progress) -> None:
        """After validation: ``progress.history[-1]`` holds the epoch's figures."""

    def on_fit_end(self, progress: Progress) -> None:
        """The run ended (``progress.status``); ``progress.test`` holds the test figures if there are any."""


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a subscriber to end the run cleanly after the current batch."""
