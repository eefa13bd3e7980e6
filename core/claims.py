"""A trainer's hold on a run: a fencing token on every write, and patience with a locked database.

**Fencing.** Every claim of a run (a worker taking it from the queue, a resume queueing it again, ``core.train
--resume`` attaching to it) raises the run's *generation* in the store, and the trainer that claimed it keeps
the number it got: its token. Every write that trainer makes (heartbeat, progress, metrics, status, and each
checkpoint file, checked right before it is written) carries the token, and the store refuses it once the run's
generation has moved on (:class:`StaleClaimError`). A heartbeat alone cannot make a claim exclusive: a process
paused past the heartbeat timeout (SIGSTOP, a long pause of its machine) wakes up still believing it owns its
run, after the run was resumed by another worker. With the token it finds out at its next write or stop check,
and stops at once without writing anything more.

**Patience.** Another process may hold the database's write lock for a while (a backup, another tool's long
transaction). A trainer's write then waits and tries again, with growing pauses, for up to the store's
``busy_timeout`` seconds (``$CNN_EXPLORER_BUSY_TIMEOUT``, default 120) before its run fails with a
:class:`StoreBusyError` that names that bound. The app's own writes (stop, delete, rename) are not fenced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from core.errors import ExplorerError

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_PAUSE = 0.05  # seconds before the first retry of a write to a locked database; doubled after each
LONGEST_PAUSE = 2.0


class StaleClaimError(ExplorerError):
    """A trainer's write refused: another trainer has claimed the run since (or the run was deleted)."""


class StoreBusyError(ExplorerError):
    """The run database stayed locked by another process for longer than a write may wait."""


def patiently(call: Callable[[], T], bound: float, what: str, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, tried again with growing pauses while it raises StoreBusyError, for up to ``bound`` seconds;
    then a StoreBusyError that names the bound and ``what`` was being written."""
    deadline = time.monotonic() + bound
    pause = FIRST_PAUSE
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except StoreBusyError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreBusyError(
                    f"The run database stayed locked by another process for more than {bound:g} s, the bound set "
                    f"by $CNN_EXPLORER_BUSY_TIMEOUT, while writing {what} ({attempts} attempts)") from None
            if attempts == 1:
                log.warning("the run database is locked while writing %s; trying again for up to %g s", what, bound)
            sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_PAUSE)


class Claim:
    """One trainer's hold on one run: its writes, each fenced by the claim's token and retried while the
    database is locked (up to ``store.busy_timeout``).

    ``store`` is a RunStore, or the Ray executor's proxy of one (anything whose write methods take ``token``).
    A ``token`` of None writes unfenced (a run trained in-process without a claim, as some tests do).
    """

    def __init__(self, store: Any, run_id: str, token: int | None) -> None:
        self.store = store
        self.run_id = run_id
        self.token = token
        self.bound = float(store.busy_timeout)

    def _patiently(self, method: str, what: str, *args: Any, **kwargs: Any) -> Any:
        call = getattr(self.store, method)
        return patiently(lambda: call(self.run_id, *args, token=self.token, **kwargs), self.bound,
                         f"{what} of run {self.run_id}")

    def heartbeat(self) -> None:
        """The trainer is alive."""
        self._patiently("heartbeat", "a heartbeat")

    def update(self, **fields: Any) -> None:
        """Set columns of the run (``RunStore.update_run``)."""
        self._patiently("update_run", "the state", **fields)

    def log(self, kind: str, epoch: int, step: int, elapsed: float, values: dict[str, float]) -> None:
        """Append one row of metrics."""
        self._patiently("log", f"{kind} metrics", kind, epoch, step, elapsed, values)

    def forget_metrics_after(self, step: int) -> None:
        """Drop the run's metrics logged after ``step`` (a resumed run logs them again)."""
        self._patiently("forget_metrics_after", "the metrics to log again", step)

    def stop_requested(self) -> bool:
        """Has someone asked the run to stop? (A StaleClaimError if the claim is lost.) One attempt: the stop
        flag that asks tolerates a busy store and asks again soon."""
        return bool(self.store.stop_requested(self.run_id, token=self.token))

    def check(self) -> None:
        """Raise StaleClaimError unless this claim still holds the run (called right before a checkpoint write)."""
        if self.token is not None:
            self._patiently("check_claim", "a checkpoint")
