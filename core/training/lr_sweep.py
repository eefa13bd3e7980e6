"""The learning-rate range test as a run: a worker that claims a run whose config has ``lr_find`` sweeps the rate
(``core.training.lr_finder``) on the run's model, data and optimiser instead of training it.

Each point is a metrics row of kind ``"lr_find"`` (``{"lr": rate, "loss": loss}``) written through the run's claim,
so the sweep streams, is fenced and stops like any run; the run ends "completed" with both suggestions in its
message (the view recomputes them from the rows with ``lr_finder.suggest``), or "stopped" when asked to stop.
Nothing is checkpointed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from core.errors import CancelledError, InvalidArgumentError
from core.training import lr_finder
from core.training.batches import training_order
from core.training.config import TrainConfig
from core.training.evaluation import training_loss
from core.training.trainer import Data, Trainer

KIND = "lr_find"  # the metrics rows of a sweep
HEARTBEAT_EVERY = 10  # points between heartbeats


def _batches(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The run's training batches, epoch after epoch, in its shuffled orders."""
    while True:
        order = training_order(trainer.train_batches, trainer.batch_size, trainer.generator)
        if len(order) == 0:
            raise InvalidArgumentError("the data set has too few training images for one batch")
        yield from trainer.train_batches.batches(order, trainer.batch_size, trainer.config.augment, trainer.generator)


def run(config: TrainConfig, data: Data, claim: Any, stop: threading.Event,
        steps: int = lr_finder.STEPS) -> lr_finder.Sweep | None:
    """Sweep the rate for ``config`` on ``data``, writing each point and the outcome through ``claim``."""
    config = dataclasses.replace(config, cuda_graphs=False, epochs=1)
    trainer = Trainer(config, data, stop=stop)
    started = time.perf_counter()
    claim.forget_metrics_after(-1)  # a resumed sweep starts again
    claim.update(status="running", device=str(trainer.device), heartbeat=time.time(),
                 progress={"epoch": 0, "epochs": 1, "step": 0, "total_steps": steps, "elapsed": 0.0,
                           "messages": list(trainer.messages)})

    def loss_fn(output: Any, labels: torch.Tensor) -> torch.Tensor:
        with trainer.autocast:
            return training_loss(trainer.step_model, output, labels, config.label_smoothing)[0]

    def on_point(step: int, rate: float, loss: float) -> None:
        claim.log(KIND, 0, step, time.perf_counter() - started, {"lr": rate, "loss": loss})
        if step % HEARTBEAT_EVERY == 0:
            claim.update(heartbeat=time.time(), progress={
                "epoch": 0, "epochs": 1, "step": step + 1, "total_steps": steps,
                "elapsed": time.perf_counter() - started, "messages": []})

    try:
        sweep = lr_finder.range_test(trainer.trained, _batches(trainer), loss_fn, trainer.optimizer,
                                     lr_finder.rates(steps=steps), on_point=on_point, cancel=stop)
    except CancelledError:
        claim.update(status="stopped", message="The learning-rate range test was stopped.",
                     elapsed=time.perf_counter() - started)
        return None
    return _finish(claim, sweep, time.perf_counter() - started)


def _finish(claim: Any, sweep: lr_finder.Sweep, elapsed: float) -> lr_finder.Sweep:
    """Record the outcome: both suggestions, or why there are none."""
    try:
        suggestion = lr_finder.suggest(sweep.rates, sweep.smoothed)
    except InvalidArgumentError as error:
        claim.update(status="failed", message=str(error), elapsed=elapsed)
        return sweep
    end = "the loss diverged" if sweep.diverged else "the sweep reached its last rate"
    claim.update(status="completed", elapsed=elapsed,
                 message=f"Range test: {len(sweep.losses)} batches, until {end}. Steepest descent at "
                         f"{suggestion.steepest:.2g}; minimum/10 at {suggestion.minimum_tenth:.2g}.")
    return sweep
