"""End to end (issue 19, defects 5 and 9): a real server restarted over a queue trains it without anyone opening a
run's page, and a run its server's shutdown stopped says so."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from core import runs, training
from tests.browser import open_page, serve
from tests.conftest import FAST, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_queue_left_by_a_stopped_server_trains_when_the_next_one_starts(page: object, tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    waiting = store.create_run(training.TrainConfig(epochs=500, **FAST))  # queued while no server runs
    with serve(state_dir=tmp_path, env={"CNN_EXPLORER_WORKERS": "1", "OMP_NUM_THREADS": "1"}) as app:
        open_page(page, app.url)  # Home: it touches no run
        wait_until(lambda: store.metrics(waiting, "step"), 240, f"run {waiting} to train; log:\n{app.log_tail()}")
        os.kill(app.pid, signal.SIGTERM)  # the server shuts down (its workers stop their runs, checkpoints kept)
        assert store.wait(waiting, timeout=120) == "stopped"
        message = store.run(waiting).message
        assert "app server" in message and "by the user" not in message, message
        assert "last" in store.checkpoints(waiting)
