"""Capacity of the executors: how fast a burst of small runs drains from the queue.

    python -m benchmarks.capacity                          # 50 runs: 1 and 2 local workers, Ray with 2 CPUs
    python -m benchmarks.capacity --runs 10 --modes ray local-2

Each mode gets a fresh state folder and its executor, warmed up first by one run per slot (worker processes
import PyTorch, Ray starts its worker processes: start-up is reported apart). Then ``--runs`` runs (LeNet-5 on
digits, 2 epochs, each its own seed) are queued at once, and the store is watched every 0.1 s: a run's wait is
queued → running, its turnaround queued → finished; runs per minute count from the burst to the last finish.
The local workers are the app's (``explorer.workers.Supervisor``: PyTorch's default threads each, or
``--local-threads``); each Ray task asks for one CPU (Ray gives it one thread) of a local instance with 2 CPUs.
Asserts nothing: the table compares Ray with the local workers of the same invocation (on a machine shared
with other work, say so).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import training
from core.runs import RunStore

MODES = ("local-1", "local-2", "ray")


def _config(seed: int, epochs: int) -> training.TrainConfig:
    return training.TrainConfig(arch="lenet5", dataset="digits", epochs=epochs, seed=seed)


def _executor(mode: str, state: Path, ray_cpus: int, local_threads: int) -> Any:
    """The executor of a mode, not yet started (local workers inherit ``OMP_NUM_THREADS`` when it is set)."""
    if mode == "ray":
        from core.executors import RayExecutor

        return RayExecutor(state, init_options={"num_cpus": ray_cpus, "object_store_memory": 100 * 2**20}, poll=0.1)
    from explorer.workers import Supervisor

    if local_threads:
        os.environ["OMP_NUM_THREADS"] = str(local_threads)  # PyTorch's thread count in each worker process
    return Supervisor(state, count=int(mode.split("-")[1]), check_every=0.5)


def _drain(store: RunStore, run_ids: list[str], submitted: float, timeout: float) -> dict[str, Any]:
    """Watch the store until every run finished: waits, turnarounds, statuses."""
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(finished) < len(run_ids) and time.monotonic() < deadline:
        now = time.monotonic()
        for run in store.runs(limit=len(run_ids) + 10):
            run_id = run.id
            if run_id not in run_ids or run_id in finished:
                continue
            if run.status != "queued":
                started.setdefault(run_id, now)
            if run.has_ended:
                finished[run_id] = now
                statuses[run_id] = run.status
        time.sleep(0.1)
    last = max(finished.values(), default=submitted)
    return {"done": len(finished), "failed": sum(s != "completed" for s in statuses.values()),
            "seconds": last - submitted,
            "longest wait": max((t - submitted for t in started.values()), default=float("nan")),
            "longest turnaround": max((t - submitted for t in finished.values()), default=float("nan"))}


def measure(mode: str, runs: int, epochs: int, ray_cpus: int, timeout: float, local_threads: int = 0,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the executor of ``mode``, warm it up, queue ``runs`` runs at once and time how they drain."""
    with tempfile.TemporaryDirectory(prefix=f"capacity-{mode}-") as folder:
        state = Path(folder)
        store = RunStore(state)
        executor = _executor(mode, state, ray_cpus, local_threads)
        slots = ray_cpus if mode == "ray" else int(mode.split("-")[1])
        load = os.getloadavg()[0]
        begun = time.monotonic()
        try:
            if mode == "ray":
                executor.start()  # here, so that a Ray that cannot start fails the benchmark at once
            executor.ensure()
            warm = [store.create_run(_config(10_000 + i, 1)) for i in range(slots)]
            for run_id in warm:
                status = store.wait(run_id, timeout=timeout)
                if status != "completed":
                    raise RuntimeError(f"{mode}: the warm-up run {run_id} ended {status}: {store.run(run_id)}")
            startup = time.monotonic() - begun
            say(f"{mode}: started and warmed up in {startup:.1f} s; queueing {runs} runs")
            submitted = time.monotonic()
            run_ids = [store.create_run(_config(seed, epochs)) for seed in range(runs)]
            figures = _drain(store, run_ids, submitted, timeout)
        finally:
            executor.close()
        figures.update(mode=mode, slots=slots, startup=startup, load=load, end_load=os.getloadavg()[0],
                       per_minute=60 * figures["done"] / figures["seconds"] if figures["seconds"] else float("nan"))
        say(f"{mode}: {figures['done']} runs in {figures['seconds']:.1f} s")
        return figures


def main(argv: list[str] | None = None) -> None:
    """Measure each mode, then print one table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a mode may take at most")
    parser.add_argument("--local-threads", type=int, default=0,
                        help="PyTorch threads per local worker (default: PyTorch's own, one per core; 1: what a "
                             "Ray task asking for one CPU gets)")
    args = parser.parse_args(argv)
    rows = [measure(mode, args.runs, args.epochs, args.ray_cpus, args.timeout, args.local_threads)
            for mode in args.modes]
    threads = args.local_threads or "PyTorch's default"
    print(f"\n{args.runs} runs of LeNet-5 on digits, {args.epochs} epochs, queued at once; {os.cpu_count()} CPUs; "
          f"threads per local worker: {threads}; load average at the start and end of each mode")
    header = (f"{'executor':<9} {'slots':>5} {'start-up s':>10} {'runs/min':>9} {'longest wait s':>15} "
              f"{'longest turnaround s':>21} {'failed':>6} {'load':>10}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['mode']:<9} {row['slots']:>5} {row['startup']:>10.1f} {row['per_minute']:>9.1f} "
              f"{row['longest wait']:>15.1f} {row['longest turnaround']:>21.1f} {row['failed']:>6} "
              f"{row['load']:>4.1f}→{row['end_load']:<4.1f}")
    local = [row["per_minute"] for row in rows if row["mode"].startswith("local")]
    ray = [row["per_minute"] for row in rows if row["mode"] == "ray"]
    if local and ray:
        print(f"\nRay / best local throughput: {ray[0] / max(local):.2f} (the goal: at least 0.80)")


if __name__ == "__main__":
    main()
