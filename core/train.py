"""Train from the command line, headless, into the same run store the app uses.

    python -m core.train --arch lenet5 --dataset mnist --epochs 8
    python -m core.train --preset Fast --dataset digits
    python -m core.train --resume RUN_ID      # continue a stopped, failed or interrupted run
    torchrun --standalone --nproc-per-node 2 -m core.train --arch lenet5 --dataset digits --epochs 2

Under torchrun every process trains on its share of each epoch (DistributedDataParallel:
NCCL on GPUs, gloo on CPUs); only rank 0 writes to the run store, sends heartbeats and prints.
A rank that hangs ends the run after ``--dist-timeout`` seconds (default 300, or
``$CNN_EXPLORER_DIST_TIMEOUT``), not the 30 minutes of PyTorch's default.
SIGTERM is handled like Ctrl-C: the run stops after the current batch and keeps a checkpoint;
a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from core import data as datasets
from core import models, paths, training
from core.claims import Claim, StaleClaimError
from core.errors import ExplorerError
from core.runs import Heartbeat, RunStore, StopFlag, StoreCallback


class ProgressBar:
    """A one-line console progress bar (trainer subscriber)."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self._stream = stream
        self.width = width

    @property
    def stream(self):
        """The output stream (standard error unless given), looked up when printing."""
        return self._stream or sys.stderr

    def on_fit_start(self, progress: training.Progress) -> None:
        print(f"training {progress.config.arch} on {progress.config.dataset} ({len(progress.classes)} classes, "
              f"{progress.input_size}×{progress.input_size}) on {progress.device}", file=self.stream)
        for message in progress.messages:
            print(f"note: {message}", file=self.stream)

    def on_batch_end(self, progress: training.Progress) -> None:
        done = progress.step / progress.total_steps if progress.total_steps else 0
        bar = "=" * int(done * self.width)
        eta = f"{progress.eta_seconds:5.0f}s" if progress.eta_seconds == progress.eta_seconds else "    ?"
        print(f"\repoch {progress.epoch}/{progress.config.epochs} [{bar:<{self.width}}] {done:4.0%} "
              f"loss {progress.train_loss:.4f} acc {progress.train_acc:6.2%} {progress.images_per_second:7.0f} img/s "
              f"ETA {eta}", end="", file=self.stream, flush=True)

    def on_epoch_end(self, progress: training.Progress) -> None:
        last = progress.history[-1]
        print(f"\repoch {progress.epoch}/{progress.config.epochs}: train loss {last.train_loss:.4f} "
              f"acc {last.train_acc:.2%} · val loss {last.val_loss:.4f} acc {last.val_acc:.2%} · "
              f"{progress.elapsed:.1f} s" + " " * 20, file=self.stream)

    def on_fit_end(self, progress: training.Progress) -> None:
        for message in progress.messages:
            print(f"note: {message}", file=self.stream)
        test = progress.test
        shown = (f", test accuracy {test.evaluation.accuracy:.2%} ({test.checkpoint} weights, epoch {test.epoch})"
                 if test else "")
        print(f"{progress.status} in {progress.elapsed:.1f} s{shown}", file=self.stream)


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, training.TrainConfig]:
    """Command-line arguments → (namespace, validated TrainConfig)."""
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=list(training.PRESETS), help="start from a preset; flags override it")
    parser.add_argument("--arch", choices=models.names())
    parser.add_argument("--dataset", choices=datasets.IN_MEMORY)
    for config_field in dataclasses.fields(training.TrainConfig):
        if config_field.name in ("arch", "dataset"):
            continue
        flag = "--" + config_field.name.replace("_", "-")
        if config_field.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float}.get(str(config_field.type), str)
            parser.add_argument(flag, type=kind, default=None)
    parser.add_argument("--data-root", type=Path, help="where data sets live (default: the state directory's data/)")
    parser.add_argument("--state-dir", type=Path, help="run store location (default: $CNN_EXPLORER_STATE or ./state)")
    parser.add_argument("--no-download", action="store_true", help="never try to download a data set")
    parser.add_argument("--dist-timeout", type=float,
                        default=paths.dist_timeout(),
                        help="seconds a distributed run waits for a silent rank before it fails (default 300)")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue a stopped, failed or interrupted run from its "
                                                            "last checkpoint, with its own settings")
    args = parser.parse_args(argv)
    if args.resume:
        try:
            run = _store(args).run(args.resume)
            config = run.train_config()
        except ExplorerError as error:
            parser.error(str(error))
        if run.is_active:
            parser.error(f"Run {args.resume} is {run.status}: stop it first.")
        return args, config
    overrides = {k: v for k, v in vars(args).items()
                 if k in {f.name for f in dataclasses.fields(training.TrainConfig)} and v is not None}
    base = dict(training.PRESETS[args.preset]) if args.preset else {}
    try:
        config = training.TrainConfig(**{**base, **overrides}).validate()
    except ExplorerError as error:
        parser.error(str(error))
    return args, config


def _stop_on_signals(stop: StopFlag) -> None:
    """SIGTERM and a first Ctrl-C stop the run after its batch (checkpoint kept); a second Ctrl-C aborts."""

    def handle(signum: int, frame: object) -> None:
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _store(args: argparse.Namespace) -> RunStore:
    return RunStore(args.state_dir) if args.state_dir else RunStore()


def _claim(store: RunStore, args: argparse.Namespace, config: training.TrainConfig) -> Claim:
    """The run this process trains (a new one, or the one ``--resume`` names), claimed: its token fences every
    write (core.claims)."""
    trainer = f"cli-{socket.gethostname()}-{os.getpid()}"
    if args.resume:
        return Claim(store, args.resume, store.attach(args.resume, trainer))
    run_id = store.create_run(config, status="running", worker=trainer)
    return Claim(store, run_id, store.run(run_id).generation)


def main(argv: list[str] | None = None) -> int:
    """Train once; return the exit status (0 completed or stopped, 1 failed, 2 bad input)."""
    args, config = parse(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    wrap = None
    if world > 1:
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timedelta(seconds=args.dist_timeout))

        def wrap(model: torch.nn.Module) -> torch.nn.Module:
            local = [torch.cuda.current_device()] if cuda else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=local)

    try:
        data = datasets.load(config.dataset, args.data_root, not args.no_download, config.seed)
    except ExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    resume_from = _store(args).checkpoint_dir(args.resume) if args.resume else None  # every rank reads it
    if rank != 0:
        stop = StopFlag(None, None)
        _stop_on_signals(stop)
        try:
            training.fit(config, data, [], stop=stop, shard=(rank, world), wrap=wrap, resume_from=resume_from)
        finally:
            dist.destroy_process_group()
        return 0
    store = _store(args)
    try:
        claim = _claim(store, args, config)
    except ExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_id = claim.run_id
    stop = StopFlag(store, run_id, token=claim.token)  # `python -m core.runs stop` or the app can ask it to stop
    _stop_on_signals(stop)
    callbacks = [StoreCallback(store, run_id, claim.token), ProgressBar()]
    try:
        with Heartbeat(store, run_id, token=claim.token):
            result = training.fit(config, data, callbacks, stop=stop, shard=(rank, world), wrap=wrap, run_id=run_id,
                                  checkpoint_dir=store.checkpoint_dir(run_id), resume_from=resume_from,
                                  fence=claim.check)
    except KeyboardInterrupt:
        claim.update(status="stopped", message="Aborted from the keyboard (no checkpoint of this epoch).")
        return 130
    except StaleClaimError as error:  # another trainer holds the run now: write nothing more
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 (record why, e.g. a rank that timed out, then report it)
        message = str(error) if isinstance(error, ExplorerError) else f"{type(error).__name__}: {error}"
        if args.resume and isinstance(error, ExplorerError):  # it could not resume: it stays as it was, stopped
            claim.update(status="stopped", message=f"Could not resume: {message}")
            print(f"error: {message}", file=sys.stderr)
            return 2
        claim.update(status="failed", message=message)
        print(f"error: run {run_id} failed: {message}", file=sys.stderr)
        return 1
    finally:
        if world > 1:
            dist.destroy_process_group()
    print(f"run {run_id} in {store.root}", file=sys.stderr)
    return 1 if result.progress.status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
