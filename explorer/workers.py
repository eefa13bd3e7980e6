"""The app's training workers: ``python -m core.worker`` processes, started when first needed (at the server's first
script run if runs wait in the queue, see ``services.serve_queue_at_start``), replaced if they die.

Training never runs in the web server: the server only writes runs into the store's queue, and
these processes claim and train them. How many: ``$CNN_EXPLORER_WORKERS``, else ``workers = N`` in
``.streamlit/secrets.toml``, else one per GPU (one on a CPU-only machine). Worker *i* trains on GPU
*i mod count*. Each worker is told the server's process id and stops its run (checkpoint kept) and
exits when the server is gone; the server stops them when it exits. Logs: ``<state>/logs/worker-N.log``.
No streamlit here: ``explorer.services`` owns the one supervisor of the server.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from core import activity, paths

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
WORKERS_ENV = paths.WORKERS_ENV


def default_count() -> int:
    """One worker per GPU, one on a CPU-only machine."""
    return max(torch.cuda.device_count(), 1)


def configured_count(secret: object = None) -> int:
    """The worker count: ``$CNN_EXPLORER_WORKERS``, else the ``workers`` secret, else :func:`default_count`."""
    for value in (paths.raw(WORKERS_ENV), secret):
        if value is None or value == "":
            continue
        try:
            count = int(str(value))
        except ValueError:
            log.warning("ignoring a worker count that is not a number: %r", value)
            continue
        if count >= 1:
            return count
        log.warning("ignoring a worker count below 1: %r", value)
    return default_count()


class Watching:
    """What a supervisor of child processes shares: a lock, a closed flag, a count of processes started, a monitor
    thread that calls ``ensure`` every ``check_every`` seconds once it is first called, and ``close`` at exit."""

    def __init__(self, check_every: float, what: str) -> None:
        self.check_every = check_every
        self.what = what  # what it starts, in words for its log ("a training worker")
        self.started = 0  # processes started so far (replacements included)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None
        atexit.register(self.close)

    def ensure(self) -> None:
        """Start what is missing; then watch (``_watch_from_now``)."""
        raise NotImplementedError

    def close(self, timeout: float = 20) -> None:
        """Stop what was started."""
        raise NotImplementedError

    def _watch_from_now(self) -> None:
        """Start the monitor thread unless it runs (the caller holds the lock)."""
        if self._monitor is None:
            self._monitor = threading.Thread(target=keep_ensuring, name=f"supervisor of {self.what}", daemon=True,
                                             args=(self.ensure, self._closed, self.check_every, self.what))
            self._monitor.start()


class Supervisor(Watching):
    """Keeps ``count`` worker processes serving the run store in ``state``."""

    def __init__(self, state: Path, count: int, check_every: float = 2.0) -> None:
        self.state = Path(state)
        self.count = count
        gpus = torch.cuda.device_count()
        self.devices = [f"cuda:{i % gpus}" if gpus else "auto" for i in range(count)]
        # CPU workers share the cores and leave one to the web server while it serves pages. With PyTorch's
        # default (every core each), two workers on two cores ran a small run 30x slower than at one thread each
        # (benchmarks/capacity.py), and one worker watched by three tabs trained at 0.17 of its pace alone against
        # 0.8 at one thread (benchmarks/watching.py, 2 cores). While no page was served for a few seconds, a run
        # takes the server's core too (core.activity; $CNN_EXPLORER_SHARE_IDLE_CORES=0 keeps the shared count).
        maximum, shared = activity.worker_threads(os.cpu_count() or 1, count)
        self.threads = None if gpus else shared  # what a run holds while the server computes too
        self.max_threads = None if gpus else (maximum if activity.share_enabled() else shared)
        self.processes: list[subprocess.Popen | None] = [None] * count
        super().__init__(check_every, "a training worker")

    @property
    def threads_per_run(self) -> int:
        """CPU threads a training run holds while the server computes (it marks page activity, so a CPU run is back
        on its shared count within about a second): its worker's shared threads; one on a GPU, which drives it."""
        return self.threads or 1

    def ensure(self) -> None:
        """Start the workers that are missing or dead; from then on, check on them every few seconds."""
        with self._lock:
            if self._closed.is_set():
                return
            for slot, process in enumerate(self.processes):
                if process is None or process.poll() is not None:
                    if process is not None:
                        log.warning("worker %d exited with %s; starting another", slot, process.returncode)
                    self.processes[slot] = self._start(slot)
            self._watch_from_now()

    def alive(self) -> int:
        """How many workers are running now."""
        with self._lock:
            return sum(1 for p in self.processes if p is not None and p.poll() is None)

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        with self._lock:
            return [p.pid for p in self.processes if p is not None and p.poll() is None]

    def close(self, timeout: float = 20) -> None:
        """Ask every worker to stop (SIGTERM: the current run stops, keeping its checkpoint); kill the slow."""
        with self._lock:
            self._closed.set()
            processes = [p for p in self.processes if p is not None]
        stop(processes, timeout)

    def _start(self, slot: int) -> subprocess.Popen:
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "core.worker", "--state", str(self.state), "--device", self.devices[slot],
                   "--parent", str(os.getpid())]
        if self.threads and self.max_threads:
            command += ["--threads", str(self.max_threads), "--shared-threads", str(self.threads)]
        process = spawn(command, logs / f"worker-{slot}.log")
        self.started += 1
        log.info("started worker %d (pid %d) on %s", slot, process.pid, self.devices[slot])
        return process



def stop(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM every process still running, wait up to ``timeout`` seconds for each, then kill the slow."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop in %.0f s; killing it", process.pid, timeout)
            process.kill()
            process.wait()


def spawn(command: list[str], log_file: Path, own_session: bool = False) -> subprocess.Popen:
    """Start ``command`` in the project's root (importable there), its output appended to ``log_file``; in a
    session of its own if asked (its process group then holds what it starts)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with open(log_file, "ab") as output:
        return subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": path}, start_new_session=own_session)


def keep_ensuring(ensure: Callable[[], None], closed: threading.Event, every: float, what: str) -> None:
    """Call ``ensure`` every ``every`` seconds until ``closed`` is set (a supervisor's monitor thread)."""
    while not closed.wait(every):
        try:
            ensure()
        except OSError as error:  # cannot start a process now (out of memory, no pids): try again later
            log.error("cannot start %s: %s", what, error)
