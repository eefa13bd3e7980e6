"""Clocks the benchmarks share: steady-state training throughput, for the trainer and for a plain loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch

from core import devices, training

WARMUP_STEPS = training.LOG_EVERY  # the trainer's first report: cuDNN's autotuning and the allocator are warm by then


def warms_up(batches: int) -> bool:
    """Whether a run of ``batches`` is long enough to leave its first WARMUP_STEPS out of the timing."""
    return batches > 2 * WARMUP_STEPS


class SteadyClock:
    """Trainer subscriber timing training steps: from the trainer's first report to its last.

    The trainer reports every ``training.LOG_EVERY`` steps, right after reading the loss back (a sync
    point), so the clock needs no sync of its own. With ``warmup`` off it starts at ``on_fit_start``
    (runs too short to skip anything). Use it on one-epoch runs: validation is not a training step.
    """

    def __init__(self, warmup: bool = True) -> None:
        self.warmup = warmup
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def on_fit_start(self, progress: training.Progress) -> None:
        if not self.warmup:
            self.start = (time.perf_counter(), 0)

    def on_batch_end(self, progress: training.Progress) -> None:
        mark = (time.perf_counter(), progress.images_seen)
        if self.start is None:
            self.start = mark
        else:
            self.end = mark

    @property
    def images_per_second(self) -> float:
        """Images trained per second between the two marks."""
        if self.start is None or self.end is None:
            raise RuntimeError("the run was too short to time: train more steps")
        return (self.end[1] - self.start[1]) / (self.end[0] - self.start[0])


def loop_images_per_second(batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                           step: Callable[[torch.Tensor, torch.Tensor], None], device: torch.device,
                           warmup: bool = True) -> float:
    """Images/s of a plain training loop running ``step`` on each batch, timed like :class:`SteadyClock`."""
    start: tuple[float, int] | None = None if warmup else (time.perf_counter(), 0)
    seen = 0
    for index, (x, y) in enumerate(batches):
        if start is None and index == WARMUP_STEPS:
            devices.synchronize(device)
            start = (time.perf_counter(), seen)
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        seen += len(y)
    devices.synchronize(device)
    if start is None:
        raise RuntimeError("the run was too short to time: train more steps")
    return (seen - start[1]) / (time.perf_counter() - start[0])
