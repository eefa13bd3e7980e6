"""How long the layer analysis takes, per model, against torchinfo in the same run.

    python -m benchmarks.summary_time [--repeats 3] [--models resnet50 vgg16 ...]

Cold: build the model and analyse it (the core cache cleared). Warm: the cached
summary the app serves on every rerun. Baseline: ``torchinfo.summary`` of the same
model at the same size on the CPU (a real forward pass), which is what a user
would otherwise call. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchinfo

from core import analysis, devices, models


def _median_seconds(function: Callable[..., object], repeats: int, *args: object, **kwargs: object) -> float:
    """Median wall time of ``function(*args, **kwargs)`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cold_summary(name: str) -> analysis.ModelSummary:
    """Build and analyse ``name`` with the core cache cleared."""
    analysis.summarize.cache_clear()
    return analysis.summarize(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=models.names())
    args = parser.parse_args()
    print(f"device: {devices.describe(devices.pick_device('cpu'))}, torch {torch.__version__}, "
          f"torchinfo {torchinfo.__version__ if hasattr(torchinfo, '__version__') else ''}")
    analysis.summarize("lenet5")  # pay the one-off import/meta-device warm-up outside the table
    header = f"{'model':13s} {'layers':>6s} {'cold (s)':>9s} {'warm (ms)':>10s} {'torchinfo (s)':>14s} {'speed-up':>9s}"
    print(header)
    print("-" * len(header))
    for name in args.models:
        spec = models.spec(name)
        cold_s = _median_seconds(_cold_summary, args.repeats, name)
        warm_s = _median_seconds(analysis.summarize, max(args.repeats, 100), name)
        model = models.build(name).eval()
        size = (1, spec.in_channels, spec.input_size, spec.input_size)
        baseline_s = _median_seconds(torchinfo.summary, args.repeats, model, size, device="cpu", verbose=0)
        rows = len(analysis.summarize(name).rows)
        print(f"{name:13s} {rows:6d} {cold_s:9.3f} {warm_s * 1000:10.4f} {baseline_s:14.3f} {baseline_s / cold_s:8.1f}×")


if __name__ == "__main__":
    main()
