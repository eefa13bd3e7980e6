"""core.latency: the app's one rule for timing a forward pass."""

from __future__ import annotations

import pytest
import torch

from core import devices, latency
from core.errors import InvalidArgumentError

CPU = torch.device("cpu")


class Counting(torch.nn.Module):
    """A model that only counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def test_latency_is_measured() -> None:
    result = latency.measure("lenet5", 4, devices.pick_device("cpu"), repeats=2)
    assert result.median_ms > 0 and result.images_per_second > 0
    assert (result.batch_size, result.input_size, result.repeats) == (4, 28, 2)
    assert "median of 2 timed passes after 2 warm-up passes, batch 4, 28×28 px" in result.rule
    with pytest.raises(InvalidArgumentError):
        latency.measure("lenet5", 0, devices.pick_device("cpu"))


def test_a_fast_model_is_timed_over_the_time_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven passes of a tiny model fit inside one burst of other work: the default rule keeps timing until the
    passes span MIN_SECONDS (here unreachable, so up to MAX_REPEATS), after the warm-up."""
    monkeypatch.setattr(latency, "MIN_SECONDS", 3600.0)
    monkeypatch.setattr(latency, "MAX_REPEATS", 40)
    model = Counting()
    result = latency.measure_model(model, "counting", (1, 4, 4), 1, CPU)
    assert (result.repeats, model.calls) == (40, 40 + latency.WARMUP)


def test_a_slow_model_stops_at_the_minimum_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency, "MIN_SECONDS", 0.0)
    model = Counting()
    result = latency.measure_model(model, "counting", (1, 4, 4), 1, CPU)
    assert (result.repeats, model.calls) == (latency.REPEATS, latency.REPEATS + latency.WARMUP)


def test_an_explicit_count_is_taken_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency, "MIN_SECONDS", 3600.0)
    model = Counting()
    assert latency.measure_model(model, "counting", (1, 4, 4), 1, CPU, repeats=3).repeats == 3
    assert model.calls == 3 + latency.WARMUP
