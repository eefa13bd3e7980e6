"""The run store's schema, created in this one place, and its migrations (``PRAGMA user_version``).

Version 0 is every database written before the schema was versioned (and a new, empty file): migration 1 creates
the tables it lacks and adds the columns it lacks, so an older store is upgraded in place, its runs kept. Each
later change to the schema is one more function in :data:`MIGRATIONS`; a database records the last one applied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

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


def _tables_and_columns(db: sqlite3.Connection) -> None:
    """Migration 1: create the tables and add the columns an older store lacks (inside the caller's
    transaction)."""
    for statement in SCHEMA.split(";"):  # not executescript, which commits first
        if statement.strip():
            db.execute(statement)
    present = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for name, kind in COLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


def _designs(db: sqlite3.Connection) -> None:
    """Migration 2: the library of designed networks (``core.runs.designs``), keyed by their canonical text's
    hash, so two people saving one name keep both designs."""
    db.execute("""CREATE TABLE IF NOT EXISTS designs (
        id TEXT PRIMARY KEY,           -- the start of the SHA-256 of the canonical text
        name TEXT NOT NULL,            -- the design's own name statement
        text TEXT NOT NULL,            -- the canonical text (core.models.design_spec.format_design)
        parameters INTEGER NOT NULL,
        saved REAL NOT NULL
    )""")


# MIGRATIONS[i] takes a database from version i to version i + 1.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_tables_and_columns, _designs)
VERSION = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    """The schema version ``db`` records (0: written before versions, or new)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> int:
    """Bring ``db`` to :data:`VERSION` (inside the caller's transaction); returns the version it had.

    A database from newer code (a higher version) is left as it is."""
    found = version(db)
    for step in range(found, VERSION):
        MIGRATIONS[step](db)
    if found < VERSION:
        db.execute(f"PRAGMA user_version = {VERSION}")
    return found


def create_schema(db: sqlite3.Connection) -> None:
    """Create or upgrade the schema (inside the caller's transaction)."""
    migrate(db)


def use_wal(db: sqlite3.Connection, timeout: float) -> None:
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
