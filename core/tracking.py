"""What ties a training run to the run store, above both: the store callback (metrics, progress, status), the stop
flag a trainer checks every batch, and the heartbeat thread. Every write carries the run's claim (core.claims)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from core.claims import Claim, StaleClaimError
from core.errors import ExplorerError
from core.runs.store import Store
from core.training import Progress

log = logging.getLogger(__name__)


class StoreCallback:
    """Trainer subscriber that writes metrics, progress (with a heartbeat) and status into the run store (the
    trainer writes the checkpoints, see core.checkpoints). Each write carries the claim's ``token`` and waits out
    a locked database (core.claims); a lost claim raises StaleClaimError out of the trainer."""

    def __init__(self, store: Store, run_id: str, token: int | None = None) -> None:
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
        self.claim.update(best_val_acc=progress.best_val_acc, elapsed=progress.elapsed, device=progress.device,
                          progress=self.progress(progress))  # the device: the threads it trains on now

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

    def __init__(self, store: Store | None, run_id: str | None, every: float = 0.25,
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

    def __init__(self, store: Store, run_id: str, interval: float | None = None, token: int | None = None) -> None:
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

