"""``python -m core.executors serve``: the Ray executor as a process of its own, started by the app
(``explorer.ray_process``) or by hand.

It connects to Ray (or starts a local instance), serves the store's queue, and reports what it is doing in
``<state>/logs/ray-executor.json`` (its pid, and a problem in words when Ray cannot be started or reached).
It stops, stopping its running runs (checkpoints kept) and shutting down the Ray instance it started, on SIGTERM,
on Ctrl-C, or when the process named by ``parent`` (the web server) is gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
STATUS_FILE = "ray-executor.json"
CANNOT_START = 3  # the exit code when Ray cannot be started or reached


def status_path(state: Path) -> Path:
    """Where the executor process reports its state."""
    return Path(state) / "logs" / STATUS_FILE


def read_status(state: Path) -> dict[str, Any]:
    """The executor process's last report ({} when there is none, or it cannot be read now)."""
    try:
        value = json.loads(status_path(state).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_status(state: Path, problem: str | None) -> None:
    """Report this process and its problem (None: serving the queue), through a renamed temporary file."""
    path = status_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "problem": problem, "updated": time.time()}),
                         encoding="utf-8")
    os.replace(temporary, path)


def serve(state: Path, address: str | None, parent: int | None = None, check_every: float = 1.0) -> int:
    """Serve the queue of the store in ``state`` on Ray until stopped; the process's exit code (0, or
    :data:`CANNOT_START` when Ray could not be started or reached, with the reason in the status file)."""
    from core.executors import RayExecutor

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    executor = RayExecutor(state, address)
    try:
        executor.start()
    except Exception as error:  # noqa: BLE001 (no cluster at that address, a refused connection…)
        problem = f"Ray could not be started or reached ({type(error).__name__}: {error})."
        log.error("%s", problem)
        write_status(state, problem)
        executor.close()
        return CANNOT_START
    write_status(state, None)
    log.info("serving the queue of %s on Ray; SIGTERM or Ctrl-C stops the running runs (checkpoints kept)",
             executor.store.root)
    executor.ensure()
    code = 0
    try:
        while not stop.wait(check_every):
            if parent is not None and os.getppid() != parent:
                log.warning("the process that started this executor (%d) is gone: stopping", parent)
                break
            if not executor.serving:
                log.error("the thread serving the queue ended: exiting, to be started again")
                code = 1
                break
    except KeyboardInterrupt:
        pass
    executor.close()
    return code
