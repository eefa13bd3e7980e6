"""A run as the store reads it (core.runs.record): typed fields, decoded JSON, and the interrupted rule."""

from __future__ import annotations

import dataclasses
import json
import pickle
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from core.runs import ACTIVE, COLUMNS, RESUMABLE, SCHEMA, RunRecord, RunStore
from core.training import TrainConfig

STATUSES = ("queued", "running", "completed", "stopped", "failed", "interrupted")


def _raw(store: RunStore, run_id: str) -> dict:
    """The run's row as SQLite holds it."""
    with closing(sqlite3.connect(store.db_path)) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())


def _record(status: str = "completed", **fields: object) -> RunRecord:
    return RunRecord(id="r", created=1.0, updated=2.0, status=status, arch="lenet5", dataset="digits",
                     config={"arch": "lenet5", "dataset": "digits", "epochs": 3}, **fields)


def _row(status: str, **columns: object) -> dict:
    """A row of the runs table as SQLite returns it (JSON as text, flags 0/1) for a run in ``status``."""
    row = {name: json.dumps(value) if isinstance(value, dict) else value
           for name, value in _record(status).as_dict().items()}
    return {**row, **columns}


def test_a_record_has_one_field_per_column_and_round_trips_every_one(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    config = TrainConfig(arch="lenet5", dataset="digits", epochs=2)
    run_id = store.create_run(config, status="running", group="group-1", worker="w", processes=2)
    store.update_run(run_id, device="cpu", message="hello", elapsed=1.5, best_val_acc=0.75,
                     test={"accuracy": 0.5, "loss": 1.0}, progress={"epoch": 1, "step": 3})
    store.request_stop(run_id)
    raw, run = _raw(store, run_id), store.run(run_id)
    assert [field.name for field in dataclasses.fields(RunRecord)] == list(raw)  # the table's columns, in order
    for name, stored in raw.items():
        if name in ("config", "versions", "test", "progress"):
            assert getattr(run, name) == json.loads(stored), name
        elif name in ("stop_requested", "resume"):
            assert getattr(run, name) is bool(stored), name
        else:
            assert getattr(run, name) == stored, name
    assert run.config == dataclasses.asdict(config) and run.train_config() == config
    assert (run.status, run.worker, run.group_id, run.processes, run.generation) == ("running", "w", "group-1", 2, 0)
    assert run.stop_requested is True and run.resume is False and run.test_accuracy == 0.5
    # as_dict is the row as the store held it before records (``python -m core.runs show``): flags 0/1
    assert run.as_dict() == {**raw, **{k: json.loads(raw[k]) for k in ("config", "versions", "test", "progress")}}
    assert store.runs()[0] == run and store.runs(group="group-1") == [run]
    assert pickle.loads(pickle.dumps(run)) == run  # through Ray (core.executors.RemoteStore)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "failed"  # type: ignore[misc]


def test_claim_returns_the_claimed_record(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(arch="lenet5", dataset="digits"))
    queued = store.run(run_id)
    assert queued.status == "queued" and queued.heartbeat is None and queued.is_active
    claimed = store.claim("w")
    assert isinstance(claimed, RunRecord) and claimed.id == run_id
    assert (claimed.status, claimed.worker, claimed.generation) == ("running", "w", 1)
    assert store.claim("w") is None


@pytest.mark.parametrize(("heartbeat", "quiet"), [
    (None, "has never sent a sign of life"),
    (0.0, "was lost: its process ended before the run did"),
    (900.0, "has not sent a sign of life for 100 s"),
])
def test_a_running_run_whose_trainer_went_quiet_reads_as_interrupted(heartbeat: float | None, quiet: str) -> None:
    row = _row("running", heartbeat=heartbeat, worker="worker-host-1", message="kept?")
    run = RunRecord.from_row(row, heartbeat_timeout=60, now=1000.0)
    assert run.status == "interrupted" and run.is_resumable and run.has_ended
    assert run.message == (f"Interrupted: its trainer (worker-host-1) {quiet} (the process was killed, or its machine "
                           "stopped). Resume continues from the last checkpoint.")
    assert run.heartbeat == heartbeat  # only the status and the message are computed
    unknown = RunRecord.from_row({**row, "worker": None}, heartbeat_timeout=60, now=1000.0)
    assert "its trainer (unknown)" in (unknown.message or "")


def test_a_recent_heartbeat_or_an_ended_run_reads_as_stored() -> None:
    row = _row("running", heartbeat=990.0, message=None)
    assert RunRecord.from_row(row, heartbeat_timeout=60, now=1000.0).status == "running"
    for status in ("queued", "completed", "stopped", "failed"):
        run = RunRecord.from_row({**row, "status": status, "heartbeat": None, "message": "m"}, 60, now=1000.0)
        assert (run.status, run.message) == (status, "m")


def test_a_stale_run_in_a_real_store_reads_as_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path, heartbeat_timeout=60)
    run_id = store.create_run(TrainConfig(arch="lenet5", dataset="digits"), status="running", worker="w")
    store.update_run(run_id, heartbeat=time.time() - 3600)
    run = store.run(run_id)
    assert run.status == "interrupted" and "(w) has not sent a sign of life for 360" in (run.message or "")
    assert _raw(store, run_id)["status"] == "running"  # computed on read, never written


@pytest.mark.parametrize("status", STATUSES)
def test_the_properties_follow_the_status(status: str) -> None:
    run = _record(status)
    assert run.is_active == (status in ("queued", "running")) == (status in ACTIVE) != run.has_ended
    assert run.is_resumable == (status in ("stopped", "failed", "interrupted")) == (status in RESUMABLE)


def test_the_figures_and_the_strategy() -> None:
    assert _record().test_accuracy is None and _record(test={"loss": 1.0}).test_accuracy is None
    assert _record(test={"accuracy": 0.25}).test_accuracy == 0.25
    assert _record().strategy is None
    assert dataclasses.replace(_record(), config={"strategy": ""}).strategy is None  # a rebuilt run from scratch
    assert dataclasses.replace(_record(), config={"strategy": "partial"}).strategy == "partial"


def test_an_older_databases_row_decodes_with_the_defaults(tmp_path: Path) -> None:
    # The first schema: none of the columns added since (heartbeat, worker, … generation).
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db:
        db.executescript(SCHEMA)
        db.execute("INSERT INTO runs (id, created, updated, status, arch, dataset, config, test) VALUES "
                   "('old', 1, 2, 'completed', 'lenet5', 'digits', '{\"epochs\": 3}', '{\"accuracy\": 0.9}')")
        db.commit()
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM runs").fetchone())
    assert not set(COLUMNS) & set(row)
    defaults = {"heartbeat": None, "worker": None, "stop_requested": False, "resume": False, "group_id": None,
                "queued_at": None, "progress": None, "processes": 1, "generation": 0}
    decoded = RunRecord.from_row(row, heartbeat_timeout=60)
    upgraded = RunStore(tmp_path).run("old")  # the store adds the columns, with their defaults, on open
    for run in (decoded, upgraded):
        assert {name: getattr(run, name) for name in defaults} == defaults
        assert (run.status, run.config, run.test_accuracy, run.versions, run.device) == (
            "completed", {"epochs": 3}, 0.9, None, None)
    assert decoded == upgraded
