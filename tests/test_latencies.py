"""explorer.latencies and the server's inference threads: Classify and Compare time by one function, on the
threads the training workers leave free, and say the spread and the load. No test compares two timings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from core import classifiers, devices, latency, models


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The services on a 3-core machine whose workers hold one thread per training run; ``training`` is how many
    runs train now (the test sets it). The thread count of the test's thread is restored afterwards."""
    from explorer import latencies, services

    threads = torch.get_num_threads()
    state = SimpleNamespace(training=0, services=services, latencies=latencies)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(services, "supervisor", lambda: SimpleNamespace(threads_per_run=1))
    monkeypatch.setattr(services, "training_now", lambda: state.training)
    monkeypatch.setattr(latency, "MIN_SECONDS", 0.0)  # the rule's count, not its time floor: these tests time nothing
    lenet = models.build("lenet5").eval()
    loaded = classifiers.Classifier("run:x", "LeNet-5 · run x", lenet, tuple("0123456789"), 28, 28, (0.5,), (0.5,), 1)
    monkeypatch.setattr(services, "classifier", lambda key: loaded)
    latencies.forget()
    yield state
    latencies.forget()
    torch.set_num_threads(threads)


def test_the_server_computes_on_the_cores_the_workers_leave(server: SimpleNamespace) -> None:
    seen: list[int] = []
    model = server.services.classifier("run:x")
    hook = model.model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        server.services.predict(model, torch.zeros(1, 1, 28, 28))
        server.training = 1
        server.services.predict(model, torch.zeros(1, 1, 28, 28))
    finally:
        hook.remove()
    assert seen == [3, 2]  # all three cores when nothing trains; one left to the training worker


def test_classify_and_compare_time_by_one_function_under_the_same_conditions(server: SimpleNamespace,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    real = latency.measure_model

    def spy(model, name, input_shape, batch_size, device, *args, **kwargs):
        calls.append((type(model).__name__, tuple(input_shape), batch_size))
        return real(model, name, input_shape, batch_size, device, *args, **kwargs)

    monkeypatch.setattr(latency, "measure_model", spy)
    server.training = 1
    compare = server.latencies.measure("lenet5", 1)
    classify = server.latencies.for_classifier("run:x")
    assert len(calls) == 2 and calls[0] == calls[1]  # the same function on the same model, input and batch
    for row in (compare, classify):
        assert row["threads"] == 2 and row["load"] == "measured while 1 run was training"
        assert row["p10 ms"] <= row["median ms"] <= row["p90 ms"]
        assert "p10–p90" in row["rule"] and row["rule"].startswith("median and p10–p90 of 7 timed passes")
    assert compare["conditions"] == classify["conditions"]
    assert compare["conditions"] == f"{server.services.device_name()} · measured while 1 run was training"


def test_classify_measures_again_when_a_run_starts_or_stops_training(server: SimpleNamespace,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = latency.measure_model

    def spy(*args, **kwargs):
        calls.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(latency, "measure_model", spy)
    quiet = server.latencies.for_classifier("run:x")
    assert server.latencies.for_classifier("run:x") == quiet and calls == [3]  # kept while nothing changed
    server.training = 1
    busy = server.latencies.for_classifier("run:x")
    assert calls == [3, 2] and busy["load"] == "measured while 1 run was training"
    server.training = 0
    again = server.latencies.for_classifier("run:x")  # never the figure from the busy moment
    assert calls == [3, 2, 3] and again["load"] == "measured with no run training" and again["threads"] == 3


def test_with_the_run_database_unreadable_the_load_is_said_to_be_unknown(server: SimpleNamespace) -> None:
    """ImageNet models classify without the run store; the figure then does not claim that nothing trained, and
    the server leaves one run's threads in case one does."""
    server.training = None
    classify = server.latencies.for_classifier("run:x")
    assert classify["threads"] == 2
    assert classify["load"] == "measured with the training load unknown (the run database cannot be read)"


def test_an_unreadable_store_or_executor_does_not_stop_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ExplorerError
    from explorer import services

    def unreadable() -> None:
        raise ExplorerError("the run database cannot be read")

    threads = torch.get_num_threads()
    monkeypatch.setattr(services, "run_store", unreadable)
    monkeypatch.setattr(services, "supervisor", unreadable)
    try:
        assert services.training_now() is None
        assert services.use_inference_threads(None) == devices.inference_threads(0)
    finally:
        torch.set_num_threads(threads)


def test_a_latency_reads_with_its_spread_and_conditions() -> None:
    from explorer import components

    row = {"p10 ms": 0.2912, "p90 ms": 0.4013, "conditions": "CPU · x86_64, 1 thread of 2 cores · measured while "
                                                               "1 run was training"}
    assert components.latency_spread(row) == "p10–p90 0.291–0.401 ms"
    assert components.latency_note(row) == ("p10–p90 0.291–0.401 ms · CPU · x86_64, 1 thread of 2 cores · "
                                            "measured while 1 run was training")
    rough = dict(row, **{"p90 ms": 0.7})  # the slowest tenth over twice the fastest: the note says it is rough
    assert components.wide_spread(rough) and not components.wide_spread(row)
    assert components.latency_note(rough).endswith("something else used the processor while it was measured, so "
                                                   "the figure is rough")


@pytest.mark.parametrize("cores", [2, 4, 16])
def test_beside_a_cpu_worker_the_server_takes_only_the_cores_left(cores: int, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's worker on a CPU-only machine and the server's inference threads while it trains: one per core."""
    from explorer import workers

    monkeypatch.setattr(workers.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(workers.torch.cuda, "device_count", lambda: 0)
    supervisor = workers.Supervisor(tmp_path, count=1)
    try:
        server = devices.inference_threads(supervisor.threads_per_run, cores)
    finally:
        supervisor.close()
    assert server >= 1 and supervisor.threads_per_run + server == cores
