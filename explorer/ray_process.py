"""The Ray executor in a process of its own: the web server starts ``python -m core.executors serve`` and keeps it
alive, and never imports Ray itself.

Ray's driver ends its process when it loses the cluster's head (60 s after), and a local head started by
``ray.init`` lives in the driver's process tree. With the driver inside the web server, a lost head took the
server down with it (issue 19, defect 8). Here the driver is a child process: when it exits, for whatever
reason, the server says so on the pages that wait for it and starts another after a pause that doubles (2 s up
to a minute). The child (``core.ray_serve``) reports what it is doing in ``<state>/logs/ray-executor.json``,
logs to ``<state>/logs/ray-executor.log``, and exits, shutting down the Ray instance it started, when told to
(SIGTERM) or when the server is gone.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core import executors, ray_serve
from explorer import workers

log = logging.getLogger(__name__)
FIRST_PAUSE = 2.0  # seconds before a child that exited is started again; doubled after each quick exit
LONGEST_PAUSE = 60.0
STEADY = 120.0  # a child that lived this long resets the pause


class RayProcess(workers.Watching):
    """Keeps one ``python -m core.executors serve`` process serving the store in ``state`` (an Executor)."""

    def __init__(self, state: Path, address: str | None = None, check_every: float = 1.0) -> None:
        if importlib.util.find_spec("ray") is None:  # without importing it: the server never does
            executors.import_ray()  # raises RayNotInstalledError, saying how to install it
        self.state = Path(state)
        self.address = address
        self.process: subprocess.Popen | None = None
        self.exited: str | None = None  # how the last child ended, while the next one waits to start
        self.pause = FIRST_PAUSE
        self.next_start = 0.0  # time.monotonic() before which no child is started
        self._since = 0.0  # when the current child started
        super().__init__(check_every, "the Ray executor")

    @property
    def threads_per_run(self) -> int:
        """CPU threads a run holds: the CPUs it asks Ray for."""
        return max(math.ceil(executors.configured_cpus()), 1)

    @property
    def problem(self) -> str | None:
        """Why queued runs are not being trained now, in words; None while the executor serves the queue."""
        with self._lock:
            process, exited = self.process, self.exited
        running = process is not None and process.poll() is None
        reported = self._reported(process) if running else None
        if reported:
            return reported
        if exited and not running:
            return f"{exited} It is started again in a moment; its log: {self.state / 'logs' / 'ray-executor.log'}."
        return None

    def pid(self) -> int | None:
        """The executor process's id while it runs."""
        with self._lock:
            return self.process.pid if self.process is not None and self.process.poll() is None else None

    def ensure(self) -> None:
        """Start the executor process if it is missing (after its pause, if it exited); then watch it."""
        with self._lock:
            if self._closed.is_set():
                return
            process = self.process
            if process is not None and process.poll() is not None:
                self._note_exit(process)
                self.process = None
            if self.process is None and time.monotonic() >= self.next_start:
                self.process = self._start()
            self._watch_from_now()

    def close(self, timeout: float = 30) -> None:
        """Ask the executor process to stop (its running runs stop, keeping their checkpoints, and the Ray instance
        it started shuts down); kill it if it has not exited after ``timeout`` seconds."""
        with self._lock:
            self._closed.set()
            process = self.process
        if process is not None:
            workers.stop([process], timeout)
            _end_group(process)  # also when it had exited unnoticed: what it left is ended

    def _note_exit(self, process: subprocess.Popen) -> None:
        """Record how a child ended and when the next may start, and end what it left running (a child killed
        outright leaves Ray's agents behind); the caller holds the lock."""
        _end_group(process)
        lived = time.monotonic() - self._since
        self.pause = FIRST_PAUSE if lived >= STEADY else min(self.pause * 2, LONGEST_PAUSE)
        self.next_start = time.monotonic() + self.pause
        reported = self._reported(process)
        self.exited = (f"The Ray executor process exited (code {process.returncode})"
                       + (f": {reported}" if reported else "."))
        log.warning("%s Next start in %.0f s.", self.exited, self.pause)

    def _reported(self, process: subprocess.Popen | None) -> str | None:
        """The problem ``process`` reported in the status file (not an earlier process's)."""
        status = ray_serve.read_status(self.state)
        problem = status.get("problem")
        return str(problem) if problem and process is not None and status.get("pid") == process.pid else None

    def _command(self) -> list[str]:
        """The executor process's command line."""
        return [sys.executable, "-m", "core.executors", "serve", "--state", str(self.state),
                "--parent", str(os.getpid()), "--address", self.address or "none"]

    def _start(self) -> subprocess.Popen:
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        # In a session of its own: its process group holds Ray's processes, ended with it (_end_group).
        process = workers.spawn(self._command(), logs / "ray-executor.log", own_session=True)
        self.started += 1
        self._since = time.monotonic()
        log.info("started the Ray executor (pid %d)", process.pid)
        return process


def _end_group(process: subprocess.Popen) -> None:
    """Kill whatever is left of the process group an exited executor led (Ray's processes under it)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left
