"""A training worker: claims queued runs from the run store and trains them, one at a time.

    python -m core.worker [--state DIR] [--device auto|cpu|cuda|cuda:N] [--once] [--threads N [--shared-threads M]]

The app starts its own workers (one per GPU, one on a CPU-only machine); start more by hand for
another GPU, or to train the app's queue on a machine without the app. Several workers may serve one
store: each queued run is claimed by exactly one. While it trains, the worker sends heartbeats (a
run whose heartbeat goes stale reads as interrupted) and polls the store for a stop request.
With ``--threads N --shared-threads M`` (as the app starts CPU workers) a run trained by one process on the
CPU takes N threads while the app served no page for a few seconds and M otherwise (core.activity).
SIGTERM or Ctrl-C stops the current run after its batch (its checkpoint is saved), then the worker exits.
A run that fails is recorded as failed; if even that cannot be recorded (disk full, damaged database),
the error is logged and the worker goes on with the next run. Every write carries the claim's token
(core.claims): a worker that was paused while its run was resumed elsewhere stops that run at once and
writes nothing more to it. Never imports streamlit.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from core import data as datasets
from core import devices, training
from core.activity import PageActivity, ThreadShare
from core.claims import Claim, StaleClaimError
from core.errors import ExplorerError
from core.runs import Heartbeat, RunRecord, RunStore, StopFlag, Store, StoreCallback
from core.training import lr_sweep

log = logging.getLogger("core.worker")
# What a run stopped by its worker (not by its user) says; the checkpoint of its last epoch is kept.
RESUME = "Resume continues from its last checkpoint."
SERVER_GONE = f"Stopped: the app server that started its worker went away (it stopped or crashed). {RESUME}"
SERVER_STOPPED = f"Stopped: the app server that started its worker was shut down. {RESUME}"
SIGNALLED = f"Stopped: its worker was told to exit (SIGTERM or Ctrl-C). {RESUME}"


class Worker:
    """Takes queued runs from ``store`` and trains them on ``device``."""

    def __init__(self, store: Store, device: str = "auto", name: str | None = None,
                 load_data: Callable[[str], Any] = datasets.load, parent: int | None = None,
                 threads: tuple[int, int] | None = None) -> None:
        self.store = store
        self.device = device
        self.name = name or f"worker-{socket.gethostname()}-{os.getpid()}"
        self.load_data = load_data
        self.parent = parent  # exit (stopping the current run) once this process is no longer our parent
        # (maximum, shared) CPU threads: a CPU run takes the maximum while no page is served (core.activity)
        self.threads = threads
        self.share: ThreadShare | None = None  # the current run's, while a CPU run trains with (maximum, shared)
        self.exiting = False
        self._current: threading.Event | None = None

    def should_exit(self) -> bool:
        """A signal arrived, or the process that started this worker is gone."""
        return self.exit_reason() is not None

    def exit_reason(self) -> str | None:
        """Why this worker must stop its run and exit, as the run will say it; None while it may go on."""
        if self.parent is not None and os.getppid() != self.parent:
            return SERVER_GONE
        if self.exiting:
            return SERVER_STOPPED if self.parent is not None else SIGNALLED
        return None

    def request_exit(self, *_: object) -> None:
        """Stop the current run after its batch and take no other (the SIGTERM / Ctrl-C handler)."""
        self.exiting = True
        current = self._current
        if isinstance(current, StopFlag):
            current.stop_for(self.exit_reason())
        elif current is not None:
            current.set()

    def take_one(self) -> bool:
        """Claim the oldest queued run and train it; False if none was waiting (or the store cannot be read)."""
        try:
            run = self.store.claim(self.name)
        except ExplorerError as error:
            log.error("%s cannot claim a run: %s", self.name, error)
            return False
        if run is None:
            return False
        log.info("%s trains run %s", self.name, run.id)
        self.train(run)
        return True

    def serve(self, once: bool = False, poll: float = 0.5) -> None:
        """Take runs until told to exit (or, with ``once``, after one run or none)."""
        while not self.should_exit():
            took = self.take_one()
            if once:
                return
            if not took:
                time.sleep(poll)

    def train(self, run: RunRecord, shard: tuple[int, int] = (0, 1), wrap: Any = None,
              stop: threading.Event | None = None) -> None:
        """Train one claimed run; whatever goes wrong is recorded (or, failing that, logged), never raised.

        ``shard``, ``wrap`` and ``stop`` serve a run trained by several processes (rank 0 trains it here).
        """
        run_id = run.id
        claim = Claim(self.store, run_id, run.generation)  # every write below carries its token
        self._current = stop = stop if stop is not None else StopFlag(self.store, run_id, also=self.exit_reason,
                                                                      token=claim.token)
        try:
            with Heartbeat(self.store, run_id, token=claim.token):
                config = self._config(run)
                data = self.load_data(config.dataset)
                folder = self.store.checkpoint_dir(run_id)
                resume_from = None
                if run.resume:
                    if self.store.checkpoints(run_id).get("last"):
                        resume_from = folder  # model, optimiser, schedule, RNGs and counters continue
                    else:  # stopped before its first checkpoint: it starts again, and so do its curves
                        claim.forget_metrics_after(-1)
                callbacks: list[Any] = [StoreCallback(self.store, run_id, claim.token)]
                if self.threads and shard == (0, 1) and devices.pick_device(config.device).type == "cpu":
                    self.share = ThreadShare(PageActivity(self.store.root), *self.threads)
                    callbacks.append(self.share)
                if config.lr_find:  # a learning-rate range test, not a training run
                    lr_sweep.run(config, data, claim, stop)
                else:
                    training.fit(config, data, callbacks, stop=stop, run_id=run_id, checkpoint_dir=folder,
                                 resume_from=resume_from, shard=shard, wrap=wrap, fence=claim.check)
        except StaleClaimError as error:  # another trainer holds the run now: leave it all to that one
            log.warning("%s stops run %s without writing anything more: %s", self.name, run_id, error)
        except Exception as error:  # noqa: BLE001 (a run that crashes must never take the worker down)
            message = str(error) if isinstance(error, ExplorerError) else f"{type(error).__name__}: {error}"
            log.error("run %s failed:\n%s", run_id, traceback.format_exc())
            try:
                claim.update(status="failed", message=message)
            except Exception:  # noqa: BLE001 (an error while handling an error: log it, take the next run)
                log.exception("could not record that run %s failed; it will read as interrupted", run_id)
        finally:
            self._current = None
            self.share = None

    def _config(self, run: RunRecord) -> training.TrainConfig:
        """The run's config, on this worker's device when the run leaves the choice to it."""
        config = run.train_config()
        if self.device != "auto" and config.device == "auto":
            device: Any = self.device.split(":")[0]  # checked by validate() below
            config = dataclasses.replace(config, device=device)
        return config.validate()


def main(argv: list[str] | None = None) -> int:
    """``python -m core.worker``: serve the queue of a run store until stopped."""
    parser = argparse.ArgumentParser(prog="python -m core.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, help="state folder (default: $CNN_EXPLORER_STATE or ./state)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N: where runs that leave the choice to the worker train")
    parser.add_argument("--once", action="store_true", help="train at most one queued run, then exit")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks at an empty queue")
    parser.add_argument("--name", help="how runs name their trainer (default worker-HOST-PID)")
    parser.add_argument("--parent", type=int, help="exit (stopping the current run) when this process is gone")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for PyTorch (default: PyTorch's own choice); with --shared-threads, the "
                             "most a run takes, while no page of the app was served for a few seconds")
    parser.add_argument("--shared-threads", type=int,
                        help="CPU threads of a run while the app serves pages (default: --threads, always)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    threads = None
    if args.threads:
        maximum = max(args.threads, 1)
        shared = min(max(args.shared_threads or maximum, 1), maximum)
        torch.set_num_threads(shared)  # until a run finds the server idle
        threads = (maximum, shared) if shared < maximum else None
    if args.device.startswith("cuda:"):
        torch.cuda.set_device(int(args.device.split(":")[1]))
    worker = Worker(RunStore(args.state), args.device, args.name, parent=args.parent, threads=threads)

    def handle(signum: int, frame: FrameType | None) -> None:
        worker.request_exit()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    log.info("%s serves %s on %s", worker.name, worker.store.root, args.device)
    worker.serve(once=args.once, poll=args.poll)
    return 0


if __name__ == "__main__":
    sys.exit(main())
