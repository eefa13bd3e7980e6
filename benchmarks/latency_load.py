"""Classify's latency of ResNet-18 with a LeNet-5 run training beside it, on the server's old and new threads.

    python -m benchmarks.latency_load                 # 3 rounds
    python -m benchmarks.latency_load --rounds 5 --model resnet18

One training worker is started the way the app starts it (``explorer.workers.Supervisor``: a ``core.worker``
process with its ``--threads``) and trains LeNet-5 on the bundled digits. While it trains, this process times
the model by the app's one rule (``core.latency.measure_model``, batch 1, random weights) on two thread
settings in alternation, so that drift and other work on the machine hit both alike: *before*, PyTorch's
default of one thread per core (what the web server used); *after*, ``devices.inference_threads`` (the cores the
training worker does not hold). Beside each figure, the worker's training pace over the same seconds. Then the
run is stopped and both settings are timed once more with nothing training. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from core import devices, latency, models, training
from core.runs import RunStore
from explorer.workers import Supervisor


def _wait_until_training(store: RunStore, run_id: str, timeout: float) -> None:
    """Until the worker has taken the run and trained a few steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.run(run_id)
        if run.has_ended:
            raise RuntimeError(f"the training run ended {run.status}: {run.message}")
        if (run.progress or {}).get("step", 0) >= 5:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the worker did not start training within {timeout:.0f} s")


def _steps(store: RunStore, run_id: str) -> int:
    return int((store.run(run_id).progress or {}).get("step", 0))


def time_once(model: torch.nn.Module, name: str, setting: str, threads: int, store: RunStore,
              run_id: str | None) -> dict[str, Any]:
    """One figure by the app's rule on ``threads`` threads, with the training steps/s over the same seconds."""
    devices.use_threads(threads)
    spec = models.spec(name)
    shape = (spec.in_channels, spec.input_size, spec.input_size)
    steps, start = (_steps(store, run_id) if run_id else 0), time.monotonic()
    result = latency.measure_model(model, name, shape, 1, torch.device("cpu"), training=store.training)
    seconds = time.monotonic() - start
    pace = (_steps(store, run_id) - steps) / seconds if run_id else float("nan")
    return {"setting": setting, "threads": threads, "result": result, "steps/s": pace}


def measure(name: str, rounds: int, timeout: float) -> list[dict[str, Any]]:
    """Rows for the table: ``rounds`` alternations beside the training run, then one each with nothing training."""
    model = models.build(name).eval()
    cores = os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="latency-load-") as folder:
        store = RunStore(Path(folder))
        supervisor = Supervisor(Path(folder), count=1, check_every=0.5)
        run_id = store.create_run(training.TrainConfig(arch="lenet5", dataset="digits", epochs=1000, device="cpu"))
        try:
            supervisor.ensure()
            _wait_until_training(store, run_id, timeout)
            after = devices.inference_threads(store.training() * supervisor.threads_per_run)
            for _ in range(rounds):
                rows.append(time_once(model, name, "before: PyTorch's default", cores, store, run_id))
                rows.append(time_once(model, name, "after: inference_threads", after, store, run_id))
            store.request_stop(run_id)
            store.wait(run_id, timeout=timeout)
        finally:
            supervisor.close()
        quiet = devices.inference_threads(store.training() * supervisor.threads_per_run)
        rows.append(time_once(model, name, "before: PyTorch's default", cores, store, None))
        rows.append(time_once(model, name, "after: inference_threads", quiet, store, None))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Measure, then print one table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the worker to train")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = measure(args.model, args.rounds, args.timeout)
    print(f"\n{args.model} at batch 1 on {os.cpu_count()} CPUs, the app's rule ({latency.REPEATS}+ passes over "
          f"{latency.MIN_SECONDS:g} s+); LeNet-5 on digits training in one app worker; load average "
          f"{load:.1f}→{os.getloadavg()[0]:.1f}; torch {torch.__version__}")
    header = (f"{'server threads':<27} {'n':>2} {'median ms':>10} {'p10–p90 ms':>16} {'passes':>6} "
              f"{'LeNet steps/s':>13}  load")
    print(header)
    print("-" * (len(header) + 28))
    for row in rows:
        result = row["result"]
        print(f"{row['setting']:<27} {row['threads']:>2} {result.median_ms:>10.1f} "
              f"{f'{result.p10_ms:.1f}–{result.p90_ms:.1f}':>16} {result.repeats:>6} {row['steps/s']:>13.1f}  "
              f"{result.conditions.load}")
    print("\nBeside the training run, the median of the rounds' medians, and the run's mean pace over them:")
    for setting in dict.fromkeys(row["setting"] for row in rows):
        beside = [row for row in rows if row["setting"] == setting and row["result"].conditions.training]
        if beside:
            print(f"{setting:<27} {statistics.median(row['result'].median_ms for row in beside):>10.1f} ms, "
                  f"LeNet-5 {statistics.fmean(row['steps/s'] for row in beside):.1f} steps/s")


if __name__ == "__main__":
    main()
