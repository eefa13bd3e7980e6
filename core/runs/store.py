"""The run store: SQLite (WAL) for runs, metrics and the queue; each run's checkpoints in its own folder.

Everything lives under one state directory (core.paths). Checkpoints (safetensors + JSON sidecars, written as
sets) are core.checkpoints' business; the store can be rebuilt from their sidecars when its database is lost
(core.runs.recovery). The schema and its migrations are core.runs.schema's.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch

from core import paths
from core.claims import StaleClaimError
from core.errors import ExplorerError
from core.paths import state_dir
from core.runs import recovery
from core.runs.record import RunRecord, Status, stale
from core.runs.schema import create_schema, use_wal
from core.store_errors import StoreDamagedError, StoreLockedError, StoreUnreadableError, unreadable

DEFAULT_HEARTBEAT_TIMEOUT = paths.DEFAULT_HEARTBEAT_TIMEOUT
DEFAULT_BUSY_TIMEOUT = paths.DEFAULT_BUSY_TIMEOUT
LOCK_WAIT = 30.0  # seconds one call waits for another process's write lock (at most the busy timeout)
default_heartbeat_timeout = paths.heartbeat_timeout
default_busy_timeout = paths.busy_timeout


class RunNotFoundError(ExplorerError):
    """No run with that id in the store."""


class RunStateError(ExplorerError):
    """An action the run's status does not allow (deleting a running run, resuming a completed one)."""


def versions() -> dict[str, str]:
    """Library versions recorded with each run."""
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}


def new_id(prefix: str = "") -> str:
    """A sortable unique id: ``[prefix]YYYYmmdd-HHMMSS-xxxxxx``."""
    return prefix + time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class Store(Protocol):
    """What a trainer needs of a run store: :class:`RunStore`, or the Ray executor's proxy of one
    (core.executors.RemoteStore). Writes take the claim's ``token`` (core.claims)."""

    root: Path
    heartbeat_timeout: float
    busy_timeout: float

    def claim(self, worker: str, run_id: str | None = None) -> RunRecord | None:
        """Take the oldest queued run (or ``run_id``) for ``worker``; None if none."""

    def run(self, run_id: str) -> RunRecord:
        """One run."""

    def update_run(self, run_id: str, *, token: int | None = None, **fields: Any) -> None:
        """Set columns of a run."""

    def heartbeat(self, run_id: str, token: int | None = None) -> None:
        """The trainer of ``run_id`` is alive."""

    def stop_requested(self, run_id: str, token: int | None = None) -> bool:
        """Has someone asked this run to stop?"""

    def check_claim(self, run_id: str, token: int) -> None:
        """Raise StaleClaimError unless ``token`` still holds ``run_id``."""

    def log(self, run_id: str, kind: str, epoch: int, step: int, elapsed: float, values: dict[str, float],
            token: int | None = None) -> None:
        """Append one row of metrics."""

    def forget_metrics_after(self, run_id: str, step: int, token: int | None = None) -> None:
        """Drop a run's metrics logged after ``step``."""

    def checkpoint_dir(self, run_id: str) -> Path:
        """The folder of a run's checkpoints."""

    def checkpoint_path(self, run_id: str, which: str = "best") -> Path:
        """Where a run's ``best`` or ``last`` checkpoint lives."""

    def checkpoints(self, run_id: str) -> dict[str, Path]:
        """The saved checkpoints of a run that exist."""


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
                use_wal(db, self.lock_wait)
                # One process at a time creates or upgrades the schema: two that open a new store together (the
                # app and a command-line run) would otherwise both add the same column, and one would fail.
                db.execute("BEGIN IMMEDIATE")
                create_schema(db)
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

    def create_run(self, config: Any, status: Status = "queued", group: str | None = None,
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

    def run(self, run_id: str) -> RunRecord:
        """One run (status ``interrupted`` if its trainer went quiet: see RunRecord.from_row)."""
        rows = self._execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(f"No run {run_id!r} in {self.db_path}.")
        return self._decode(rows[0])

    def runs(self, limit: int = 100, group: str | None = None) -> list[RunRecord]:
        """The latest runs (of one group, if given), newest first."""
        if group is not None:
            rows = self._execute("SELECT * FROM runs WHERE group_id = ? ORDER BY created, id", (group,))
        else:
            rows = self._execute("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,))
        return [self._decode(row) for row in rows]

    def _decode(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord.from_row(row, self.heartbeat_timeout)

    def _stale(self, heartbeat: float | None) -> bool:
        return stale(heartbeat, self.heartbeat_timeout, time.time())

    # The queue ----------------------------------------------------------------------------------------------------

    def claim(self, worker: str, run_id: str | None = None) -> RunRecord | None:
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
        return outcome or self.run(run_id).status

    def stop_requested(self, run_id: str, token: int | None = None) -> bool:
        """Has someone asked this run to stop? With ``token``, a StaleClaimError if that claim is lost."""
        rows = self._execute("SELECT stop_requested, generation FROM runs WHERE id = ?", (run_id,))
        if token is not None:
            self._fence(run_id, token, rows[0] if rows else None)
        return bool(rows and rows[0]["stop_requested"])

    def stop_group(self, group: str) -> int:
        """Stop or cancel every active run of a group; returns how many were asked."""
        asked = [run.id for run in self.runs(group=group) if run.is_active]
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
        run = self._decode(row)
        if not run.is_resumable:
            raise RunStateError(f"Run {run_id} is {run.status}: only a stopped, failed or interrupted run resumes.")

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

    def wait(self, run_id: str, timeout: float = 600, poll: float = 0.1) -> Status:
        """Block until the run is neither queued nor running (for tests and scripts); return that status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run.has_ended:
                return run.status
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} still active after {timeout} s")

    def delete(self, run_id: str) -> None:
        """Remove a run, its metrics and its checkpoint files (refused while it is running)."""

        def remove(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"No run {run_id!r} in {self.db_path}.")
            if self._decode(row).status == "running":
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
        """Rebuild the database from the checkpoint sidecars on disk; returns how many runs were added
        (core.runs.recovery)."""
        return recovery.rebuild(self)
