"""Run store: runs, the queue, liveness, checkpoints, rebuild and its command line (python -m core.runs)."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import torch

from core import runs, training
from core import train as cli
from tests.conftest import FAST, at_once, finished_run, wait_until

ROOT = Path(__file__).resolve().parents[1]


def _write_metrics(root: str, run_id: str, writer: int, count: int) -> None:
    store = runs.RunStore(Path(root))
    for i in range(count):
        store.log(run_id, "step", 1, writer * 10_000 + i, 0.0, {"train_loss": float(i)})


@pytest.mark.slow  # separate Python processes
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


@pytest.mark.parametrize("old_schema", [False, True], ids=["new store", "store of an older version"])
def test_openers_of_a_store_at_once_all_succeed(tmp_path: Path, old_schema: bool) -> None:
    """Creating or upgrading the schema is one transaction: of several openers at once (the app, a worker, a
    command-line run), none adds a column another has just added ("duplicate column name")."""
    if old_schema:  # the first version's tables, without the columns added since
        with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db:
            db.executescript(runs.SCHEMA)
    failures = [r for r in at_once(lambda: runs.RunStore(tmp_path).runs(), 8) if isinstance(r, Exception)]
    assert not failures, failures
    columns = {row["name"] for row in runs.RunStore(tmp_path)._execute("PRAGMA table_info(runs)")}
    assert set(runs.COLUMNS) <= columns


def test_runs_round_trip(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(training.TrainConfig(arch="resnet18", epochs=3))
    store.update_run(run_id, status="completed", test={"accuracy": 0.5})
    run = store.run(run_id)
    assert run.config["arch"] == "resnet18" and run.test == {"accuracy": 0.5}
    assert run.versions["torch"] == torch.__version__
    assert store.runs()[0].id == run_id
    with pytest.raises(runs.RunNotFoundError):
        store.run("nope")
    assert not hasattr(store, "mark_interrupted")  # nothing is marked failed because some process started


def _queue(store: runs.RunStore, count: int, **config) -> list[str]:
    return [store.create_run(training.TrainConfig(**{"epochs": 1, **FAST, **config})) for _ in range(count)]


def test_a_queued_run_is_cancelled_at_once_and_a_running_one_asked_to_stop(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    first, second, third = _queue(store, 3)
    assert [store.position(r) for r in (first, second, third)] == [1, 2, 3]
    assert store.request_stop(second) == "cancelled"
    assert store.run(second).status == "stopped" and "Cancelled" in store.run(second).message
    assert store.position(third) == 2 and store.position(second) is None
    assert store.claim("w").id == first  # oldest first; the cancelled one is never claimed
    assert store.request_stop(first) == "stopping" and store.stop_requested(first)
    assert store.claim("w").id == third and store.claim("w") is None


def _claim_all(root: str, name: str, out: str) -> None:
    store = runs.RunStore(Path(root))
    taken = []
    while (run := store.claim(name)) is not None:
        taken.append(run.id)
    Path(out).write_text(json.dumps(taken))


def test_two_workers_never_claim_the_same_run(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    queued = set(_queue(store, 40))
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"claimed-{i}.json" for i in range(2)]
    claimers = [context.Process(target=_claim_all, args=(str(tmp_path), f"w{i}", str(out)))
                for i, out in enumerate(outs)]
    for claimer in claimers:
        claimer.start()
    for claimer in claimers:
        claimer.join(120)
    assert [c.exitcode for c in claimers] == [0, 0]
    first, second = (json.loads(out.read_text()) for out in outs)
    assert not set(first) & set(second) and set(first) | set(second) == queued
    assert len(first) + len(second) == len(queued)
    assert {store.run(r).worker for r in first} <= {"w0"} and {store.run(r).worker for r in second} <= {"w1"}


def test_a_running_run_without_heartbeats_reads_as_interrupted(tmp_path: Path) -> None:
    # A timeout 60 beats long: a busy machine can hold a beating thread back for a moment (0.3 s was seen to lapse
    # beside four test processes), never for three seconds.
    store = runs.RunStore(tmp_path, heartbeat_timeout=3.0)
    (run_id,) = _queue(store, 1)
    assert store.claim("gone").status == "running"
    with runs.Heartbeat(store, run_id, interval=0.05):
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # alive while it beats, whenever anyone looks
            assert store.run(run_id).status == "running"
            time.sleep(0.05)
    wait_until(lambda: store.run(run_id).status == "interrupted", 30, f"run {run_id} to read as interrupted")
    interrupted = store.run(run_id)
    assert "gone" in interrupted.message and store.runs()[0].status == "interrupted"
    assert runs.RunStore(tmp_path, heartbeat_timeout=3600).run(run_id).status == "running"  # read-time rule
    store.resume(run_id)
    assert store.run(run_id).status == "queued" and store.run(run_id).resume
    with pytest.raises(runs.RunStateError):
        store.resume(run_id)


def test_delete_removes_the_run_its_metrics_and_its_files(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = finished_run(store, epochs=1)
    assert set(store.checkpoints(run_id)) == {"best", "last"} and store.metrics(run_id)
    running = store.create_run(training.TrainConfig(), status="running")
    with pytest.raises(runs.RunStateError, match="stop it first"):
        store.delete(running)
    store.delete(run_id)
    with pytest.raises(runs.RunNotFoundError):
        store.run(run_id)
    assert not store.metrics(run_id) and not (tmp_path / "checkpoints" / run_id).exists()


@pytest.mark.parametrize("damage", ["garbage", "empty", "missing"])
def test_an_unreadable_database_is_a_clear_error_and_rebuilds_from_the_sidecars(tmp_path: Path, damage: str) -> None:
    store = runs.RunStore(tmp_path)
    finished = [finished_run(store, epochs=2), finished_run(store, epochs=1)]
    figures = {r: (store.run(r).best_val_acc, store.run(r).config) for r in finished}
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    if damage == "garbage":
        store.db_path.write_bytes(b"these bytes are not an SQLite database" * 200)
    elif damage == "empty":
        store.db_path.write_bytes(b"")
    else:
        store.db_path.unlink()
    reopened = runs.RunStore(tmp_path)
    with pytest.raises(runs.StoreUnreadableError) as error:
        reopened.runs()
    message = str(error.value)
    assert "runs.sqlite" in message and "rebuild" in message.lower() and "2 run folders" in message
    assert "Traceback" not in message
    assert store.rebuild() == 2
    rebuilt = {r.id: r for r in runs.RunStore(tmp_path).runs()}
    assert set(rebuilt) == set(finished)
    for run_id in finished:
        assert rebuilt[run_id].best_val_acc == pytest.approx(figures[run_id][0])
        assert rebuilt[run_id].config == figures[run_id][1] and rebuilt[run_id].status == "completed"
        assert store.metrics(run_id)  # the epochs the sidecars record
    if damage == "garbage":
        assert list(tmp_path.glob("runs.sqlite.broken-*"))  # the damaged file is kept, not overwritten
    assert store.rebuild() == 0  # a readable store only gains what it lacks


def test_command_line_lists_shows_resumes_and_deletes_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = runs.RunStore(tmp_path)
    done = finished_run(store, epochs=1)
    (queued,) = _queue(store, 1)
    assert runs.main(["--state", str(tmp_path), "list", "--json"]) == 0
    listed = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[done]["status"] == "completed" and listed[done]["architecture"] == "lenet5"
    assert listed[done]["data"] == "digits" and listed[done]["epochs"] == 1
    assert listed[done]["test_acc"] == store.run(done).test["accuracy"] and listed[done]["best_val_acc"] > 0
    assert listed[queued]["status"] == "queued" and listed[queued]["test_acc"] is None
    assert runs.main(["--state", str(tmp_path), "show", done]) == 0 and "best.safetensors" in capsys.readouterr().out
    assert runs.main(["--state", str(tmp_path), "resume", done]) == 1
    assert "only a stopped, failed or interrupted run" in capsys.readouterr().err
    assert runs.main(["--state", str(tmp_path), "stop", queued]) == 0 and "cancelled" in capsys.readouterr().out
    assert runs.main(["--state", str(tmp_path), "delete", done]) == 0
    assert "deleted" in capsys.readouterr().out
    assert runs.main(["--state", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert done not in out and queued in out
    result = subprocess.run([sys.executable, "-m", "core.runs", "--state", str(tmp_path), "list", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0 and [row["id"] for row in json.loads(result.stdout)] == [queued]


def test_command_line_trains_into_the_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["--arch", "lenet5", "--dataset", "digits", "--epochs", "1", "--optimizer", "adam",
                     "--lr", "0.003", "--state-dir", str(tmp_path)])
    assert code == 0
    (run,) = runs.RunStore(tmp_path).runs()
    assert run.status == "completed" and run.test["accuracy"] > 0.1
    assert "test accuracy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--arch", "no_such_model"])
    with pytest.raises(SystemExit):
        cli.main(["--epochs", "0", "--state-dir", str(tmp_path)])


@pytest.mark.slow  # separate Python processes
def test_distributed_data_parallel_with_two_processes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "core.train", "--arch", "lenet5", "--dataset", "digits", "--epochs", "2", "--optimizer", "adam",
               "--lr", "0.003", "--batch-size", "32", "--state-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs.RunStore(tmp_path).runs()  # only rank 0 writes
    assert run.status == "completed" and len(runs.RunStore(tmp_path).metrics(run.id, "epoch")) == 2
