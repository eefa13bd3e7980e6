"""Page activity: the web server says when it is serving a page, and a CPU worker trains on every core meanwhile
idle.

The server marks each script run (``PageActivity.mark``): it sets the modification time of one small file,
``<state>/page-activity``, at most once a ``every`` seconds, so a rerun costs a clock read and, now and then, one
``utime`` (never a database write). A CPU training run subscribes ``ThreadShare``: between batches, at most every
``CHECK_EVERY`` seconds, it reads the file's age and trains on its worker's maximum threads while no page was
served for ``QUIET_SECONDS``, on the shared count otherwise (the cores the server leaves it when it computes too:
``devices.inference_threads``). PyTorch's thread count is per OS thread, so the subscriber sets it from the
training thread itself (the trainer calls it there). Never imports streamlit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from core import paths

log = logging.getLogger(__name__)

FILE_NAME = "page-activity"
MARK_EVERY = 1.0  # seconds: the server touches the file at most this often
CHECK_EVERY = 0.5  # seconds: a training run reads the file's age at most this often
QUIET_SECONDS = 5.0  # no page served for this long: the worker may take every core it may use
SETTLE_SECONDS = 1.0  # after the first mark of a busy spell, runs are back on their shared threads (CHECK_EVERY
# and a batch; a batch longer than half a second on a CPU run delays it by the rest of that batch)
SHARE_ENV = paths.SHARE_ENV  # "0": workers keep the shared count (the policy before issue 23)


def share_enabled() -> bool:
    """Whether workers take the idle cores (``$CNN_EXPLORER_SHARE_IDLE_CORES``, on unless "0", "false" or "no")."""
    return paths.share_idle_cores()


def path_in(state: Path) -> Path:
    """The marker file of the state folder ``state``."""
    return Path(state) / FILE_NAME


class PageActivity:
    """The marker of one state folder: written by the server (``mark``), read by workers (``age``)."""

    def __init__(self, state: Path, every: float = MARK_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path_in(state)
        self.every = every
        self.clock = clock  # rate-limits the writes; the file itself holds wall-clock time (other processes read it)
        self._marked: float | None = None
        self._busy_since = float("-inf")  # this process's clock when its current spell of marks began

    def mark(self) -> bool:
        """Record that a page is being served now, unless this process did within ``every`` seconds; whether it
        wrote. A folder that cannot be written is logged, never raised (a page must not fail for it)."""
        now = self.clock()
        if self._marked is not None and now - self._marked < self.every:
            return False
        if self._marked is None or now - self._marked >= QUIET_SECONDS:
            self._busy_since = now  # workers may hold every core until they read this mark
        self._marked = now
        try:
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch()
        except OSError as error:
            log.warning("cannot mark page activity in %s: %s", self.path, error)
            return False
        return True

    def settle(self, seconds: float = SETTLE_SECONDS, sleep: Callable[[float], None] = time.sleep) -> float:
        """Mark, then wait until ``seconds`` have passed since this spell of marks began (workers have had
        time to go back to their shared threads); the seconds waited."""
        self.mark()
        wait = max(self._busy_since + seconds - self.clock(), 0.0)
        if wait > 0:
            sleep(wait)
        return wait

    def age(self) -> float:
        """Seconds since a page was last marked: infinity if never (or unreadable), 0 if the mark lies in the
        future (the wall clock was set back: read as busy, the side that leaves the server its cores)."""
        try:
            marked = self.path.stat().st_mtime
        except OSError:
            return float("inf")
        return max(time.time() - marked, 0.0)


def threads_now(maximum: int, shared: int, page_age: float, quiet: float = QUIET_SECONDS) -> int:
    """A CPU run's threads: ``maximum`` while no page was served for ``quiet`` seconds, else ``shared``; at
    least 1, and never more than ``maximum``."""
    maximum = max(maximum, 1)
    return maximum if page_age >= quiet else min(max(shared, 1), maximum)


def worker_threads(cores: int, workers: int) -> tuple[int, int]:
    """(maximum, shared) threads for each of ``workers`` CPU workers on ``cores`` cores: all the cores between
    them while no page is served, one left to the web server otherwise; at least 1 each."""
    workers = max(workers, 1)
    return max(cores // workers, 1), max((cores - 1) // workers, 1)


class ThreadShare:
    """Trainer subscriber of a CPU run: switches the training thread between ``maximum`` and ``shared`` threads
    as pages are served (read at most every ``check_every`` seconds, between batches); ``changes`` records
    each switch as (seconds into the run, threads) and the log says it."""

    def __init__(self, activity: PageActivity, maximum: int, shared: int, check_every: float = CHECK_EVERY,
                 quiet: float = QUIET_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.activity = activity
        self.maximum = maximum
        self.shared = shared
        self.check_every = check_every
        self.quiet = quiet
        self.clock = clock
        self.threads: int | None = None  # the count set last (None before the run starts)
        self.changes: list[tuple[float, int]] = []
        self._started = clock()
        self._checked = float("-inf")

    def on_step(self) -> None:
        """Between two batches (called by the trainer every batch): set the threads now right, if it is time."""
        now = self.clock()
        if now - self._checked >= self.check_every:
            self._checked = now
            self.apply(now)

    def on_fit_start(self, progress: object) -> None:
        """Before the first batch: start with the right count."""
        self._checked = self.clock()
        self.apply(self._checked)

    def on_epoch_start(self, progress: object) -> None:
        """Validation at an epoch's end has no steps: look again before the next epoch."""
        self.on_step()

    def apply(self, now: float) -> int:
        """Set this thread's PyTorch threads by the marker's age; the count."""
        threads = threads_now(self.maximum, self.shared, self.activity.age(), self.quiet)
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
            self.changes.append((now - self._started, threads))
            log.info("training on %d thread%s (%s)", threads, "s" * (threads != 1),
                     "no page served lately" if threads == self.maximum else "pages are being served")
        return threads
