"""The run store: SQLite (WAL) for runs and metrics; each run's checkpoints in its own folder.

Everything lives under one state directory: ``$CNN_EXPLORER_STATE``, else ``./state``.
Checkpoints (safetensors + JSON sidecars, written atomically) are core.checkpoints' business.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from core.errors import ExplorerError
from core.training import Progress

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,          -- queued | running | completed | stopped | failed
    arch TEXT NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,          -- JSON of TrainConfig
    device TEXT,
    versions TEXT,                 -- JSON: python, torch, torchvision
    message TEXT,
    elapsed REAL,
    best_val_acc REAL,
    test TEXT                      -- JSON: accuracy, loss, confusion, per_class, classes, misclassified
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL,            -- step | epoch
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    elapsed REAL NOT NULL,
    values_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, kind, step);
"""


class RunNotFoundError(ExplorerError):
    """No run with that id in the store."""


def state_dir() -> Path:
    """The one configurable state directory (``$CNN_EXPLORER_STATE``, default ``./state``)."""
    return Path(os.environ.get("CNN_EXPLORER_STATE", "state")).resolve()


def versions() -> dict[str, str]:
    """Library versions recorded with each run."""
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}


class RunStore:
    """Runs, their metrics and their checkpoints under ``root``. Safe to use from several threads and processes."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.sqlite"
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)  # autocommit; one per call
        db.row_factory = sqlite3.Row
        return db

    def _execute(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        with closing(self._connect()) as db:
            return db.execute(sql, parameters).fetchall()

    # Runs -----------------------------------------------------------------------------------------

    def create_run(self, config: Any, status: str = "queued") -> str:
        """Record a new run of ``config`` (a TrainConfig); return its id."""
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = time.time()
        self._execute(
            "INSERT INTO runs (id, created, updated, status, arch, dataset, config, versions) VALUES (?,?,?,?,?,?,?,?)",
            (run_id, now, now, status, config.arch, config.dataset, json.dumps(asdict(config)), json.dumps(versions())),
        )
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (dicts and lists are stored as JSON)."""
        allowed = {"status", "device", "message", "elapsed", "best_val_acc", "test"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        values = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._execute(f"UPDATE runs SET {assignments}, updated = ? WHERE id = ?", (*values, time.time(), run_id))

    def run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (config and test decoded)."""
        rows = self._execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(f"No run {run_id!r} in {self.db_path}.")
        return self._decode(rows[0])

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest runs, newest first."""
        return [self._decode(r) for r in self._execute("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,))]

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict[str, Any]:
        run = dict(row)
        for key in ("config", "versions", "test"):
            run[key] = json.loads(run[key]) if run[key] else None
        return run

    def mark_interrupted(self) -> int:
        """Runs left 'running' or 'queued' by a process that died are failed; returns how many."""
        rows = self._execute("SELECT id FROM runs WHERE status IN ('running', 'queued')")
        for row in rows:
            self.update_run(row["id"], status="failed", message="The app stopped while this run was active.")
        return len(rows)

    # Metrics --------------------------------------------------------------------------------------

    def log(self, run_id: str, kind: str, epoch: int, step: int, elapsed: float, values: dict[str, float]) -> None:
        """Append one row of metrics (kind "step" or "epoch")."""
        self._execute("INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                      (run_id, kind, epoch, step, elapsed, json.dumps(values)))

    def forget_metrics_after(self, run_id: str, step: int) -> None:
        """Drop a run's metrics logged after ``step`` (a resumed run logs them again from its checkpoint)."""
        self._execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, step))

    def metrics(self, run_id: str, kind: str = "epoch") -> list[dict[str, float]]:
        """All metrics rows of a run, in order, flattened to dicts."""
        rows = self._execute("SELECT epoch, step, elapsed, values_json FROM metrics WHERE run_id = ? AND kind = ? "
                             "ORDER BY step, rowid", (run_id, kind))
        return [{"epoch": r["epoch"], "step": r["step"], "elapsed": r["elapsed"], **json.loads(r["values_json"])}
                for r in rows]

    # Checkpoints ----------------------------------------------------------------------------------

    def checkpoint_dir(self, run_id: str) -> Path:
        """The folder of a run's checkpoints (see core.checkpoints)."""
        return self.root / "checkpoints" / run_id

    def checkpoint_path(self, run_id: str, which: str = "best") -> Path:
        """Where a run's ``best`` or ``last`` checkpoint lives (the sidecar is beside it, ``.json``)."""
        return self.checkpoint_dir(run_id) / f"{which}.safetensors"


class StoreCallback:
    """Trainer subscriber that writes metrics and status into the run store (the trainer writes the
    checkpoints, see core.checkpoints)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def on_fit_start(self, progress: Progress) -> None:
        if progress.step:  # a resumed run: what was logged after its checkpoint is logged again
            self.store.forget_metrics_after(self.run_id, progress.step)
        self.store.update_run(self.run_id, status="running", device=progress.device)

    def on_batch_end(self, progress: Progress) -> None:
        self.store.log(self.run_id, "step", progress.epoch, progress.step, progress.elapsed,
                       {"train_loss": progress.train_loss, "train_acc": progress.train_acc, "lr": progress.lr})

    def on_epoch_end(self, progress: Progress) -> None:
        epoch = progress.history[-1].as_dict()
        self.store.log(self.run_id, "epoch", progress.epoch, progress.step, progress.elapsed,
                       {k: v for k, v in epoch.items() if k not in ("epoch", "elapsed")})
        self.store.update_run(self.run_id, best_val_acc=progress.best_val_acc, elapsed=progress.elapsed)

    def on_fit_end(self, progress: Progress) -> None:
        test = progress.test.report(progress.classes) if progress.test is not None else None
        self.store.update_run(self.run_id, status=progress.status, message=" ".join(progress.messages) or None,
                              elapsed=progress.elapsed, test=test)
