"""Forward-pass latency of a model on a device, measured, never estimated.

One rule for the whole app: ``WARMUP`` untimed passes (the first pass pays for memory allocation, kernel
selection and caches), then the median of at least ``REPEATS`` timed passes spanning at least
``MIN_SECONDS``, each bracketed by a device synchronisation, in eval mode without gradients, on a random batch
at the model's input size; the device is named with the result. The time floor matters for small models:
seven passes of LeNet-5 take 2 ms, all of which can fall inside one burst of other work on a busy machine
(a browser drawing the page on the same 2 cores made them 75 ms instead of 0.3 ms); passes spread over half
a second give a median that such a burst cannot move. Every page that shows a latency (Classify, Compare)
calls ``measure_model``, so the same model and batch give the same figure wherever they are shown.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from core import devices, models
from core.models.base import check_positive

WARMUP = 2
REPEATS = 7
MIN_SECONDS = 0.5  # timed passes continue until they span this long (REPEATS at least, MAX_REPEATS at most)
MAX_REPEATS = 5000


@dataclass(frozen=True)
class Latency:
    """Median time of one forward pass of a batch, and where it was measured."""

    name: str
    device: str  # devices.describe(): e.g. "CPU · x86_64, 2 threads of 2 cores"
    batch_size: int
    input_size: int
    median_ms: float
    repeats: int
    warmup: int = WARMUP

    @property
    def images_per_second(self) -> float:
        """Throughput implied by the median."""
        return self.batch_size / (self.median_ms / 1000)

    @property
    def rule(self) -> str:
        """How the figure was measured, in one line."""
        return (f"median of {self.repeats} timed passes after {self.warmup} warm-up passes, batch {self.batch_size}, "
                f"{self.input_size}×{self.input_size} px, on {self.device}")


def measure_model(model: torch.nn.Module, name: str, input_shape: tuple[int, int, int], batch_size: int,
                  device: torch.device, repeats: int | None = None, warmup: int = WARMUP) -> Latency:
    """Time forward passes of ``model`` (already built, any weights) on a random C×H×W batch: the app's one rule.

    The model is put in eval mode on ``device``; on CUDA it runs in bfloat16 autocast with channels_last
    memory, as training does. The caller owns the model (and its lock, if it is shared).
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
    times: list[float] = []
    spent = 0.0  # seconds of timed passes so far
    with torch.inference_mode(), devices.autocast(device):
        for i in range(warmup + MAX_REPEATS):
            devices.synchronize(device)
            start = time.perf_counter()
            model(x)
            devices.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
                spent += times[-1]
                if len(times) >= repeats and spent >= floor:
                    break
    return Latency(name, devices.describe(device), batch_size, input_shape[-1], statistics.median(times) * 1000,
                   len(times), warmup)


def measure(name: str, batch_size: int, device: torch.device, repeats: int | None = None, warmup: int = WARMUP,
            model: torch.nn.Module | None = None) -> Latency:
    """Time registered model ``name`` at its native input size (``measure_model``'s rule).

    Pass ``model`` to reuse an already built one (its weights do not matter for timing).
    """
    check_positive(batch_size, "batch size")
    model_spec = models.spec(name)
    model = model if model is not None else models.build(name)
    shape = (model_spec.in_channels, model_spec.input_size, model_spec.input_size)
    return measure_model(model, name, shape, batch_size, device, repeats, warmup)
