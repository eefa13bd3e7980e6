"""Why the run database cannot be used, told apart: no space, read-only, locked, damaged.

SQLite words very different situations alike ("database or disk is full", "attempt to write a readonly
database", "database is locked", "file is not a database"), and only the last is damage that rebuilding from
the checkpoints repairs. Each cause is its own ``StoreUnreadableError`` subclass with its own remedy; only
``StoreDamagedError`` is ``rebuildable``. Messages name the database by its path and never write a path after
the words "state folder" (the app shows the state folder's path as "state folder").
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from core.claims import StoreBusyError
from core.errors import ExplorerError

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26
NO_SPACE, READ_ONLY, LOCKED, CORRUPT, UNKNOWN = "no-space", "read-only", "locked", "corrupt", "unknown"
CHOOSE_ANOTHER = "or choose another state folder (`--state DIR`, or the CNN_EXPLORER_STATE environment variable)"


class StoreUnreadableError(ExplorerError):
    """The run database cannot be used; ``cause`` says why, ``rebuildable`` whether rebuilding it is the remedy."""

    cause: ClassVar[str] = UNKNOWN
    rebuildable: ClassVar[bool] = False

    def __init__(self, db_path: Path, reason: str, checkpoint_runs: int = 0) -> None:
        self.path = Path(db_path)
        self.reason = reason
        self.checkpoint_runs = checkpoint_runs
        super().__init__(self.explain())

    def explain(self) -> str:
        """The message: what happened and what to do."""
        return (f"The run database {self.path} cannot be opened or read: {self.reason}. Nothing was changed: check "
                "the disk and the permissions of the state folder, then try again. If the file is damaged, `python "
                "-m core.runs rebuild` (with the same state folder) rebuilds it from the checkpoints and keeps it "
                f"beside the new one as {self.path.name}.broken-<time>.")


class StoreDamagedError(StoreUnreadableError):
    """The database file is damaged, empty or missing (while checkpoints exist): rebuild it from the sidecars."""

    cause = CORRUPT
    rebuildable = True

    def explain(self) -> str:
        found = (f"from the {self.checkpoint_runs} run folders with checkpoints on disk" if self.checkpoint_runs
                 else "(no checkpoints are on disk, so it starts empty)")
        return (f"The run database {self.path} cannot be read: {self.reason}. Rebuild it {found}: use the Rebuild "
                "button, or run `python -m core.runs rebuild` with the same state folder. The unreadable file is "
                f"kept beside it as {self.path.name}.broken-<time>.")


class StoreFullError(StoreUnreadableError):
    """The disk that holds the state folder is full: nothing is damaged."""

    cause = NO_SPACE

    def explain(self) -> str:
        return (f"The run database {self.path} cannot be written: the disk that holds it is full ({self.reason}). "
                "It is not damaged and nothing saved is lost: free some space on that disk (old runs' checkpoints, "
                f"uploads, logs), then try again, {CHOOSE_ANOTHER}.")


class StoreReadOnlyError(StoreUnreadableError):
    """The state folder or the database file cannot be written (a read-only disk, permissions)."""

    cause = READ_ONLY

    def explain(self) -> str:
        return (f"The run database {self.path} cannot be written: its folder or file is read-only, or its "
                f"permissions forbid this server's user to write there ({self.reason}). It is not damaged: fix the "
                f"permissions (or remount the disk read-write), {CHOOSE_ANOTHER}.")


class StoreLockedError(StoreUnreadableError, StoreBusyError):
    """Another process has held the database's write lock for longer than the store waits (a StoreBusyError too:
    a trainer's writes try again, up to their bound, see core.claims)."""

    cause = LOCKED

    def explain(self) -> str:
        return (f"The run database {self.path} is busy: another process has held its lock for too long "
                f"({self.reason}). It is not damaged: wait a moment and try again (a long command, or a stuck "
                "process that holds the database open, may be the cause).")


ERRORS: dict[str, type[StoreUnreadableError]] = {
    NO_SPACE: StoreFullError, READ_ONLY: StoreReadOnlyError, LOCKED: StoreLockedError, CORRUPT: StoreDamagedError,
    UNKNOWN: StoreUnreadableError}
_ERRNO = {errno.ENOSPC: NO_SPACE, errno.EDQUOT: NO_SPACE, errno.EROFS: READ_ONLY, errno.EACCES: READ_ONLY,
          errno.EPERM: READ_ONLY}


def classify(error: BaseException, folder: Path) -> str:
    """The cause of a failed database or file operation in ``folder``: no-space, read-only, locked, corrupt or
    unknown. An ambiguous SQLite answer ("unable to open", "disk I/O error") is settled by writing a probe file."""
    if isinstance(error, OSError):
        return _ERRNO.get(error.errno or 0, UNKNOWN)
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error).lower()
    if primary == SQLITE_FULL or "database or disk is full" in text:
        return NO_SPACE
    if primary in (SQLITE_READONLY, SQLITE_PERM) or "readonly database" in text:
        return READ_ONLY
    if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in text or "table is locked" in text:
        return LOCKED
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB) or "file is not a database" in text or "malformed" in text:
        return CORRUPT
    if primary in (SQLITE_CANTOPEN, SQLITE_IOERR) or "unable to open" in text or "disk i/o error" in text:
        return probe(folder)
    return UNKNOWN


def probe(folder: Path, size: int = 64 * 1024) -> str:
    """Write (and remove) a small file in ``folder``: the cause its failure shows, or unknown if it succeeds."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return _ERRNO.get(error.errno or 0, UNKNOWN)
    return UNKNOWN


def unreadable(error: BaseException, db_path: Path, checkpoint_runs: int = 0) -> StoreUnreadableError:
    """The typed error for ``error`` (an OSError or sqlite3.Error) raised by the database at ``db_path``."""
    cause = classify(error, Path(db_path).parent)
    return ERRORS[cause](db_path, str(error), checkpoint_runs)

