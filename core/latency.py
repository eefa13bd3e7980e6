"""Forward-pass latency of a model on a device, measured, never estimated."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from core import devices, models
from core.models.base import check_positive


@dataclass(frozen=True)
class Latency:
    """Median time of one forward pass of a batch."""

    name: str
    device: str
    batch_size: int
    input_size: int
    median_ms: float
    repeats: int

    @property
    def images_per_second(self) -> float:
        """Throughput implied by the median."""
        return self.batch_size / (self.median_ms / 1000)


def measure(name: str, batch_size: int, device: torch.device, repeats: int = 5, warmup: int = 1,
            model: torch.nn.Module | None = None) -> Latency:
    """Time ``repeats`` forward passes of a random batch at the model's native size (eval, no grad).

    On CUDA the pass runs in bfloat16 autocast with channels_last memory, as training does.
    Pass ``model`` to reuse an already built one (its weights do not matter for timing).
    """
    check_positive(batch_size, "batch size")
    check_positive(repeats, "repeats")
    model_spec = models.spec(name)
    model = (model if model is not None else models.build(name)).to(device).eval()
    x = torch.randn(batch_size, model_spec.in_channels, model_spec.input_size, model_spec.input_size, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode(), devices.autocast(device):
        for i in range(warmup + repeats):
            devices.synchronize(device)
            start = time.perf_counter()
            model(x)
            devices.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return Latency(name, str(device), batch_size, model_spec.input_size, statistics.median(times) * 1000, repeats)
