"""core.latency: the app's one rule for timing a forward pass, its spread, its conditions and the kept figures;
core.devices' inference threads. No test compares two timings: each checks how a figure is made and labelled."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from core import devices, latency, training
from core.errors import InvalidArgumentError
from core.runs import RunStore

CPU = torch.device("cpu")


class Counting(torch.nn.Module):
    """A model that only counts its forward passes and notes the CPU threads each ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.threads: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.threads.add(torch.get_num_threads())
        return x


def test_latency_is_measured() -> None:
    result = latency.measure("lenet5", 4, devices.pick_device("cpu"), repeats=2)
    assert result.median_ms > 0 and result.images_per_second > 0
    assert (result.batch_size, result.input_size, result.repeats) == (4, 28, 2)
    assert "median and p10–p90 of 2 timed passes after 2 warm-up passes, batch 4, 28×28 px" in result.rule
    assert result.p10_ms <= result.median_ms <= result.p90_ms  # the spread is reported with every figure
    assert result.conditions == latency.Conditions(devices.describe(CPU), torch.get_num_threads(), 0)
    assert result.device in result.rule and result.conditions.load == "measured with no run training"
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


def test_the_spread_is_the_10th_and_90th_percentile() -> None:
    assert latency.percentiles([float(v) for v in range(1, 12)]) == (6.0, 2.0, 10.0)
    assert latency.percentiles([5.0, 1.0, 3.0]) == (3.0, pytest.approx(1.4), pytest.approx(4.6))
    assert latency.percentiles([0.7]) == (0.7, 0.7, 0.7)  # one pass: no spread to speak of


def test_the_load_is_asked_before_and_after_the_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that starts training while the passes run still counts: the figure says it was measured beside it."""
    counts = iter([0, 1])
    result = latency.measure_model(Counting(), "counting", (1, 4, 4), 1, CPU, repeats=3, training=lambda: next(counts))
    assert result.conditions.training == 1
    assert result.conditions.load == "measured while 1 run was training"
    assert str(result.conditions) == f"{devices.describe(CPU)} · measured while 1 run was training"
    assert latency.Conditions("CPU", 1, 2).load == "measured while 2 runs were training"
    unknown = iter([0, None])  # the store could not be read after the passes: the load is not known
    result = latency.measure_model(Counting(), "counting", (1, 4, 4), 1, CPU, repeats=3, training=lambda: next(unknown))
    assert result.conditions.training is None and "training load unknown" in result.conditions.load


def test_the_passes_run_on_the_callers_threads_and_the_figure_says_how_many() -> None:
    """PyTorch's thread count is per thread: one set in a fresh thread holds for that thread's passes."""
    seen: list[tuple[latency.Latency, set[int]]] = []

    def in_a_thread() -> None:
        devices.use_threads(1)
        model = Counting()
        seen.append((latency.measure_model(model, "counting", (1, 4, 4), 1, CPU, repeats=3), model.threads))

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join(timeout=60)
    result, threads = seen[0]
    assert threads == {1} and result.conditions.threads == 1
    assert ", 1 thread of " in result.device


@pytest.mark.parametrize(("reserved", "cores", "threads"), [(0, 2, 2), (1, 2, 1), (2, 2, 1), (3, 16, 13), (-1, 4, 4)])
def test_the_server_leaves_the_workers_their_cores(reserved: int, cores: int, threads: int) -> None:
    assert devices.inference_threads(reserved, cores) == threads


def _figure(training: int = 0, threads: int = 2, median_ms: float = 1.0) -> latency.Latency:
    return latency.Latency("m", 1, 28, median_ms, median_ms, median_ms, 7, latency.Conditions("CPU", threads, training))


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_figure_is_reused_only_under_the_same_conditions() -> None:
    clock = Clock()
    figures = latency.Figures(fresh_seconds=60, clock=clock)
    measured: list[latency.Latency] = []

    def measure(training: int = 0, threads: int = 2) -> latency.Latency:
        measured.append(_figure(training, threads, median_ms=len(measured) + 1.0))
        return measured[-1]

    quiet = latency.Conditions("CPU", 2, 0)
    first = figures.get("lenet5", quiet, measure)
    assert figures.get("lenet5", quiet, measure) is first and len(measured) == 1  # same conditions, still fresh
    busy = latency.Conditions("CPU", 1, 1)
    during = figures.get("lenet5", busy, lambda: measure(1, 1))  # a run started: threads and load changed
    assert len(measured) == 2 and during.conditions == busy
    assert figures.get("lenet5", busy, measure) is during
    after = figures.get("lenet5", quiet, measure)  # the run ended: never the busy figure again
    assert len(measured) == 3 and after.conditions == quiet
    assert figures.get("alexnet", quiet, measure) is measured[3]  # each key its own figure


def test_a_kept_figure_expires() -> None:
    clock = Clock()
    figures = latency.Figures(fresh_seconds=60, clock=clock)
    quiet = latency.Conditions("CPU", 2, 0)
    first = figures.get("lenet5", quiet, _figure)
    clock.now = 59.0
    assert figures.get("lenet5", quiet, _figure) is first
    clock.now = 60.0
    assert figures.get("lenet5", quiet, _figure) is not first
    figures.clear()
    assert figures.get("lenet5", quiet, _figure) is not first


def test_a_figure_measured_while_the_conditions_changed_is_not_kept_for_the_old_ones() -> None:
    figures = latency.Figures()
    quiet = latency.Conditions("CPU", 2, 0)
    figures.get("lenet5", quiet, lambda: _figure(training=1))  # a run started during the passes
    fresh = figures.get("lenet5", quiet, _figure)
    assert fresh.conditions == quiet


def test_the_kept_figures_are_bounded() -> None:
    figures = latency.Figures(capacity=2)
    quiet = latency.Conditions("CPU", 2, 0)
    kept = [figures.get(key, quiet, _figure) for key in ("a", "b", "c")]
    assert figures.get("c", quiet, _figure) is kept[2] and figures.get("b", quiet, _figure) is kept[1]
    assert figures.get("a", quiet, _figure) is not kept[0]  # the oldest went first


def test_the_load_is_the_runs_training_now(tmp_path: Path) -> None:
    """What a figure's load counts: runs running with a live trainer, not queued ones nor those gone quiet."""
    store = RunStore(tmp_path)
    config = training.TrainConfig(arch="lenet5", dataset="digits", epochs=1)
    first, second = store.create_run(config), store.create_run(config)
    assert store.training() == 0  # queued runs wait; they do not compute
    assert store.claim("w0").id == first and store.training() == 1
    assert store.claim("w1").id == second and store.training() == 2
    store.update_run(second, heartbeat=time.time() - 10 * store.heartbeat_timeout)  # its trainer went quiet
    assert store.training() == 1
    store.update_run(first, status="completed")
    assert store.training() == 0
