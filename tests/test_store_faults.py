"""The run database under faults (issue 19, defect 3): a full disk, a read-only state folder, a lock held by another
process and a really damaged file are told apart; only damage offers Rebuild, and a rebuild that cannot write its
new database leaves the old one byte for byte as it was, with no empty file beside it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import runs, store_errors, training
from tests.apptest import open_page

ROOT = Path(__file__).resolve().parents[1]


def _mount(*args: str) -> bool:
    """``mount ARGS`` as root; False where mounting is not permitted (no root, a container without the right)."""
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True, timeout=30)


def _sidecar(store: runs.RunStore, run_id: str) -> None:
    """A checkpoint folder with a sidecar, as a trained run leaves (what a rebuild recovers)."""
    folder = store.checkpoint_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.json").write_text(json.dumps({"arch": "lenet5", "dataset": "digits", "status": "completed",
                                                  "epoch": 1, "history": [{"epoch": 1, "val_acc": 0.5}]}))


def _files(folder: Path) -> dict[str, str]:
    """Every file directly in ``folder`` and the SHA-256 of its bytes."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir() if path.is_file()}


def _store_with_runs(root: Path) -> runs.RunStore:
    store = runs.RunStore(root)
    for _ in range(2):
        _sidecar(store, store.create_run(training.TrainConfig(), status="completed"))
    return store


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a state folder with a store, the same folder through a read-only bind mount); skipped where mounting is
    not permitted. Root ignores chmod, so a mount is the only honest read-only folder here."""
    source, view = tmp_path / "state", tmp_path / "view"
    _store_with_runs(source)
    view.mkdir()
    if not _mount("--bind", str(source), str(view)):
        pytest.skip("bind mounts are not permitted here")
    try:
        if not _mount("-o", "remount,ro,bind", str(view)):
            pytest.skip("a bind mount cannot be made read-only here")
        yield source, view
    finally:
        _unmount(view)


def test_a_read_only_state_folder_is_said_to_be_read_only_and_rebuild_leaves_it_alone(
        read_only_view: tuple[Path, Path]) -> None:
    source, view = read_only_view
    before = _files(source)
    store = runs.RunStore(view)
    with pytest.raises(runs.StoreReadOnlyError) as error:
        store.runs()
    assert error.value.cause == "read-only" and not error.value.rebuildable
    assert "--state" in str(error.value) and "CNN_EXPLORER_STATE" in str(error.value)
    assert "damaged" not in str(error.value).replace("not damaged", "")
    with pytest.raises(runs.StoreReadOnlyError):
        store.rebuild()
    assert _files(source) == before


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (skipped where mounting is not permitted); fill it with :func:`_fill`."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)):
        pytest.skip("tmpfs cannot be mounted here")
    try:
        yield disk
    finally:
        _unmount(disk)


def _fill(disk: Path) -> None:
    """Write a filler file until the disk is full."""
    with open(disk / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 4096)


def test_a_full_disk_is_said_to_be_full_not_damaged(full_disk: Path) -> None:
    store = _store_with_runs(full_disk / "state")
    _fill(full_disk)
    with pytest.raises(runs.StoreFullError) as error:
        for step in range(100_000):  # until the database's pages run out too
            store.log("some-run", "step", 1, step, 0.0, {"train_loss": 1.0, "padding": 2.0})
    assert error.value.cause == "no-space" and not error.value.rebuildable
    assert "full" in str(error.value) and "free some space" in str(error.value)
    before = _files(store.root)
    with pytest.raises(runs.StoreFullError):  # it used to move the healthy database aside and leave 0 bytes
        store.rebuild()
    after = _files(store.root)
    assert after.keys() == before.keys() and after["runs.sqlite"] == before["runs.sqlite"]
    (full_disk / "filler").unlink()
    assert len(runs.RunStore(store.root).runs()) == 2  # space again: every run is there, nothing was damaged


def test_a_damaged_database_on_a_full_disk_is_kept_as_it_was_when_its_rebuild_fails(full_disk: Path) -> None:
    store = _store_with_runs(full_disk / "state")
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    store.db_path.write_bytes(b"these bytes are not an SQLite database" * 100)
    _fill(full_disk)
    before = _files(store.root)
    damaged = runs.RunStore(store.root)
    with pytest.raises(runs.StoreDamagedError):
        damaged.runs()
    with pytest.raises(runs.StoreFullError):
        damaged.rebuild()
    assert _files(store.root) == before  # the original byte for byte, and no 0-byte or half-written file beside it
    (full_disk / "filler").unlink()  # space again: the same rebuild now succeeds
    assert damaged.rebuild() == 2 and len(runs.RunStore(store.root).runs()) == 2
    assert list(store.root.glob("runs.sqlite.broken-*"))


def test_a_rebuild_that_runs_out_of_space_restores_the_original(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same without a tmpfs: the new database's writes fail as SQLite fails on a full disk."""
    store = _store_with_runs(tmp_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    store.db_path.write_bytes(b"garbage" * 1000)
    before = _files(tmp_path)
    connect = runs.RunStore._connect

    def full(self: runs.RunStore, path: Path | None = None) -> sqlite3.Connection:
        if path is not None and path != self.db_path:  # the new database: created, then no room to write it
            path.write_bytes(b"")
            raise sqlite3.OperationalError("database or disk is full")
        return connect(self, path)

    monkeypatch.setattr(runs.RunStore, "_connect", full)
    with pytest.raises(runs.StoreFullError):
        runs.RunStore(tmp_path).rebuild()
    assert _files(tmp_path) == before


def test_a_lock_held_by_another_process_is_said_to_be_busy(tmp_path: Path) -> None:
    store = _store_with_runs(tmp_path)
    before = _files(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         f"db = sqlite3.connect({str(store.db_path)!r}, isolation_level=None)\n"
         "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        busy = runs.RunStore(tmp_path)
        busy.lock_wait = 0.2  # the app waits 30 s
        with pytest.raises(runs.StoreLockedError) as error:
            busy.runs()
        assert error.value.cause == "locked" and not error.value.rebuildable
        assert "try again" in str(error.value)
        with pytest.raises(runs.StoreLockedError):
            busy.rebuild()
        assert _files(tmp_path)["runs.sqlite"] == before["runs.sqlite"]
        assert not list(tmp_path.glob("runs.sqlite.*"))  # nothing moved aside, nothing half-written
    finally:
        holder.communicate("", timeout=30)
    assert len(runs.RunStore(tmp_path).runs()) == 2  # the lock gone, all is well


@pytest.mark.parametrize("damage", ["not a database", "malformed"])
def test_a_really_damaged_file_is_said_to_be_damaged_and_rebuilds(tmp_path: Path, damage: str) -> None:
    store = _store_with_runs(tmp_path)
    for _ in range(200):  # pages enough that damage in the middle leaves the header readable
        store.log("some-run", "step", 1, 0, 0.0, {"train_loss": 1.0})
    _fold_wal(store)
    data = bytearray(store.db_path.read_bytes())
    if damage == "not a database":
        data[:100] = b"\x17" * 100
    else:
        data[4096:len(data) - 4096] = b"\xff" * (len(data) - 8192)
    store.db_path.write_bytes(bytes(data))
    reopened = runs.RunStore(tmp_path)
    with pytest.raises(runs.StoreDamagedError) as error:
        reopened.runs()
        reopened.metrics("some-run", "step")
    assert error.value.cause == "corrupt" and error.value.rebuildable
    assert reopened.rebuild() == 2


def _fold_wal(store: runs.RunStore) -> None:
    """Fold the store's write-ahead log into its file, so that damage written to the file is what SQLite reads."""
    with contextlib.closing(sqlite3.connect(store.db_path, isolation_level=None)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")


@pytest.mark.parametrize(("error", "cause"), [
    (sqlite3.OperationalError("database or disk is full"), "no-space"),
    (OSError(errno.ENOSPC, "No space left on device"), "no-space"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only"),
    (OSError(errno.EACCES, "Permission denied"), "read-only"),
    (sqlite3.OperationalError("database is locked"), "locked"),
    (sqlite3.DatabaseError("file is not a database"), "corrupt"),
    (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
])
def test_each_sqlite_answer_has_its_cause(tmp_path: Path, error: BaseException, cause: str) -> None:
    typed = store_errors.unreadable(error, tmp_path / "runs.sqlite")
    assert typed.cause == cause and typed.rebuildable == (cause == "corrupt")
    assert isinstance(typed, runs.StoreUnreadableError)


@pytest.mark.parametrize("cause", ["no-space", "read-only", "locked", "corrupt"])
def test_the_page_offers_rebuild_only_for_a_damaged_database(monkeypatch: pytest.MonkeyPatch, cause: str) -> None:
    from explorer import services

    error = store_errors.ERRORS[cause](services.state_dir() / "runs.sqlite", "what SQLite said")

    def check() -> None:
        raise error

    monkeypatch.setattr(services, "check_store", check)
    at = open_page("training")
    shown = " ".join(e.value.replace("\\", "") for e in at.error)
    assert "runs.sqlite" in shown
    assert ("store-rebuild" in [button.key for button in at.button]) == (cause == "corrupt")
    remedy = {"no-space": "free some space", "read-only": "CNN_EXPLORER_STATE", "locked": "try again",
              "corrupt": "Rebuild"}[cause]
    assert remedy in shown, shown
    assert "state folder state folder" not in shown and "--state state folder" not in shown, shown


def test_the_rebuild_message_names_the_state_folder_once() -> None:
    """Issue 19, defect 9: the page showed "in the state folder state folder … `--state state folder rebuild`"
    (the folder's path is shown as "state folder", and the message put it after those very words)."""
    from explorer import services

    store = runs.RunStore(services.state_dir())
    error = runs.StoreDamagedError(store.db_path, "file is not a database", 2)
    shown = services.public_text(str(error))
    assert "state folder state folder" not in shown and "--state state folder" not in shown, shown
    assert "state folder/runs.sqlite" in shown and "`python -m core.runs rebuild`" in shown, shown
    for cause in ("no-space", "read-only", "locked"):
        shown = services.public_text(str(store_errors.ERRORS[cause](store.db_path, "what SQLite said")))
        assert "state folder state folder" not in shown and "--state state folder" not in shown, shown


def test_the_page_on_a_read_only_state_folder_says_so_without_a_rebuild_button(
        read_only_view: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    source, view = read_only_view
    before = _files(source)
    store = runs.RunStore(view)
    monkeypatch.setattr(services, "run_store", lambda: store)
    at = open_page("training")
    shown = " ".join(e.value.replace("\\", "") for e in at.error)
    assert "read-only" in shown and "CNN_EXPLORER_STATE" in shown, shown
    assert "store-rebuild" not in [button.key for button in at.button]
    assert _files(source) == before
