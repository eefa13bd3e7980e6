"""Run store, checkpoints, job manager and command line."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from core import checkpoints, jobs, runs, training
from core import train as cli
from tests.conftest import FAST, tiny

ROOT = Path(__file__).resolve().parents[1]


def _write_metrics(root: str, run_id: str, writer: int, count: int) -> None:
    store = runs.RunStore(Path(root))
    for i in range(count):
        store.log(run_id, "step", 1, writer * 10_000 + i, 0.0, {"train_loss": float(i)})


def test_two_writers_at_once(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig())
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_metrics, args=(str(tmp_path), run_id, w, 150)) for w in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [w.exitcode for w in writers] == [0, 0]
    assert len(store.metrics(run_id, "step")) == 300
    assert store._execute("PRAGMA journal_mode")[0][0] == "wal"


def test_runs_round_trip(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(arch="resnet18", epochs=3))
    store.update_run(run_id, status="completed", test={"accuracy": 0.5})
    run = store.run(run_id)
    assert run["config"]["arch"] == "resnet18" and run["test"] == {"accuracy": 0.5}
    assert run["versions"]["torch"] == torch.__version__
    assert store.runs()[0]["id"] == run_id
    with pytest.raises(runs.RunNotFoundError):
        store.run("nope")
    other = store.create_run(training.TrainConfig(), status="running")
    assert store.mark_interrupted() == 1 and store.run(other)["status"] == "failed"


def _manager(tmp_path: Path, load=None) -> jobs.JobManager:
    return jobs.JobManager(runs.RunStore(tmp_path), load_data=load or (lambda name: tiny()))


def test_jobs_queue_and_run_one_at_a_time(tmp_path: Path) -> None:
    gate = threading.Event()

    def slow_load(name: str):
        gate.wait(30)
        return tiny()

    manager = _manager(tmp_path, slow_load)
    first = manager.submit(training.TrainConfig(epochs=2, **FAST))  # e.g. one browser session
    second = manager.submit(training.TrainConfig(epochs=2, **FAST))  # another session, while the device is busy
    assert manager.position(second) == 1
    assert set(manager.active()) == {first, second}
    gate.set()
    assert manager.wait(first) == "completed" and manager.wait(second) == "completed"
    store = manager.store
    assert store.run(first)["test"]["accuracy"] > 0.5
    assert len(store.metrics(first, "epoch")) == 2
    assert store.checkpoint_path(first, "best").exists() and store.checkpoint_path(first, "last").exists()
    checkpoints.load(store.checkpoint_path(first, "best"), expected_arch="lenet5")


def test_jobs_stop_and_cancel(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    running = manager.submit(training.TrainConfig(epochs=500, **FAST))
    queued = manager.submit(training.TrainConfig(epochs=2, **FAST))
    manager.stop(queued)
    while (manager.snapshot(running).epoch or 0) < 2:
        pass
    manager.stop(running)
    assert manager.wait(running) == "stopped"
    assert manager.wait(queued) == "stopped"
    assert manager.store.run(running)["status"] == "stopped"
    assert "Cancelled" in manager.store.run(queued)["message"]


def test_a_crashed_job_fails_its_run_and_the_worker_goes_on(tmp_path: Path) -> None:
    calls = []

    def flaky_load(name: str):
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("worker exploded")
        return tiny()

    manager = _manager(tmp_path, flaky_load)
    crashed = manager.submit(training.TrainConfig(epochs=1, **FAST))
    fine = manager.submit(training.TrainConfig(epochs=1, **FAST))
    assert manager.wait(crashed) == "failed" and "worker exploded" in manager.store.run(crashed)["message"]
    assert manager.wait(fine) == "completed"


def test_command_line_trains_into_the_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["--arch", "lenet5", "--dataset", "digits", "--epochs", "1", "--optimizer", "adam",
                     "--lr", "0.003", "--state-dir", str(tmp_path)])
    assert code == 0
    (run,) = runs.RunStore(tmp_path).runs()
    assert run["status"] == "completed" and run["test"]["accuracy"] > 0.1
    assert "test accuracy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--arch", "googlenet"])
    with pytest.raises(SystemExit):
        cli.main(["--epochs", "0", "--state-dir", str(tmp_path)])


def test_distributed_data_parallel_with_two_processes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "core.train", "--arch", "lenet5", "--dataset", "digits", "--epochs", "2", "--optimizer", "adam",
               "--lr", "0.003", "--batch-size", "32", "--state-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs.RunStore(tmp_path).runs()  # only rank 0 writes
    assert run["status"] == "completed" and len(runs.RunStore(tmp_path).metrics(run["id"], "epoch")) == 2
