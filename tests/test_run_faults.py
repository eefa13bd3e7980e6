"""Runs under faults (issue 19, defects 5 and 9): the queue is served from the server's start, and what a run
says after its server or worker went away is true."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import runs, training, worker
from explorer import workers
from tests.apptest import open_page
from tests.conftest import FAST, tiny, wait_until


@pytest.fixture
def keeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[workers.Supervisor]:
    """The app's services on a fresh store and supervisor in ``tmp_path`` (as a server that has just started);
    every run is stopped and every worker ended after the test."""
    from explorer import services

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store = runs.RunStore(tmp_path)
    supervisor = workers.Supervisor(tmp_path, count=1, check_every=0.5)
    monkeypatch.setattr(services, "run_store", lambda: store)
    monkeypatch.setattr(services, "supervisor", lambda: supervisor)
    services._queue_served_at_start.clear()  # a new server process: nothing served yet
    try:
        yield supervisor
    finally:
        for run in store.runs():
            if run.status in runs.ACTIVE:
                store.request_stop(run.id)
        supervisor.close()
        services._queue_served_at_start.clear()


@pytest.mark.slow  # a worker process
def test_runs_queued_before_a_restart_train_when_the_server_starts(tmp_path: Path,
                                                                   keeper: workers.Supervisor) -> None:
    """Queued, then the server restarts; the first page anyone opens is Home, which touches no run. The run
    used to wait until someone opened its own page."""
    store = runs.RunStore(tmp_path)
    waiting = store.create_run(training.TrainConfig(epochs=500, **FAST))
    assert keeper.alive() == 0
    open_page()  # the Home page, through the real entry script
    wait_until(lambda: store.run(waiting).status != "queued", 240, f"run {waiting} to leave the queue")
    assert store.run(waiting).status == "running" and keeper.alive() == 1
    store.request_stop(waiting)
    assert store.wait(waiting, timeout=120) == "stopped"


def test_an_empty_queue_starts_no_worker(tmp_path: Path, keeper: workers.Supervisor) -> None:
    open_page()
    assert keeper.alive() == 0


def test_a_run_whose_worker_was_lost_never_reads_a_silence_of_decades(tmp_path: Path) -> None:
    """A reaped Ray run is written with heartbeat 0 ("stale now"); it read "has not … for 1796401918 s"."""
    store = runs.RunStore(tmp_path)
    lost = store.create_run(training.TrainConfig(), status="running", worker="ray-task")
    store.update_run(lost, heartbeat=0.0)
    message = store.run(lost).message
    assert store.run(lost).status == "interrupted"
    assert "was lost" in message, message
    assert not any(word.isdigit() and int(word) > 10**6 for word in message.split()), message
    silent = store.create_run(training.TrainConfig(), status="running", worker="w")
    store.update_run(silent, heartbeat=None)
    assert "never sent a sign of life" in store.run(silent).message
    quiet = store.create_run(training.TrainConfig(), status="running", worker="w")
    store.update_run(quiet, heartbeat=time.time() - 3600)
    assert "for 3600 s" in store.run(quiet).message or "for 3601 s" in store.run(quiet).message


@pytest.mark.parametrize("how", ["server gone", "told to exit"])
def test_a_run_stopped_by_its_worker_does_not_say_the_user_stopped_it(tmp_path: Path, how: str) -> None:
    """A worker whose server died (its parent is no longer the process it was started by) or that was sent SIGTERM
    stops its run with a checkpoint; the run used to read "Stopped by the user"."""
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=500, **FAST))
    if how == "server gone":
        trainer = worker.Worker(store, load_data=lambda _: tiny(), parent=os.getppid() + 1_000_000)
    else:
        trainer = worker.Worker(store, load_data=lambda _: tiny())
        threading.Thread(target=lambda: (wait_until(lambda: store.metrics(run_id, "step"), 120, "a batch"),
                                         trainer.request_exit()), daemon=True).start()
    assert trainer.take_one()
    run = store.run(run_id)
    assert run.status == "stopped" and "by the user" not in run.message, run.message
    expected = worker.SERVER_GONE if how == "server gone" else worker.SIGNALLED
    assert expected in run.message


def test_a_run_the_user_stopped_still_says_so(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=500, **FAST))
    trainer = worker.Worker(store, load_data=lambda _: tiny())
    threading.Thread(target=lambda: (wait_until(lambda: store.metrics(run_id, "step"), 120, "a batch"),
                                     store.request_stop(run_id)), daemon=True).start()
    assert trainer.take_one()
    assert store.run(run_id).message.startswith("Stopped by the user.")


class _Rerun(Exception):  # noqa: N818 (a signal, as st.rerun's own)
    """What the patched ``st.rerun`` raises: the page asked to be drawn again."""


def test_a_page_that_read_interrupted_comes_back_when_the_heartbeats_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat gap (a paused machine, a long GC) made the page read Interrupted; it stayed so after the trainer
    went on. AppTest runs no fragment by itself: the polled fragments the page registers are kept and called here."""
    import streamlit as st

    from explorer import services

    polled: list = []

    def fragment(function=None, *, run_every=None, **_: object):  # noqa: ANN001, ANN202 (st.fragment's signature)
        def keep(body):  # noqa: ANN001, ANN202
            if run_every:
                polled.append(body)
            return body  # drawn inline, once, like the page's first run of it

        return keep(function) if function is not None else keep

    monkeypatch.setattr(st, "fragment", fragment)
    store = services.run_store()
    run_id = store.create_run(training.TrainConfig(), status="running", worker="paused-worker")
    store.update_run(run_id, heartbeat=time.time() - 10 * store.heartbeat_timeout)
    try:
        at = open_page("training", run=run_id)
        assert any("sign of life" in w.value for w in at.warning), [w.value for w in at.warning]
        assert polled, "the Interrupted page polls nothing: it can never come back"
        store.heartbeat(run_id)  # the trainer goes on
        assert store.run(run_id).status == "running"

        def rerun(*_: object, **__: object) -> None:
            raise _Rerun

        monkeypatch.setattr(st, "rerun", rerun)
        with pytest.raises(_Rerun):
            for body in polled:
                body()
    finally:
        store.update_run(run_id, status="stopped")
