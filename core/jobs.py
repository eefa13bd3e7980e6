"""Background training jobs, shared by every browser session.

One worker thread trains one job at a time (the device is the bottleneck); later
jobs wait in a queue and know their place. The worker never touches the UI: it
writes into the run store and into a small in-memory snapshot that pages poll.
A job that crashes marks its run failed; the worker goes on with the next one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from core import data as datasets
from core import training
from core.errors import ExplorerError
from core.runs import RunStore, StoreCallback

log = logging.getLogger(__name__)
STEP_POINTS = 2000  # the live curve keeps at most this many per-batch points


@dataclass
class Live:
    """What a page needs to draw a running job; updated by the worker under the manager's lock."""

    run_id: str
    status: str = "queued"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    elapsed: float = 0.0
    eta: float = float("nan")
    images_per_second: float = 0.0
    steps: list[dict[str, float]] = field(default_factory=list)
    epochs_done: list[dict[str, float]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class _LiveCallback:
    """Trainer subscriber that copies progress into a Live snapshot."""

    def __init__(self, manager: JobManager, live: Live) -> None:
        self.manager = manager
        self.live = live

    def _copy(self, progress: training.Progress) -> None:
        with self.manager.lock:
            self.live.status = progress.status
            self.live.epoch, self.live.epochs = progress.epoch, progress.config.epochs
            self.live.step, self.live.total_steps = progress.step, progress.total_steps
            self.live.elapsed, self.live.eta = progress.elapsed, progress.eta_seconds
            self.live.images_per_second = progress.images_per_second
            self.live.messages = list(progress.messages)

    def on_fit_start(self, progress: training.Progress) -> None:
        self._copy(progress)

    def on_batch_end(self, progress: training.Progress) -> None:
        self._copy(progress)
        with self.manager.lock:
            self.live.steps.append({"step": progress.step, "train_loss": progress.train_loss,
                                    "train_acc": progress.train_acc, "lr": progress.lr})
            del self.live.steps[:-STEP_POINTS]

    def on_epoch_end(self, progress: training.Progress) -> None:
        self._copy(progress)
        with self.manager.lock:
            self.live.epochs_done = [row.as_dict() for row in progress.history]

    def on_fit_end(self, progress: training.Progress) -> None:
        self._copy(progress)


class JobManager:
    """Queue and run training jobs in one background worker thread."""

    def __init__(self, store: RunStore, load_data: Callable[[str], datasets.InMemoryData] = datasets.load) -> None:
        self.store = store
        self.load_data = load_data
        self.lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, training.TrainConfig]] = queue.Queue()
        self._waiting: list[str] = []
        self._live: dict[str, Live] = {}
        self._stops: dict[str, threading.Event] = {}
        self._worker = threading.Thread(target=self._work, name="training-worker", daemon=True)
        self._worker.start()

    def submit(self, config: training.TrainConfig) -> str:
        """Validate and queue a run; return its id at once."""
        config.validate()
        run_id = self.store.create_run(config, status="queued")
        with self.lock:
            self._live[run_id] = Live(run_id, epochs=config.epochs)
            self._stops[run_id] = threading.Event()
            self._waiting.append(run_id)
        self._queue.put((run_id, config))
        return run_id

    def stop(self, run_id: str) -> None:
        """Stop a running job within one batch, or cancel a queued one."""
        with self.lock:
            event = self._stops.get(run_id)
            if event is not None:
                event.set()

    def position(self, run_id: str) -> int | None:
        """1 for the next job to start, 2 after it…; None if not waiting."""
        with self.lock:
            return self._waiting.index(run_id) + 1 if run_id in self._waiting else None

    def active(self) -> list[str]:
        """Ids of jobs queued or running in this process."""
        with self.lock:
            return [run_id for run_id, live in self._live.items() if live.status in ("queued", "running")]

    def snapshot(self, run_id: str) -> Live | None:
        """A copy of the live progress of a job of this process (None for runs of other processes)."""
        with self.lock:
            live = self._live.get(run_id)
            if live is None:
                return None
            return Live(**{**live.__dict__, "steps": list(live.steps), "epochs_done": list(live.epochs_done),
                           "messages": list(live.messages)})

    def wait(self, run_id: str, timeout: float = 600) -> str:
        """Block until the job ends (for tests and scripts); return its final status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snapshot = self.snapshot(run_id)
            if snapshot and snapshot.status not in ("queued", "running"):
                return snapshot.status
            time.sleep(0.05)
        raise TimeoutError(f"run {run_id} still active after {timeout} s")

    def _work(self) -> None:
        while True:
            run_id, config = self._queue.get()
            with self.lock:
                self._waiting.remove(run_id)
                stop = self._stops[run_id]
                live = self._live[run_id]
            if stop.is_set():  # cancelled while queued
                self._finish(live, "stopped", "Cancelled before it started.")
                continue
            try:
                self._run(run_id, config, live, stop)
            except Exception as error:  # noqa: BLE001 (a crashed job must never kill the worker)
                message = str(error) if isinstance(error, ExplorerError) else f"{type(error).__name__}: {error}"
                log.error("run %s failed:\n%s", run_id, traceback.format_exc())
                self._finish(live, "failed", message)

    def _run(self, run_id: str, config: training.TrainConfig, live: Live, stop: threading.Event) -> None:
        data = self.load_data(config.dataset)
        callbacks = [StoreCallback(self.store, run_id), _LiveCallback(self, live)]
        result = training.fit(config, data, callbacks, stop=stop, checkpoint_dir=self.store.checkpoint_dir(run_id),
                              run_id=run_id)
        with self.lock:
            live.status = result.progress.status

    def _finish(self, live: Live, status: str, message: str) -> None:
        self.store.update_run(live.run_id, status=status, message=message)  # the store first: pollers trust it then
        with self.lock:
            live.status = status
            live.messages.append(message)
