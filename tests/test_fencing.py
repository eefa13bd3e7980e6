"""Fenced claims and patient writes (core.claims): a paused trainer whose run was resumed elsewhere writes nothing
more, and a database locked by another process for a while does not end a run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from core import checkpoints, claims, runs, training, worker
from tests.conftest import FAST, tiny, wait_until

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_TIMEOUT = 3.0  # short in tests; the app's default is 30 s

# Another process that holds the run database's write lock until its standard input closes.
HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@contextmanager
def exclusive_lock(database: Path) -> Iterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` on ``database`` until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)


def _second_claim(store: runs.RunStore, run_id: str) -> tuple[int, int]:
    """Claim ``run_id`` by "first", let its heartbeat go stale, resume it, claim it by "second": both tokens."""
    first = store.claim("first", run_id)
    assert first is not None
    store.update_run(run_id, heartbeat=0.0)  # the first trainer went quiet: the run reads as interrupted
    store.resume(run_id)
    second = store.claim("second", run_id)
    assert second is not None
    return first.generation, second.generation


# Fencing -------------------------------------------------------------------------------------------------------------


def test_the_older_of_two_claims_can_write_nothing(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=1, **FAST))
    old, new = _second_claim(store, run_id)
    assert new > old
    refused = {
        "heartbeat": lambda: store.heartbeat(run_id, token=old),
        "update": lambda: store.update_run(run_id, token=old, status="completed", message="the old trainer"),
        "log": lambda: store.log(run_id, "step", 1, 20, 1.0, {"train_loss": 1.0}, token=old),
        "forget": lambda: store.forget_metrics_after(run_id, -1, token=old),
        "stop flag": lambda: store.stop_requested(run_id, token=old),
        "checkpoint": lambda: store.check_claim(run_id, old),
    }
    store.log(run_id, "step", 1, 10, 1.0, {"train_loss": 2.0}, token=new)
    for name, write in refused.items():
        with pytest.raises(claims.StaleClaimError, match="claimed again"):
            write()
            pytest.fail(f"the old claim's {name} was accepted")
    run = store.run(run_id)
    assert run.status == "running" and run.worker == "second" and run.message is None
    assert [row["step"] for row in store.metrics(run_id, "step")] == [10]  # the new claim's row, and only it
    store.update_run(run_id, token=new, status="completed")  # the claim that holds the run writes as before
    store.heartbeat(run_id, token=new)
    assert store.run(run_id).status == "completed"


def test_the_older_claim_writes_no_checkpoint_and_its_trainer_stops_at_once(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=2, **FAST))
    old, new = _second_claim(store, run_id)
    folder = store.checkpoint_dir(run_id)
    with pytest.raises(claims.StaleClaimError):  # the first checkpoint write, at the end of epoch 1, is refused
        training.fit(training.TrainConfig(epochs=2, **FAST), tiny(), [], run_id=run_id, checkpoint_dir=folder,
                     fence=claims.Claim(store, run_id, old).check)
    assert not any(folder.glob("*.json")) and not any(folder.glob("*.safetensors"))
    with pytest.raises(claims.StaleClaimError):  # the stop flag of the old claim ends its trainer at once
        training.fit(training.TrainConfig(epochs=2, **FAST), tiny(), [],
                     stop=runs.StopFlag(store, run_id, every=0.0, token=old))
    with pytest.raises(claims.StaleClaimError):  # and so does the store callback's first write
        training.fit(training.TrainConfig(epochs=2, **FAST), tiny(), [runs.StoreCallback(store, run_id, old)])
    assert store.metrics(run_id, "step") == [] and store.run(run_id).progress is None
    result = training.fit(training.TrainConfig(epochs=2, **FAST), tiny(), [runs.StoreCallback(store, run_id, new)],
                          run_id=run_id, checkpoint_dir=folder, fence=claims.Claim(store, run_id, new).check)
    assert result.progress.status == "completed" == store.run(run_id).status
    assert checkpoints.read_sidecar(store.checkpoint_path(run_id, "last"))["status"] == "completed"


def test_a_heartbeat_of_a_lost_claim_stops_beating(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    run_id = store.create_run(training.TrainConfig(epochs=1, **FAST))
    old, new = _second_claim(store, run_id)
    store.update_run(run_id, token=new, heartbeat=0.0)
    with runs.Heartbeat(store, run_id, interval=0.02, token=old) as beating:
        wait_until(lambda: not beating._thread.is_alive(), 60, "the refused heartbeat to stop")
    assert store.run(run_id).heartbeat == 0.0


def test_every_claim_raises_the_generation_and_old_stores_gain_it(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db:  # a store of the version before fencing
        db.executescript(runs.SCHEMA)
        for name, kind in runs.COLUMNS.items():
            if name != "generation":
                db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        db.execute("INSERT INTO runs (id, created, updated, status, arch, dataset, config, queued_at) "
                   "VALUES ('old', 1, 1, 'stopped', 'lenet5', 'digits', ?, 1)",
                   (json.dumps({"arch": "lenet5", "dataset": "digits", "epochs": 1}),))
        db.commit()
    store = runs.RunStore(tmp_path)
    assert store.run("old").generation == 0
    assert store.attach("old", "cli") == 1 == store.run("old").generation  # core.train --resume
    store.update_run("old", status="stopped")
    store.resume("old")  # queued again: a trainer of the earlier claim can write nothing from here on
    assert store.run("old").generation == 2
    assert store.claim("worker").generation == 3


# A paused worker (real processes) -------------------------------------------------------------------------------------


class CheckpointWatch:
    """Every step the last checkpoint of a run was seen at, in order (read at each poll)."""

    def __init__(self, store: runs.RunStore, run_id: str) -> None:
        self.path = store.checkpoint_path(run_id, "last").with_suffix(".json")
        self.steps: list[int] = []

    def poll(self) -> bool:
        """Look at the last checkpoint's sidecar once; always True (call it inside a wait condition)."""
        try:
            step = json.loads(self.path.read_text())["step"]
        except (OSError, ValueError, KeyError):
            return True
        if not self.steps or self.steps[-1] != step:
            self.steps.append(step)
        return True


def _start_worker(state: Path, name: str, log: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                   "CNN_EXPLORER_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT)}
    with open(log, "wb") as output:
        return subprocess.Popen([sys.executable, "-m", "core.worker", "--state", str(state), "--once", "--device",
                                 "cpu", "--threads", "1", "--name", name], cwd=ROOT, env=environment,
                                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _pause_between_writes(process: subprocess.Popen, database: Path) -> None:
    """SIGSTOP ``process`` at a moment it holds no write lock on ``database`` (paused inside a write, it would
    block every other writer, the resume too: another fault than this test's)."""

    def paused_outside_a_write() -> bool:
        os.kill(process.pid, signal.SIGSTOP)
        try:
            with closing(sqlite3.connect(database, timeout=0.2, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:  # it holds the lock: let it finish that write, and try again
            os.kill(process.pid, signal.SIGCONT)
            return False

    wait_until(paused_outside_a_write, 120, "a moment the worker holds no lock", poll=0.01)


@pytest.mark.slow  # separate Python processes
def test_a_paused_worker_whose_run_was_resumed_elsewhere_stops_without_writing(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    epochs = 40
    run_id = store.create_run(training.TrainConfig(epochs=epochs, **FAST))  # digits: a quarter second an epoch
    watch = CheckpointWatch(store, run_id)
    first = _start_worker(tmp_path, "first", tmp_path / "first.log")
    second: subprocess.Popen | None = None
    try:
        wait_until(lambda: watch.poll() and store.metrics(run_id, "epoch"), 240, "the first worker's first epoch")
        _pause_between_writes(first, store.db_path)  # paused: no heartbeats, no writes, no exit
        wait_until(lambda: watch.poll() and store.run(run_id).status == "interrupted", HEARTBEAT_TIMEOUT + 60,
                   "the paused worker's run to read as interrupted")
        furthest = store.metrics(run_id, "step")[-1]["step"]  # logged by the paused worker
        store.resume(run_id)
        second = _start_worker(tmp_path, "second", tmp_path / "second.log")
        wait_until(lambda: watch.poll() and store.metrics(run_id, "step")[-1]["step"] > furthest, 240,
                   "the second worker to train the resumed run past where the first one was paused")
        os.kill(first.pid, signal.SIGCONT)  # the first wakes up, still believing it owns the run
        wait_until(lambda: watch.poll() and first.poll() is not None, 120, "the first worker to stop")
        wait_until(lambda: watch.poll() and store.run(run_id).status == "completed", 300,
                   "the second worker to complete the run")
        assert second.wait(120) == 0 and first.returncode == 0
        watch.poll()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
                process.wait(60)
    run = store.run(run_id)
    assert run.worker == "second" and run.status == "completed"
    steps = [row["step"] for row in store.metrics(run_id, "step")]
    assert steps == sorted(set(steps)), "two trainers logged the same steps"
    assert steps[-1] == run.progress["total_steps"]
    assert [row["epoch"] for row in store.metrics(run_id, "epoch")] == list(range(1, epochs + 1))
    assert watch.steps == sorted(watch.steps), f"the last checkpoint went back: {watch.steps}"
    assert watch.steps[-1] == steps[-1]
    assert checkpoints.read_sidecar(store.checkpoint_path(run_id, "last"))["status"] == "completed"
    log = (tmp_path / "first.log").read_text()
    assert "stops run" in log and "claimed again" in log and "Traceback" not in log


# A database locked by another process ---------------------------------------------------------------------------------


def test_a_run_waits_out_a_database_locked_by_another_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=3, **FAST))
    run = store.claim("test-worker", run_id)
    # Each attempt waits 0.5 s for the lock instead of 30: a lock of a few seconds outlasts several attempts, as
    # a lock of a few minutes outlasts them in the app.
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *args, **kwargs: connect(*args, **{**kwargs, "timeout": 0.5}))
    trainer = worker.Worker(store, load_data=lambda name: tiny())
    thread = threading.Thread(target=trainer.train, args=(run,))
    with exclusive_lock(store.db_path):
        locked = time.monotonic()
        thread.start()
        wait_until(lambda: "is locked while writing" in caplog.text or not thread.is_alive(), 120,
                   "the run to find the database locked")
        wait_until(lambda: time.monotonic() - locked > 3.0 or not thread.is_alive(), 60,
                   "the lock to outlast several attempts")
    thread.join(240)
    assert not thread.is_alive()
    run = store.run(run_id)
    assert run.status == "completed", run.message
    steps = [row["step"] for row in store.metrics(run_id, "step")]
    assert steps == sorted(set(steps)) and steps[-1] == run.progress["total_steps"]
    assert [row["epoch"] for row in store.metrics(run_id, "epoch")] == [1, 2, 3]


def test_a_write_gives_up_after_the_bound_and_says_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CNN_EXPLORER_BUSY_TIMEOUT", "0.5")
    store = runs.RunStore(tmp_path)
    assert store.busy_timeout == 0.5 and store.lock_wait == 0.5
    run_id = store.create_run(training.TrainConfig(epochs=1, **FAST))
    run = store.claim("test-worker", run_id)
    claim = claims.Claim(store, run_id, run.generation)
    with exclusive_lock(store.db_path):
        with pytest.raises(claims.StoreBusyError, match=r"more than 0\.5 s, the bound set by \$CNN_EXPLORER_BUSY"):
            claim.log("step", 1, 1, 0.0, {"train_loss": 1.0})
        worker.Worker(store, load_data=lambda name: tiny()).train(run)  # the worker goes on, and logs why
    assert "StoreBusyError: The run database stayed locked by another process for more than 0.5 s, the bound set by " \
           "$CNN_EXPLORER_BUSY_TIMEOUT" in caplog.text
    assert store.metrics(run_id, "step") == []


def test_the_busy_bound_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for text, expected in (("45", 45.0), ("soon", 120.0), ("-1", 120.0)):
        monkeypatch.setenv("CNN_EXPLORER_BUSY_TIMEOUT", text)
        assert runs.default_busy_timeout() == expected
    monkeypatch.delenv("CNN_EXPLORER_BUSY_TIMEOUT")
    assert runs.RunStore(busy_timeout=5).lock_wait == 5 and runs.RunStore().lock_wait == 30


def test_the_ray_store_service_refuses_checkpoint_files_of_a_lost_claim(tmp_path: Path) -> None:
    from core import executors

    service = executors.StoreService(str(tmp_path), HEARTBEAT_TIMEOUT)
    run_id = service.store.create_run(training.TrainConfig(epochs=1, **FAST))
    old, new = _second_claim(service.store, run_id)
    with pytest.raises(claims.StaleClaimError):
        service.put_files(run_id, {"last.json": b"{}", "last.safetensors": b"old weights"}, old)
    assert service.files(run_id) == {}
    service.put_files(run_id, {"last.json": b"{}", "last.safetensors": b"new weights"}, new)
    assert service.files(run_id)["last.safetensors"] == b"new weights"
    with pytest.raises(claims.StaleClaimError):  # what a remote trainer's proxy asks goes with its token too
        service.call("heartbeat", (run_id,), {"token": old})


def test_patient_writes_pause_longer_each_time() -> None:
    pauses: list[float] = []
    attempts = iter([claims.StoreBusyError("locked"), claims.StoreBusyError("locked"), None, None])

    def write() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "written"

    assert claims.patiently(write, 60, "a test row", sleep=pauses.append) == "written"
    assert pauses == [claims.FIRST_PAUSE, 2 * claims.FIRST_PAUSE]
