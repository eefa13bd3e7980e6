"""Latency figures as the pages show them: core.latency's one rule, on the server's inference threads, with the
spread and the load each was measured under. No streamlit here beyond what ``services`` owns.

Compare measures on every press (``measure``); Classify keeps a figure while the conditions it was measured
under still hold, for at most ``latency.FRESH_SECONDS`` (``for_classifier``): a run that starts or ends
training, or another thread count, brings a fresh figure, never one left over from a busier moment.
"""

from __future__ import annotations

from typing import Any

from core import latency
from explorer import services

SPREAD = latency.SPREAD
FRESH_SECONDS = latency.FRESH_SECONDS
RULE = (f"median and {latency.SPREAD} of at least {latency.REPEATS} timed passes spanning at least "
        f"{latency.MIN_SECONDS:g} s, after {latency.WARMUP} warm-up passes, on the CPU threads the training "
        "workers leave free; bfloat16 and channels_last on CUDA")

_FIGURES = latency.Figures()


def conditions() -> latency.Conditions:
    """The conditions a figure measured now is under; gives this thread the server's inference threads."""
    training = services.training_now()
    services.settle_training_threads(training)
    threads = services.use_inference_threads(training)
    return latency.Conditions(services.device_name(), threads, training)


def row(result: latency.Latency) -> dict[str, Any]:
    """A figure as a table row: median and spread in ms, throughput, threads, load, device and rule."""
    return {"model": result.name, "batch": result.batch_size, "median ms": round(result.median_ms, 4),
            "p10 ms": round(result.p10_ms, 4), "p90 ms": round(result.p90_ms, 4),
            "images/s": round(result.images_per_second, 1), "threads": result.conditions.threads,
            "load": result.conditions.load, "device": result.device, "conditions": str(result.conditions),
            "rule": result.rule}


def measure(name: str, batch_size: int) -> dict[str, Any]:
    """Latency of registered model ``name`` at ``batch_size`` on the server's device, measured now (the Compare
    page keeps its figures in the session; a second press measures again)."""
    training = services.training_now()
    services.settle_training_threads(training)
    services.use_inference_threads(training)
    return row(latency.measure(name, batch_size, services.device(), training=services.training_now))


def for_classifier(key: str, batch_size: int = 1) -> dict[str, Any]:
    """Latency of shared classifier ``key`` at its input size, by the same function as ``measure``: the kept
    figure while its conditions hold and it is fresh, else measured now."""
    model = services.classifier(key)
    shape = (model.channels, model.crop, model.crop)
    with services.model_lock(key):
        now = conditions()
        result = _FIGURES.get((key, batch_size), now, lambda: latency.measure_model(
            model.model, key, shape, batch_size, services.device(), training=services.training_now))
    return row(result)


def forget() -> None:
    """Forget every kept figure (tests; a new model under an old key)."""
    _FIGURES.clear()
