"""The run store: SQLite (WAL) for runs, metrics and the queue; each run's checkpoints in its own folder.

Everything lives under one state directory: ``$CNN_EXPLORER_STATE``, else ``./state``.
Checkpoints (safetensors + JSON sidecars, written atomically) are core.checkpoints' business; the store
can be rebuilt from their sidecars when its database is lost.

    python -m core.runs [--state DIR] list [--json] | show RUN | stop RUN | delete RUN | resume RUN | rebuild
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch

from core import checkpoints, paths
from core.claims import Claim, StaleClaimError
from core.errors import ExplorerError
from core.paths import state_dir
from core.store_errors import (  # noqa: F401 (re-exported: the store's errors)
    StoreDamagedError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreUnreadableError,
    unreadable,
)
from core.training import Progress

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,          -- queued | running | completed | stopped | failed (interrupted: computed on read)
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
# Columns added since the first schema (older stores get them on open).
COLUMNS = {
    "heartbeat": "REAL",                          # time.time() of the trainer's last sign of life
    "worker": "TEXT",                             # who trains it: "worker-HOST-PID", "cli-HOST-PID"
    "stop_requested": "INTEGER NOT NULL DEFAULT 0",
    "resume": "INTEGER NOT NULL DEFAULT 0",       # 1: continue from the last checkpoint when claimed
    "group_id": "TEXT",                           # runs started together (a strategy race)
    "queued_at": "REAL",                          # place in the queue (a resumed run queues again)
    "progress": "TEXT",                           # JSON: the trainer's latest progress snapshot
    "processes": "INTEGER NOT NULL DEFAULT 1",    # processes (GPUs) that train it together (the Ray executor)
    "generation": "INTEGER NOT NULL DEFAULT 0",   # raised by every claim: the fencing token (core.claims)
}
ACTIVE = ("queued", "running")
RESUMABLE = ("stopped", "failed", "interrupted")
DEFAULT_HEARTBEAT_TIMEOUT = paths.DEFAULT_HEARTBEAT_TIMEOUT
DEFAULT_BUSY_TIMEOUT = paths.DEFAULT_BUSY_TIMEOUT
LOCK_WAIT = 30.0  # seconds one call waits for another process's write lock (at most the busy timeout)


class RunNotFoundError(ExplorerError):
    """No run with that id in the store."""


class RunStateError(ExplorerError):
    """An action the run's status does not allow (deleting a running run, resuming a completed one)."""


default_heartbeat_timeout = paths.heartbeat_timeout
default_busy_timeout = paths.busy_timeout


def versions() -> dict[str, str]:
    """Library versions recorded with each run."""
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}


def new_id(prefix: str = "") -> str:
    """A sortable unique id: ``[prefix]YYYYmmdd-HHMMSS-xxxxxx``."""
    return prefix + time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _create_schema(db: sqlite3.Connection) -> None:
    """Create the tables and add the columns an older store lacks (inside the caller's transaction)."""
    for statement in SCHEMA.split(";"):  # not executescript, which commits first
        if statement.strip():
            db.execute(statement)
    present = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
    for name, kind in COLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


def _use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to ``timeout`` s: while another connection opens the same new
    file, SQLite answers "database is locked" at once, without waiting as it does for other statements."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class RunStore:
    """Runs, their metrics, the queue and the checkpoints under ``root``; safe from many threads and processes.

    The queue is the runs table itself: a run is ``queued`` until one worker claims it (atomically), stop and
    cancel are requests written here, and a ``running`` run whose trainer stopped sending heartbeats reads as
    ``interrupted`` to everyone, whenever they look. Every claim raises the run's ``generation``; a trainer's
    writes pass it as ``token`` and are refused once it is stale (see core.claims).
    """

    def __init__(self, root: Path | None = None, heartbeat_timeout: float | None = None,
                 busy_timeout: float | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir()
        with contextlib.suppress(OSError):  # a read-only or full disk: said by the first call, as its cause
            self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.sqlite"
        self.heartbeat_timeout = heartbeat_timeout or default_heartbeat_timeout()
        self.busy_timeout = busy_timeout or default_busy_timeout()  # how long a trainer's write waits (in all)
        self.lock_wait = min(LOCK_WAIT, self.busy_timeout)  # how long one call waits
        self._ready = False

    # Connections --------------------------------------------------------------------------------------------------

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        db = sqlite3.connect(path or self.db_path, timeout=self.lock_wait, isolation_level=None)  # autocommit
        db.row_factory = sqlite3.Row
        return db

    def _open(self) -> None:
        """Create or upgrade the schema once; a database that cannot be used is a StoreUnreadableError whose
        subclass says why (no space, read-only, locked, damaged)."""
        if self._ready:
            return
        try:
            empty = not self.db_path.exists() or self.db_path.stat().st_size == 0
            if empty and self.checkpoint_folders():
                state = "missing" if not self.db_path.exists() else "empty (0 bytes)"
                raise StoreDamagedError(self.db_path, f"it is {state}, yet checkpoints of earlier runs are on disk",
                                        len(self.checkpoint_folders()))
            with closing(self._connect()) as db:
                _use_wal(db, self.lock_wait)
                # One process at a time creates or upgrades the schema: two that open a new store together (the
                # app and a command-line run) would otherwise both add the same column, and one would fail.
                db.execute("BEGIN IMMEDIATE")
                _create_schema(db)
                db.execute("COMMIT")
        except (sqlite3.DatabaseError, OSError) as error:
            raise self._unreadable(error) from None
        self._ready = True

    def _unreadable(self, error: sqlite3.DatabaseError | OSError) -> StoreUnreadableError:
        """The typed error for a failed database call (the schema is checked again on the next call, unless the
        database was only locked)."""
        typed = unreadable(error, self.db_path, len(self.checkpoint_folders()))
        if not isinstance(typed, StoreLockedError):
            self._ready = False
        return typed

    def _execute(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        self._open()
        try:
            with closing(self._connect()) as db:
                return db.execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as error:
            raise self._unreadable(error) from None

    def _transaction(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``body(db)`` inside BEGIN IMMEDIATE … COMMIT: one writer at a time across processes."""
        self._open()
        try:
            with closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = body(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
        except sqlite3.DatabaseError as error:
            raise self._unreadable(error) from None

    def check(self) -> None:
        """Raise a StoreUnreadableError (its subclass says why; a lock held too long is also a StoreBusyError)
        unless the database can be read."""
        self._execute("SELECT COUNT(*) FROM runs")

    # Fencing (see core.claims) ------------------------------------------------------------------------------------

    @staticmethod
    def _fence(run_id: str, token: int, row: sqlite3.Row | None) -> None:
        """Raise StaleClaimError unless ``row`` (the run's ``generation``) still carries ``token``."""
        if row is None:
            raise StaleClaimError(f"Run {run_id} no longer exists (it was deleted while its trainer was away): "
                                  "that trainer writes nothing more.")
        if row["generation"] != token:
            raise StaleClaimError(f"Run {run_id} was claimed again (claim {row['generation']}) after its trainer of "
                                  f"claim {token} stopped sending signs of life: that trainer stops without writing "
                                  "anything more.")

    def check_claim(self, run_id: str, token: int) -> None:
        """Raise StaleClaimError unless ``token`` is still the generation of ``run_id`` (its trainer's claim)."""
        rows = self._execute("SELECT generation FROM runs WHERE id = ?", (run_id,))
        self._fence(run_id, token, rows[0] if rows else None)

    def _write(self, run_id: str, token: int | None, sql: str, parameters: tuple) -> None:
        """Execute one write; with ``token``, in one transaction with the check that it still holds the run's claim
        (else a StaleClaimError, and nothing is written)."""
        if token is None:
            self._execute(sql, parameters)
            return

        def fenced(db: sqlite3.Connection) -> None:
            self._fence(run_id, token, db.execute("SELECT generation FROM runs WHERE id = ?", (run_id,)).fetchone())
            db.execute(sql, parameters)

        self._transaction(fenced)

    # Runs ---------------------------------------------------------------------------------------------------------

    def create_run(self, config: Any, status: str = "queued", group: str | None = None,
                   worker: str | None = None, processes: int = 1) -> str:
        """Record a new run of ``config`` (a TrainConfig): queued for a worker, or running under ``worker``."""
        run_id = new_id()
        now = time.time()
        heartbeat = now if status == "running" else None
        self._execute(
            "INSERT INTO runs (id, created, updated, status, arch, dataset, config, versions, group_id, queued_at, "
            "heartbeat, worker, processes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, now, now, status, config.arch, config.dataset, json.dumps(asdict(config)), json.dumps(versions()),
             group, now, heartbeat, worker, processes),
        )
        return run_id

    def update_run(self, run_id: str, *, token: int | None = None, **fields: Any) -> None:
        """Set columns of a run (dicts and lists are stored as JSON); a trainer passes its claim's ``token``."""
        allowed = {"status", "device", "message", "elapsed", "best_val_acc", "test", "progress", "heartbeat"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        values = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._write(run_id, token, f"UPDATE runs SET {assignments}, updated = ? WHERE id = ?",
                    (*values, time.time(), run_id))

    def run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (config, test and progress decoded; status ``interrupted`` if its trainer went quiet)."""
        rows = self._execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(f"No run {run_id!r} in {self.db_path}.")
        return self._decode(rows[0])

    def runs(self, limit: int = 100, group: str | None = None) -> list[dict[str, Any]]:
        """The latest runs (of one group, if given), newest first."""
        if group is not None:
            rows = self._execute("SELECT * FROM runs WHERE group_id = ? ORDER BY created, id", (group,))
        else:
            rows = self._execute("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,))
        return [self._decode(row) for row in rows]

    def _decode(self, row: sqlite3.Row) -> dict[str, Any]:
        run = dict(row)
        for key in ("config", "versions", "test", "progress"):
            run[key] = json.loads(run[key]) if run.get(key) else None
        if run["status"] == "running" and self._stale(run["heartbeat"]):
            run["status"] = "interrupted"
            beat = run["heartbeat"]
            quiet = ("has never sent a sign of life" if beat is None
                     else "was lost: its process ended before the run did" if beat <= 0  # an executor saw it die
                     else f"has not sent a sign of life for {time.time() - beat:.0f} s")
            run["message"] = (f"Interrupted: its trainer ({run.get('worker') or 'unknown'}) {quiet} (the process was "
                              "killed, or its machine stopped). Resume continues from the last checkpoint.")
        return run

    def _stale(self, heartbeat: float | None) -> bool:
        return heartbeat is None or time.time() - heartbeat > self.heartbeat_timeout

    # The queue ----------------------------------------------------------------------------------------------------

    def claim(self, worker: str, run_id: str | None = None) -> dict[str, Any] | None:
        """Take the oldest queued run (or ``run_id``, if still queued) for ``worker``, atomically; None if none.

        The run's ``generation`` is the claim's token: its trainer passes it with every write."""

        def take(db: sqlite3.Connection) -> str | None:
            if run_id is not None:
                row = db.execute("SELECT id FROM runs WHERE id = ? AND status = 'queued'", (run_id,)).fetchone()
            else:
                row = db.execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY queued_at, created LIMIT 1"
                                 ).fetchone()
            if row is None:
                return None
            now = time.time()
            claimed = db.execute("UPDATE runs SET status = 'running', worker = ?, heartbeat = ?, updated = ?, "
                                 "stop_requested = 0, message = NULL, generation = generation + 1 "
                                 "WHERE id = ? AND status = 'queued'",
                                 (worker, now, now, row["id"])).rowcount
            return row["id"] if claimed else None

        claimed = self._transaction(take)
        return self.run(claimed) if claimed else None

    def queued(self) -> list[str]:
        """Ids of the queued runs, next first (an executor that places runs itself reads the queue here)."""
        rows = self._execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY queued_at, created")
        return [row["id"] for row in rows]

    def training(self) -> int:
        """How many runs are training now (running, with a trainer that still sends signs of life)."""
        rows = self._execute("SELECT heartbeat FROM runs WHERE status = 'running'")
        return sum(1 for row in rows if not self._stale(row["heartbeat"]))

    def heartbeat(self, run_id: str, token: int | None = None) -> None:
        """The trainer of ``run_id`` (holding claim ``token``) is alive."""
        self._write(run_id, token, "UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                    (time.time(), run_id))

    def request_stop(self, run_id: str) -> str:
        """Cancel a queued run at once, or ask a running one to stop; returns "cancelled", "stopping" or the status."""

        def stop(db: sqlite3.Connection) -> str:
            now = time.time()
            if db.execute("UPDATE runs SET status = 'stopped', message = 'Cancelled before it started.', updated = ? "
                          "WHERE id = ? AND status = 'queued'", (now, run_id)).rowcount:
                return "cancelled"
            if db.execute("UPDATE runs SET stop_requested = 1, updated = ? WHERE id = ? AND status = 'running'",
                          (now, run_id)).rowcount:
                return "stopping"
            return ""

        outcome = self._transaction(stop)
        return outcome or self.run(run_id)["status"]

    def stop_requested(self, run_id: str, token: int | None = None) -> bool:
        """Has someone asked this run to stop? With ``token``, a StaleClaimError if that claim is lost."""
        rows = self._execute("SELECT stop_requested, generation FROM runs WHERE id = ?", (run_id,))
        if token is not None:
            self._fence(run_id, token, rows[0] if rows else None)
        return bool(rows and rows[0]["stop_requested"])

    def stop_group(self, group: str) -> int:
        """Stop or cancel every active run of a group; returns how many were asked."""
        asked = [run["id"] for run in self.runs(group=group) if run["status"] in ACTIVE]
        for run_id in asked:
            self.request_stop(run_id)
        return len(asked)

    def position(self, run_id: str) -> int | None:
        """1 for the next run a worker takes, 2 after it…; None if the run is not queued."""
        rows = self._execute(
            "SELECT COUNT(*) AS ahead FROM runs AS other, runs AS mine WHERE mine.id = ? AND mine.status = 'queued' "
            "AND other.status = 'queued' AND (other.queued_at < mine.queued_at OR "
            "(other.queued_at = mine.queued_at AND other.created <= mine.created))", (run_id,))
        ahead = rows[0]["ahead"] if rows else 0
        return ahead or None

    def _check_resumable(self, db: sqlite3.Connection, run_id: str) -> None:
        """Raise unless ``run_id`` exists and is stopped, failed or interrupted (read inside the caller's transaction)."""
        row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"No run {run_id!r} in {self.db_path}.")
        status = self._decode(row)["status"]
        if status not in RESUMABLE:
            raise RunStateError(f"Run {run_id} is {status}: only a stopped, failed or interrupted run resumes.")

    def resume(self, run_id: str) -> None:
        """Queue a stopped, failed or interrupted run again, to continue from its last checkpoint.

        Its generation goes up at once: a trainer of it that was only paused can write nothing more."""

        def requeue(db: sqlite3.Connection) -> None:
            self._check_resumable(db, run_id)
            now = time.time()
            db.execute("UPDATE runs SET status = 'queued', resume = 1, queued_at = ?, updated = ?, stop_requested = 0, "
                       "message = NULL, heartbeat = NULL, generation = generation + 1 WHERE id = ?", (now, now, run_id))

        self._transaction(requeue)

    def attach(self, run_id: str, trainer: str) -> int:
        """Mark a stopped, failed or interrupted run as running again under ``trainer`` (``core.train --resume``);
        returns the claim's token (the run's new generation)."""

        def take(db: sqlite3.Connection) -> int:
            self._check_resumable(db, run_id)
            now = time.time()
            db.execute("UPDATE runs SET status = 'running', worker = ?, heartbeat = ?, updated = ?, resume = 1, "
                       "stop_requested = 0, message = NULL, generation = generation + 1 WHERE id = ?",
                       (trainer, now, now, run_id))
            return int(db.execute("SELECT generation FROM runs WHERE id = ?", (run_id,)).fetchone()["generation"])

        return int(self._transaction(take))

    def wait(self, run_id: str, timeout: float = 600, poll: float = 0.1) -> str:
        """Block until the run is neither queued nor running (for tests and scripts); return that status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.run(run_id)["status"]
            if status not in ACTIVE:
                return status
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} still active after {timeout} s")

    def delete(self, run_id: str) -> None:
        """Remove a run, its metrics and its checkpoint files (refused while it is running)."""

        def remove(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"No run {run_id!r} in {self.db_path}.")
            if self._decode(row)["status"] == "running":
                raise RunStateError(f"Run {run_id} is running: stop it first, then delete it.")
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

        self._transaction(remove)
        shutil.rmtree(self.root / "checkpoints" / run_id, ignore_errors=True)

    # Metrics ------------------------------------------------------------------------------------------------------

    def log(self, run_id: str, kind: str, epoch: int, step: int, elapsed: float, values: dict[str, float],
            token: int | None = None) -> None:
        """Append one row of metrics (kind "step" or "epoch"); a trainer passes its claim's ``token``."""
        self._write(run_id, token, "INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                    (run_id, kind, epoch, step, elapsed, json.dumps(values)))

    def forget_metrics_after(self, run_id: str, step: int, token: int | None = None) -> None:
        """Drop a run's metrics logged after ``step`` (a resumed run logs them again from its checkpoint)."""
        self._write(run_id, token, "DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, step))

    def metrics(self, run_id: str, kind: str = "epoch", after_step: int = -1) -> list[dict[str, float]]:
        """Metrics rows of a run in order (only those with step > ``after_step``), flattened to dicts."""
        rows = self._execute("SELECT epoch, step, elapsed, values_json FROM metrics WHERE run_id = ? AND kind = ? "
                             "AND step > ? ORDER BY step, rowid", (run_id, kind, after_step))
        return [{"epoch": r["epoch"], "step": r["step"], "elapsed": r["elapsed"], **json.loads(r["values_json"])}
                for r in rows]

    # Checkpoints --------------------------------------------------------------------------------------------------

    def checkpoint_dir(self, run_id: str) -> Path:
        """The folder of a run's checkpoints (see core.checkpoints)."""
        return self.root / "checkpoints" / run_id

    def checkpoint_path(self, run_id: str, which: str = "best") -> Path:
        """Where a run's ``best`` or ``last`` checkpoint lives (the sidecar is beside it, ``.json``)."""
        return self.checkpoint_dir(run_id) / f"{which}.safetensors"

    def checkpoints(self, run_id: str) -> dict[str, Path]:
        """The saved checkpoints of a run that exist: ``{"best": path, "last": path}`` or fewer."""
        return {which: path for which in ("best", "last")
                if (path := self.checkpoint_path(run_id, which)).exists()}

    def checkpoint_folders(self) -> list[Path]:
        """Run folders under ``checkpoints/`` that hold at least one sidecar."""
        folder = self.root / "checkpoints"
        if not folder.is_dir():
            return []
        return sorted(path for path in folder.iterdir() if path.is_dir() and any(path.glob("*.json")))

    def rebuild(self) -> int:
        """Rebuild the database from the checkpoint sidecars on disk; returns how many runs were added.

        A readable database only gains the runs it lacks. A damaged one is replaced: the new database is written
        completely beside it first, and only then is the old one moved aside (``runs.sqlite.broken-<time>``), so
        a full or read-only disk leaves it exactly as it was. A database that is only full, read-only or locked
        is never touched (its StoreUnreadableError is raised).
        """
        try:
            self._ready = False
            self._open()
            damaged = self._execute("PRAGMA quick_check")[0][0] != "ok"  # damage past the pages a query reads
        except StoreUnreadableError as error:
            if isinstance(error, (StoreFullError, StoreReadOnlyError, StoreLockedError)):
                raise
            damaged = True
        if damaged:
            return self._replace()
        known = {row["id"] for row in self._execute("SELECT id FROM runs")}
        added = 0
        for folder in self.checkpoint_folders():
            if folder.name not in known and self._transaction(partial(self._restore, folder=folder)):
                added += 1
        return added

    def _replace(self) -> int:
        """Write a new database from the sidecars, then swap it for the unreadable one; on any failure the old
        files stay as they were and the new one is removed. How many runs the new one holds."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        while Path(f"{self.db_path}.broken-{stamp}").exists():  # a second rebuild within the same second
            stamp += "+"
        fresh = Path(f"{self.db_path}.rebuilding-{stamp}")
        moved: list[tuple[Path, Path]] = []
        try:
            added = self._write_new(fresh)
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.db_path}{suffix}")
                if part.exists():
                    aside = Path(f"{self.db_path}.broken-{stamp}{suffix}")
                    part.replace(aside)
                    moved.append((aside, part))
            fresh.replace(self.db_path)
        except (OSError, sqlite3.DatabaseError) as error:
            for aside, part in reversed(moved):  # renames within one folder: they need no space
                aside.replace(part)
            for leftover in (fresh, Path(f"{fresh}-journal")):
                leftover.unlink(missing_ok=True)
            raise self._unreadable(error) from None
        self._ready = False
        self._open()
        return added

    def _write_new(self, path: Path) -> int:
        """A complete database at ``path`` (rollback journal, closed) with every run the sidecars describe."""
        path.unlink(missing_ok=True)
        with closing(self._connect(path)) as db:
            db.execute("BEGIN IMMEDIATE")
            _create_schema(db)
            added = sum(1 for folder in self.checkpoint_folders() if self._restore(db, folder))
            db.execute("COMMIT")
        return added

    @staticmethod
    def _restore(db: sqlite3.Connection, folder: Path) -> bool:
        """Insert (through ``db``) the run a checkpoint folder belongs to, from its sidecars; False if none can be
        read."""
        sidecars: dict[str, dict[str, Any]] = {}
        for which in ("last", "best"):
            try:
                sidecar = json.loads((folder / f"{which}.json").read_text())
            except (OSError, ValueError):
                continue
            if isinstance(sidecar, dict):
                sidecars[which] = sidecar
        if not sidecars:
            return False
        last = sidecars.get("last") or sidecars["best"]
        best = sidecars.get("best") or last
        config = dict(last["config"]) if isinstance(last.get("config"), dict) else {}
        for key, value in (("arch", last.get("arch", "unknown")), ("dataset", last.get("dataset", "unknown")),
                           ("strategy", last.get("strategy") or ""), ("epochs", last.get("epoch") or 0),
                           ("optimizer", "?"), ("lr", float("nan")), ("batch_size", 0)):
            config.setdefault(key, value)
        for key in ("arch", "dataset"):  # database columns, and names the pages look up
            if not isinstance(config[key], str):
                config[key] = "unknown"
        status = last.get("status") or "stopped"
        if status not in ("completed", "stopped", "failed", "running"):
            status = "stopped"
        # a run whose sidecar still says "running" never ended: stored without a heartbeat, it reads as interrupted
        history = checkpoints.sound_history(last.get("history"))  # a sidecar is a file: only well-formed figures
        if not history and isinstance(last.get("metrics"), dict) and last.get("epoch"):
            history = checkpoints.sound_history([{"epoch": last["epoch"], **last["metrics"]}])
        try:
            created = time.mktime(time.strptime(folder.name[:15], "%Y%m%d-%H%M%S"))
        except ValueError:
            created = folder.stat().st_mtime
        best_val = max((row["val_acc"] for row in history if isinstance(row.get("val_acc"), (int, float))),
                       default=None)
        test = checkpoints.sound_test_figures(best.get("test")) or checkpoints.sound_test_figures(last.get("test"))
        db.execute(
            "INSERT INTO runs (id, created, updated, status, arch, dataset, config, message, best_val_acc, test, "
            "elapsed, queued_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (folder.name, created, time.time(), status, config["arch"], config["dataset"], json.dumps(config),
             f"Rebuilt from its checkpoint sidecars (up to epoch {last.get('epoch') or 0}, step "
             f"{last.get('step') or 0}); per-batch curves are not kept there.", best_val,
             json.dumps(test) if test else None, history[-1].get("elapsed") if history else None, created))
        for row in history:
            figures = {k: v for k, v in row.items() if k not in ("epoch", "elapsed")}
            db.execute("INSERT INTO metrics VALUES (?,?,?,?,?,?)", (folder.name, "epoch", int(row["epoch"]),
                       int(row["epoch"]), float(row.get("elapsed") or 0.0), json.dumps(figures)))
        return True


class StoreCallback:
    """Trainer subscriber that writes metrics, progress (with a heartbeat) and status into the run store (the
    trainer writes the checkpoints, see core.checkpoints). Each write carries the claim's ``token`` and waits out
    a locked database (core.claims); a lost claim raises StaleClaimError out of the trainer."""

    def __init__(self, store: RunStore, run_id: str, token: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.claim = Claim(store, run_id, token)

    @staticmethod
    def progress(progress: Progress) -> dict[str, Any]:
        """What a live view shows of a running trainer."""
        return {"epoch": progress.epoch, "epochs": progress.config.epochs, "step": progress.step,
                "total_steps": progress.total_steps, "elapsed": progress.elapsed, "eta": progress.eta_seconds,
                "images_per_second": progress.images_per_second, "messages": list(progress.messages)}

    def on_fit_start(self, progress: Progress) -> None:
        if progress.step:  # a resumed run: what was logged after its checkpoint is logged again
            self.claim.forget_metrics_after(progress.step)
        self.claim.update(status="running", device=progress.device, progress=self.progress(progress),
                          heartbeat=time.time())

    def on_batch_end(self, progress: Progress) -> None:
        self.claim.log("step", progress.epoch, progress.step, progress.elapsed,
                       {"train_loss": progress.train_loss, "train_acc": progress.train_acc, "lr": progress.lr})
        self.claim.update(progress=self.progress(progress), heartbeat=time.time())

    def on_epoch_end(self, progress: Progress) -> None:
        epoch = progress.history[-1].as_dict()
        self.claim.log("epoch", progress.epoch, progress.step, progress.elapsed,
                       {k: v for k, v in epoch.items() if k not in ("epoch", "elapsed")})
        self.claim.update(best_val_acc=progress.best_val_acc, elapsed=progress.elapsed,
                          progress=self.progress(progress))

    def on_fit_end(self, progress: Progress) -> None:
        test = progress.test.report(progress.classes) if progress.test is not None else None
        self.claim.update(status=progress.status, message=" ".join(progress.messages) or None,
                          elapsed=progress.elapsed, test=test, progress=self.progress(progress))


class StopFlag(threading.Event):
    """The stop event a trainer checks every batch: set here (a signal), or requested in the store by anyone.

    The store is asked at most every ``every`` seconds, so checking costs nothing measurable per batch. ``reason``
    is what the run will say it stopped for (None: the user asked); ``also`` may give one (its server went away).
    With the claim's ``token``, a lost claim raises StaleClaimError (from then on, at every check): the trainer
    ends at once, writing nothing more.
    """

    def __init__(self, store: RunStore | None, run_id: str | None, every: float = 0.25,
                 also: Callable[[], bool | str | None] | None = None, token: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.run_id = run_id
        self.every = every
        self.also = also  # an extra reason to stop (the worker's parent went away): True, or the reason in words
        self.reason: str | None = None
        self.claim = Claim(store, run_id, token) if store is not None and run_id is not None else None
        self.lost: StaleClaimError | None = None
        self._polled = time.monotonic()

    def stop_for(self, reason: str | None) -> None:
        """Set the flag, saying why (the first reason given is kept)."""
        if reason and not super().is_set():
            self.reason = reason
        self.set()

    def is_set(self) -> bool:
        """True once a stop was set here or requested in the store; StaleClaimError once the claim is lost."""
        if self.lost is not None:
            raise self.lost
        if super().is_set():
            return True
        now = time.monotonic()
        if now - self._polled >= self.every:
            self._polled = now
            try:
                if self.claim is not None and self.claim.stop_requested():
                    self.set()
                elif self.also is not None and (wanted := self.also()):
                    self.stop_for(wanted if isinstance(wanted, str) else None)
            except StaleClaimError as error:
                self.lost = error
                raise
            except ExplorerError as error:  # a busy or damaged store must not end the run
                log.warning("could not read the stop request of run %s: %s", self.run_id, error)
        return super().is_set()


class Heartbeat:
    """A daemon thread that tells the store a run's trainer is alive, until the ``with`` block ends (or until
    the claim ``token`` is lost: then the store refuses its beats, and it stops beating)."""

    def __init__(self, store: RunStore, run_id: str, interval: float | None = None, token: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.claim = Claim(store, run_id, token)
        self.interval = interval or max(store.heartbeat_timeout / 5, 0.05)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.claim.heartbeat()
            except StaleClaimError as error:
                log.warning("%s", error)
                return
            except Exception as error:  # noqa: BLE001 (a heartbeat that fails once must try again, not die)
                log.warning("heartbeat of run %s failed: %s", self.run_id, error)


# Command line ---------------------------------------------------------------------------------------------------


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """The fields ``list --json`` prints."""
    return {"id": run["id"], "status": run["status"], "architecture": run["arch"], "data": run["dataset"],
            "epochs": (run["config"] or {}).get("epochs"), "best_val_acc": run["best_val_acc"],
            "test_acc": (run["test"] or {}).get("accuracy"), "group": run.get("group_id")}


def main(argv: list[str] | None = None) -> int:
    """``python -m core.runs``: list, show, delete, resume runs, or rebuild the store; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m core.runs", description="Manage the runs of the run store.")
    parser.add_argument("--state", type=Path, help="state folder (default: $CNN_EXPLORER_STATE or ./state)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the latest runs, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.add_argument("--limit", type=int, default=100)
    for name, text in (("show", "everything about one run"), ("delete", "remove a run and its checkpoint files"),
                       ("stop", "cancel a queued run, or ask a running one to stop after its batch"),
                       ("resume", "queue a stopped, failed or interrupted run again (a worker continues it)")):
        commands.add_parser(name, help=text).add_argument("run_id")
    commands.add_parser("rebuild", help="rebuild the database from the checkpoint sidecars on disk")
    args = parser.parse_args(argv)
    store = RunStore(args.state)
    try:
        if args.command == "list":
            rows = [_summary(run) for run in store.runs(limit=args.limit)]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for row in rows:
                    test = f"{row['test_acc']:.2%}" if row["test_acc"] is not None else "–"
                    print(f"{row['id']}  {row['status']:<11} {row['architecture']:<14} {row['data']:<14} "
                          f"{row['epochs']!s:>4} epochs  test {test}")
        elif args.command == "show":
            print(json.dumps(store.run(args.run_id), indent=2, default=str))
            print(json.dumps({"checkpoints": {k: str(v) for k, v in store.checkpoints(args.run_id).items()}}))
        elif args.command == "stop":
            print(f"run {args.run_id}: {store.request_stop(args.run_id)}")
        elif args.command == "delete":
            store.delete(args.run_id)
            print(f"deleted run {args.run_id} and its files")
        elif args.command == "resume":
            store.resume(args.run_id)
            print(f"run {args.run_id} queued again: a worker (`python -m core.worker`, or the app's) continues it")
        else:
            print(f"rebuilt {store.db_path}: {store.rebuild()} runs added from checkpoint sidecars")
    except ExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
