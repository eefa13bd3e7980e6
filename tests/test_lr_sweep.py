"""The learning-rate range test as a run: a worker sweeps instead of training, its points stream through the run
store, it ends with a suggestion, and a stop request stops it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from core import runs, training, worker
from core.training import lr_finder, lr_sweep
from tests.conftest import FAST, tiny, wait_until


def test_a_worker_sweeps_the_rate_and_streams_its_points(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(lr_find=True, **FAST))
    assert worker.Worker(store, load_data=lambda name: tiny()).take_one()
    run = store.run(run_id)
    assert run.status == "completed", run.message
    points = store.metrics(run_id, lr_sweep.KIND)
    assert 3 <= len(points) <= lr_finder.STEPS
    assert not store.metrics(run_id, "epoch")  # nothing was trained
    assert not store.checkpoints(run_id).get("last")
    rates = [p["lr"] for p in points]
    assert rates == sorted(rates) and rates[0] == lr_finder.START_LR
    suggestion = lr_finder.suggest(rates, lr_finder.smooth([p["loss"] for p in points]))
    assert rates[0] < suggestion.steepest < rates[-1]
    assert "Steepest descent" in run.message


def test_a_stop_request_stops_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(lr_find=True, **FAST))
    trainer = worker.Worker(store, load_data=lambda name: tiny())
    calls = []
    real_loss = lr_sweep.training_loss

    def loss_that_waits_for_the_stop(*args: Any) -> Any:  # the 4th batch waits until the stop is read
        calls.append(1)
        if len(calls) == 4:
            wait_until(lambda: trainer._current is not None and trainer._current.is_set(), 240, "the stop")
        return real_loss(*args)

    monkeypatch.setattr(lr_sweep, "training_loss", loss_that_waits_for_the_stop)
    thread = threading.Thread(target=trainer.take_one)
    thread.start()
    try:
        wait_until(lambda: store.metrics(run_id, lr_sweep.KIND), 240, f"sweep {run_id} to record a point")
        store.request_stop(run_id)
    finally:
        thread.join(300)
    assert store.run(run_id).status == "stopped"
    assert len(store.metrics(run_id, lr_sweep.KIND)) == 4
