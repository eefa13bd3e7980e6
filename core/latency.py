"""Forward-pass latency of a model on a device, measured, never estimated, with its spread and its conditions.

One rule for the whole app: ``WARMUP`` untimed passes (the first pass pays for memory allocation, kernel
selection and caches), then at least ``REPEATS`` timed passes spanning at least ``MIN_SECONDS``, each bracketed
by a device synchronisation, in eval mode without gradients, on a random batch at the model's input size. The
figure is the median, with the 10th and 90th percentiles as its spread. The time floor matters for small models:
seven passes of LeNet-5 take 2 ms, all of which can fall inside one burst of other work on a busy machine (a
browser drawing the page on the same 2 cores made them 75 ms instead of 0.3 ms); passes spread over half a second
give a median that such a burst cannot move, and the percentiles show how much the passes varied.

A figure also depends on what it was measured under: the device, the CPU threads of the pass and the training
runs beside it (a run training on the same cores made ResNet-18 slower, benchmarks/latency_load.py). Every
``Latency`` carries those ``Conditions`` and says them; ``Figures`` keeps a figure only while they still hold
and for at most ``FRESH_SECONDS``. Every page that shows a latency (Classify, Compare) calls ``measure_model``,
so the same model and batch under the same conditions give the same figure wherever they are shown.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from core import devices, models
from core.models.base import check_positive

WARMUP = 2
REPEATS = 7
MIN_SECONDS = 0.5  # timed passes continue until they span this long (REPEATS at least, MAX_REPEATS at most)
MAX_REPEATS = 5000
FRESH_SECONDS = 120.0  # a kept figure is measured again after this long, even if its conditions still hold
SPREAD = "p10–p90"  # how the app names the spread it shows


@dataclass(frozen=True)
class Conditions:
    """What a figure was measured under besides the model and batch: the device (with its CPU threads, as
    ``devices.describe`` names it), the CPU threads of the passes, and how many runs were training meanwhile."""

    device: str
    threads: int
    training: int | None = 0  # None: unknown (the run store could not be read)

    @property
    def load(self) -> str:
        """The training beside the measurement, for a lecture audience."""
        if self.training is None:
            return "measured with the training load unknown (the run database cannot be read)"
        if self.training == 0:
            return "measured with no run training"
        if self.training == 1:
            return "measured while 1 run was training"
        return f"measured while {self.training} runs were training"

    def __str__(self) -> str:
        """The device and the load: "CPU · x86_64, 1 thread of 2 cores · measured while 1 run was training"."""
        return f"{self.device} · {self.load}"


@dataclass(frozen=True)
class Latency:
    """Time of one forward pass of a batch: median and spread, and the conditions it was measured under."""

    name: str
    batch_size: int
    input_size: int
    median_ms: float
    p10_ms: float  # a tenth of the timed passes were faster than this
    p90_ms: float  # a tenth of the timed passes were slower than this
    repeats: int
    conditions: Conditions
    warmup: int = WARMUP

    @property
    def device(self) -> str:
        """The device it was measured on, e.g. "CPU · x86_64, 2 threads of 2 cores"."""
        return self.conditions.device

    @property
    def images_per_second(self) -> float:
        """Throughput implied by the median."""
        return self.batch_size / (self.median_ms / 1000)

    @property
    def rule(self) -> str:
        """How the figure was measured, in one line."""
        return (f"median and {SPREAD} of {self.repeats} timed passes after {self.warmup} warm-up passes, "
                f"batch {self.batch_size}, {self.input_size}×{self.input_size} px, on {self.device}")


def percentiles(times_ms: list[float]) -> tuple[float, float, float]:
    """Median, 10th and 90th percentile of some pass times (all three the one time when there is only one)."""
    if len(times_ms) < 2:
        return times_ms[0], times_ms[0], times_ms[0]
    deciles = statistics.quantiles(times_ms, n=10, method="inclusive")
    return statistics.median(times_ms), deciles[0], deciles[-1]


def _timed_passes(model: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int, floor: float) -> list[float]:
    """Milliseconds of each timed pass: ``warmup`` untimed, then at least ``repeats`` spanning ``floor`` seconds
    (at most MAX_REPEATS)."""
    times: list[float] = []
    spent = 0.0  # seconds of timed passes so far
    with torch.inference_mode(), devices.autocast(x.device):
        for i in range(warmup + MAX_REPEATS):
            devices.synchronize(x.device)
            start = time.perf_counter()
            model(x)
            devices.synchronize(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
                spent += times[-1]
                if len(times) >= repeats and spent >= floor:
                    break
    return [seconds * 1000 for seconds in times]


def _no_training() -> int | None:
    return 0


def _busier(before: int | None, after: int | None) -> int | None:
    """The load of a measurement from the counts before and after it: the larger, unknown if either is."""
    return None if before is None or after is None else max(before, after)


def measure_model(model: torch.nn.Module, name: str, input_shape: tuple[int, int, int], batch_size: int,
                  device: torch.device, repeats: int | None = None, warmup: int = WARMUP,
                  training: Callable[[], int | None] = _no_training) -> Latency:
    """Time forward passes of ``model`` (already built, any weights) on a random C×H×W batch: the app's one rule.

    The model is put in eval mode on ``device``; on CUDA it runs in bfloat16 autocast with channels_last
    memory, as training does. The passes run on this thread's PyTorch CPU threads (the caller sets them).
    ``training`` counts the runs training now (None: unknown); it is asked before and after the passes and the
    larger count is the figure's load. The caller owns the model (and its lock, if it is shared).
    """
    check_positive(batch_size, "batch size")
    # The rule: at least REPEATS passes spanning MIN_SECONDS. An explicit count (tests, benchmarks) is taken as given.
    floor = MIN_SECONDS if repeats is None else 0.0
    repeats = REPEATS if repeats is None else repeats
    check_positive(repeats, "repeats")
    model = model.to(device).eval()
    x = torch.randn(batch_size, *input_shape, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    before = training()
    times = _timed_passes(model, x, repeats, warmup, floor)
    conditions = Conditions(devices.describe(device), torch.get_num_threads(), _busier(before, training()))
    median, p10, p90 = percentiles(times)
    return Latency(name, batch_size, input_shape[-1], median, p10, p90, len(times), conditions, warmup)


def measure(name: str, batch_size: int, device: torch.device, repeats: int | None = None, warmup: int = WARMUP,
            model: torch.nn.Module | None = None, training: Callable[[], int | None] = _no_training) -> Latency:
    """Time registered model ``name`` at its native input size (``measure_model``'s rule).

    Pass ``model`` to reuse an already built one (its weights do not matter for timing).
    """
    check_positive(batch_size, "batch size")
    model_spec = models.spec(name)
    model = model if model is not None else models.build(name)
    shape = (model_spec.in_channels, model_spec.input_size, model_spec.input_size)
    return measure_model(model, name, shape, batch_size, device, repeats, warmup, training)


class Figures:
    """The latest figure for each key (a model and batch), kept while the conditions it was measured under
    still hold and for at most ``fresh_seconds``; safe from many threads."""

    def __init__(self, fresh_seconds: float = FRESH_SECONDS, capacity: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_seconds = fresh_seconds
        self.capacity = capacity
        self.clock = clock
        self._kept: dict[Hashable, tuple[float, Latency]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: Conditions, measure: Callable[[], Latency]) -> Latency:
        """The kept figure for ``key`` if it was measured under ``now`` within ``fresh_seconds``, else
        ``measure()``'s (which is then kept)."""
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[1].conditions == now and self.clock() - kept[0] < self.fresh_seconds:
            return kept[1]
        result = measure()
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = (self.clock(), result)
            while len(self._kept) > self.capacity:  # the oldest first (dicts keep insertion order)
                self._kept.pop(next(iter(self._kept)))
        return result

    def clear(self) -> None:
        """Forget every kept figure."""
        with self._lock:
            self._kept.clear()
