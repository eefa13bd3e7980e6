"""The learning-rate range test (Smith, 2017; fastai's ``lr_find``): train for a few hundred batches while the
rate grows exponentially from ``start`` to ``end``, record the loss at each rate, and stop early once the
smoothed loss exceeds ``DIVERGENCE`` times its minimum.

Pure PyTorch and pure functions: the schedule (:func:`rates`), the smoothing (:func:`smooth`, fastai's
debiased exponential moving average), the suggestion (:func:`suggest`: the steepest descent of the smoothed
loss against log rate, and the rate at its minimum divided by ten, both reported) and the sweep itself
(:func:`range_test`), which leaves the model's weights as it found them.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from core.errors import CancelledError, InvalidArgumentError

START_LR = 1e-7  # fastai's defaults
END_LR = 10.0
STEPS = 100
MAX_STEPS = 500  # a few hundred batches at most
BETA = 0.98  # the moving average's weight on the past
DIVERGENCE = 4.0  # stop once the smoothed loss exceeds this many times its minimum

Batch = tuple[torch.Tensor, torch.Tensor]
OnPoint = Callable[[int, float, float], None]  # step, rate, raw loss


@dataclass(frozen=True)
class Suggestion:
    """Two suggested rates: the steepest descent of the smoothed loss, and the rate at its minimum over ten."""

    steepest: float
    minimum_tenth: float


@dataclass(frozen=True)
class Sweep:
    """The rates tried, the loss at each, its smoothing, and whether the sweep stopped on divergence."""

    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool


def rates(start: float = START_LR, end: float = END_LR, steps: int = STEPS) -> list[float]:
    """``steps`` rates growing exponentially from ``start`` to ``end`` (both included)."""
    if not (0 < start < end and math.isfinite(end)):
        raise InvalidArgumentError("the range test needs 0 < start rate < end rate")
    if not 2 <= steps <= MAX_STEPS:
        raise InvalidArgumentError(f"the range test takes between 2 and {MAX_STEPS} steps")
    ratio = (end / start) ** (1 / (steps - 1))
    return [start * ratio**i for i in range(steps)]


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """fastai's debiased exponential moving average of ``losses``."""
    average, out = 0.0, []
    for i, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**i))
    return out


def has_diverged(smoothed: list[float], factor: float = DIVERGENCE) -> bool:
    """Whether the last smoothed loss is not finite or exceeds ``factor`` times the lowest so far."""
    if not smoothed:
        return False
    last = smoothed[-1]
    return not math.isfinite(last) or last > factor * min(smoothed)


def suggest(sweep_rates: list[float], smoothed: list[float]) -> Suggestion:
    """The steepest descent of the smoothed loss against log rate, and the rate at its minimum over ten.

    Points after the minimum (the blow-up) are ignored for the steepest descent, as fastai does.
    """
    finite = [(r, s) for r, s in zip(sweep_rates, smoothed, strict=False) if math.isfinite(s)]
    if len(finite) < 3:
        raise InvalidArgumentError("the range test recorded too few finite losses to suggest a rate")
    lowest = min(range(len(finite)), key=lambda i: finite[i][1])
    upto = finite[: max(lowest + 1, 3)]
    slopes = [(upto[i + 1][1] - upto[i - 1][1]) / (math.log(upto[i + 1][0]) - math.log(upto[i - 1][0]))
              for i in range(1, len(upto) - 1)]
    steepest = 1 + min(range(len(slopes)), key=slopes.__getitem__)
    return Suggestion(steepest=upto[steepest][0], minimum_tenth=finite[lowest][0] / 10)


def _cycle(batches: Iterable[Batch]) -> Iterator[Batch]:
    """The batches over and over (the sweep may be longer than one epoch)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise InvalidArgumentError("the range test needs at least one batch of data")


def range_test(model: nn.Module, batches: Iterable[Batch], loss_fn: Callable[[torch.Tensor, torch.Tensor],
               torch.Tensor], optimizer: torch.optim.Optimizer, schedule: list[float],
               on_point: OnPoint | None = None, cancel: threading.Event | None = None) -> Sweep:
    """Train ``model`` one batch per rate of ``schedule``; stop early on divergence; restore the weights after.

    ``on_point`` hears every (step, rate, loss) as it is recorded; ``cancel`` is checked before every batch.
    """
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    losses: list[float] = []
    smoothed: list[float] = []
    diverged = False
    model.train()
    try:
        for step, (rate, (x, y)) in enumerate(zip(schedule, _cycle(batches), strict=False)):
            if cancel is not None and cancel.is_set():
                raise CancelledError("the learning-rate range test was cancelled")
            for group in optimizer.param_groups:
                group["lr"] = rate
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            value = float(loss.detach())
            losses.append(value)
            smoothed = smooth(losses)
            if on_point is not None:
                on_point(step, rate, value)
            if has_diverged(smoothed):
                diverged = True
                break
            loss.backward()
            optimizer.step()
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
    return Sweep(rates=list(schedule[: len(losses)]), losses=losses, smoothed=smoothed, diverged=diverged)
