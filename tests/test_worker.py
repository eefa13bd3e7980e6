"""Training workers: runs train outside the web server, survive crashes of each other, stop on request."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core import activity, runs, training, worker
from explorer import workers
from tests.conftest import FAST, tiny, wait_until

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_TIMEOUT = 3.0  # short in tests; the app's default is 30 s


@pytest.fixture
def fast_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started by the test (they inherit the environment) and stores read with a short timeout."""
    monkeypatch.setenv("CNN_EXPLORER_HEARTBEAT_TIMEOUT", str(HEARTBEAT_TIMEOUT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def supervisor(tmp_path: Path, fast_heartbeats: None) -> Iterator[workers.Supervisor]:
    """One app-style worker process on ``tmp_path``, replaced when it dies; stopped after the test."""
    keeper = workers.Supervisor(tmp_path, count=1, check_every=0.5)
    try:
        yield keeper
    finally:
        keeper.close()
        assert keeper.alive() == 0


@pytest.mark.slow  # separate Python processes
def test_a_killed_worker_leaves_its_run_interrupted_and_the_next_run_completes(
        tmp_path: Path, supervisor: workers.Supervisor) -> None:
    store = runs.RunStore(tmp_path)
    doomed = store.create_run(training.TrainConfig(epochs=500, **FAST))
    following = store.create_run(training.TrainConfig(epochs=1, **FAST))
    supervisor.ensure()
    wait_until(lambda: store.metrics(doomed, "step"), 240, "the worker to start training")
    (pid,) = supervisor.pids()
    os.kill(pid, signal.SIGKILL)  # no handler, no goodbye: only the missing heartbeats tell
    wait_until(lambda: store.run(doomed).status == "interrupted", HEARTBEAT_TIMEOUT + 60,
               f"run {doomed} to read as interrupted")
    assert "sign of life" in store.run(doomed).message
    assert store.wait(following, timeout=300) == "completed"  # the replacement worker took the queue on
    assert supervisor.started == 2 and store.run(following).worker != store.run(doomed).worker
    assert store.run(doomed).status == "interrupted"  # nobody marked it anything else


def test_a_queued_run_is_cancelled_at_once_and_a_running_one_stops_with_a_checkpoint(
        tmp_path: Path, supervisor: workers.Supervisor) -> None:
    store = runs.RunStore(tmp_path)
    running = store.create_run(training.TrainConfig(epochs=500, **FAST))
    queued = store.create_run(training.TrainConfig(epochs=1, **FAST))
    supervisor.ensure()
    wait_until(lambda: store.run(running).status == "running", 240, f"run {running} to be running")
    assert store.request_stop(queued) == "cancelled"
    assert store.run(queued).status == "stopped"  # at once, while the other run still trains
    assert store.run(running).status == "running"
    wait_until(lambda: store.metrics(running, "epoch"), 240, f"run {running} to finish an epoch")
    assert store.request_stop(running) == "stopping"
    assert store.wait(running, timeout=120) == "stopped"
    assert "last" in store.checkpoints(running)
    assert store.run(queued).worker is None  # it never reached a worker


def test_a_failing_store_write_in_the_error_path_does_not_end_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    store = runs.RunStore(tmp_path, heartbeat_timeout=1.0)
    broken = store.create_run(training.TrainConfig(epochs=1, **FAST))
    fine = store.create_run(training.TrainConfig(epochs=1, **FAST))
    loads = []

    def load(name: str):
        loads.append(name)
        if len(loads) == 1:
            raise RuntimeError("the data vanished")
        return tiny()

    original = store.update_run

    def update_run(run_id: str, **fields):
        if fields.get("status") == "failed":
            raise OSError(28, "No space left on device")  # the disk is full while recording the failure
        original(run_id, **fields)

    monkeypatch.setattr(store, "update_run", update_run)
    trainer = worker.Worker(store, load_data=load)
    assert trainer.take_one() and trainer.take_one()  # the worker goes on with the next run
    assert store.run(fine).status == "completed"
    assert "could not record that run" in caplog.text and "No space left" in caplog.text
    wait_until(lambda: store.run(broken).status == "interrupted", 30,
               f"run {broken} to read as interrupted")  # honest, not "running"
    assert not trainer.take_one()


def test_an_unreadable_store_does_not_end_the_worker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = runs.RunStore(tmp_path)
    store.check()
    store.db_path.write_bytes(b"not a database" * 500)
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    trainer = worker.Worker(runs.RunStore(tmp_path))
    assert not trainer.take_one()
    assert "cannot claim a run" in caplog.text and "runs.sqlite" in caplog.text


def test_a_resumed_run_continues_its_numbering_from_the_last_checkpoint(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=40, **FAST))
    trainer = worker.Worker(store, load_data=lambda name: tiny())
    thread = threading.Thread(target=trainer.take_one)
    thread.start()
    try:
        wait_until(lambda: store.metrics(run_id, "epoch"), 240, f"run {run_id} to finish an epoch")
        store.request_stop(run_id)
    finally:
        thread.join(300)
    assert store.run(run_id).status == "stopped"
    first = store.metrics(run_id, "epoch")
    assert len(first) < 40, "the run ended before the stop request was read"
    store.resume(run_id)
    assert trainer.take_one() and store.run(run_id).status == "completed"
    epochs = store.metrics(run_id, "epoch")
    assert [e["epoch"] for e in epochs] == list(range(1, 41))  # the curves go on where they stopped
    assert epochs[: len(first)] == first and epochs[-1]["step"] > first[-1]["step"]


@pytest.mark.slow  # separate Python processes
def test_worker_command_line_trains_one_queued_run(tmp_path: Path) -> None:
    import subprocess

    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=1, **FAST))
    result = subprocess.run([sys.executable, "-m", "core.worker", "--state", str(tmp_path), "--once",
                             "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert store.run(run_id).status == "completed" and "streamlit" not in result.stderr
    assert store.run(run_id).device.lower().startswith("cpu")


def test_the_worker_count_setting() -> None:
    assert workers.configured_count("3") == 3
    assert workers.configured_count("zero") == workers.default_count() == workers.configured_count(None)
    os.environ[workers.WORKERS_ENV] = "2"
    try:
        assert workers.configured_count("3") == 2  # the environment wins over the secret
    finally:
        del os.environ[workers.WORKERS_ENV]


def test_cpu_workers_share_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 4)
    monkeypatch.delenv(activity.SHARE_ENV, raising=False)

    def threads(count: int) -> tuple[int | None, int | None]:
        supervisor = workers.Supervisor(tmp_path, count=count)
        return supervisor.threads, supervisor.max_threads

    assert threads(1) == (3, 4)  # one core stays with the web server while it serves pages; all four otherwise
    assert threads(2) == (1, 2)
    assert threads(8) == (1, 1)
    monkeypatch.setenv(activity.SHARE_ENV, "0")  # the policy before issue 23: the shared count, always
    assert threads(1) == (3, 3)
    monkeypatch.setattr(workers.torch.cuda, "device_count", lambda: 1)
    assert threads(1) == (None, None)  # a GPU worker: PyTorch's own choice


def test_the_worker_takes_its_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.Worker, "serve", lambda self, once=False, poll=0.5: None)
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)  # keep pytest's own handlers
    before = torch.get_num_threads()
    try:
        assert worker.main(["--state", str(tmp_path), "--threads", "1", "--once"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_worker_takes_a_maximum_and_a_shared_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[worker.Worker] = []
    monkeypatch.setattr(worker.Worker, "serve", lambda self, once=False, poll=0.5: served.append(self))
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)  # keep pytest's own handlers
    before = torch.get_num_threads()
    try:
        assert worker.main(["--state", str(tmp_path), "--threads", "2", "--shared-threads", "1", "--once"]) == 0
        assert torch.get_num_threads() == 1  # shared until a run finds no page served
        assert worker.main(["--state", str(tmp_path), "--threads", "2", "--once"]) == 0
    finally:
        torch.set_num_threads(before)
    assert served[0].threads == (2, 1) and served[1].threads is None  # by hand: the count given, always
