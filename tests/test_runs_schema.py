"""The run store's schema is versioned (``PRAGMA user_version``); a database from before is upgraded in place."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from core.runs import COLUMNS, SCHEMA, RunStore, schema
from core.training import TrainConfig


def test_an_unversioned_database_is_upgraded_in_place(tmp_path: Path) -> None:
    # A database as the code before versions wrote it: today's tables and columns, user_version 0, one run.
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db:
        db.executescript(SCHEMA)
        for name, kind in COLUMNS.items():
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        db.execute("INSERT INTO runs (id, created, updated, status, arch, dataset, config) "
                   "VALUES ('old', 1, 1, 'completed', 'lenet', 'mnist', '{}')")
        db.commit()
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    store = RunStore(tmp_path)
    assert store.run("old").status == "completed"
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION == 2
    run_id = store.create_run(TrainConfig(arch="lenet", dataset="mnist"))
    assert [run.id for run in store.runs()] == [run_id, "old"]


def test_a_new_database_records_its_version(tmp_path: Path) -> None:
    RunStore(tmp_path).check()
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION == 2
