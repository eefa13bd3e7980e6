"""Rebuilding the run store from the checkpoint sidecars on disk (``python -m core.runs rebuild``).

A readable database only gains the runs it lacks; a damaged one is replaced by a complete new one written beside
it first. The figures a sidecar holds are taken through core.checkpoints' own checks (``sound_history``,
``sound_test_figures``): a sidecar is a file, and only well-formed figures reach the store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import checkpoints
from core.runs.schema import create_schema
from core.store_errors import StoreFullError, StoreLockedError, StoreReadOnlyError, StoreUnreadableError

if TYPE_CHECKING:
    from core.runs.store import RunStore


def rebuild(store: RunStore) -> int:
    """Rebuild the database from the checkpoint sidecars on disk; returns how many runs were added.

    A readable database only gains the runs it lacks. A damaged one is replaced: the new database is written
    completely beside it first, and only then is the old one moved aside (``runs.sqlite.broken-<time>``), so
    a full or read-only disk leaves it exactly as it was. A database that is only full, read-only or locked
    is never touched (its StoreUnreadableError is raised).
    """
    try:
        store._ready = False
        store._open()
        damaged = store._execute("PRAGMA quick_check")[0][0] != "ok"  # damage past the pages a query reads
    except StoreUnreadableError as error:
        if isinstance(error, (StoreFullError, StoreReadOnlyError, StoreLockedError)):
            raise
        damaged = True
    if damaged:
        return _replace(store)
    known = {row["id"] for row in store._execute("SELECT id FROM runs")}
    added = 0
    for folder in store.checkpoint_folders():
        if folder.name not in known and store._transaction(partial(restore, folder=folder)):
            added += 1
    return added


def _replace(store: RunStore) -> int:
    """Write a new database from the sidecars, then swap it for the unreadable one; on any failure the old
    files stay as they were and the new one is removed. How many runs the new one holds."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while Path(f"{store.db_path}.broken-{stamp}").exists():  # a second rebuild within the same second
        stamp += "+"
    fresh = Path(f"{store.db_path}.rebuilding-{stamp}")
    moved: list[tuple[Path, Path]] = []
    try:
        added = _write_new(store, fresh)
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{store.db_path}{suffix}")
            if part.exists():
                aside = Path(f"{store.db_path}.broken-{stamp}{suffix}")
                part.replace(aside)
                moved.append((aside, part))
        fresh.replace(store.db_path)
    except (OSError, sqlite3.DatabaseError) as error:
        for aside, part in reversed(moved):  # renames within one folder: they need no space
            aside.replace(part)
        for leftover in (fresh, Path(f"{fresh}-journal")):
            leftover.unlink(missing_ok=True)
        raise store._unreadable(error) from None
    store._ready = False
    store._open()
    return added


def _write_new(store: RunStore, path: Path) -> int:
    """A complete database at ``path`` (rollback journal, closed) with every run the sidecars describe."""
    path.unlink(missing_ok=True)
    with closing(store._connect(path)) as db:
        db.execute("BEGIN IMMEDIATE")
        create_schema(db)
        added = sum(1 for folder in store.checkpoint_folders() if restore(db, folder))
        db.execute("COMMIT")
    return added



def restore(db: sqlite3.Connection, folder: Path) -> bool:
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
