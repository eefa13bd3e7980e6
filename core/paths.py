"""The state folder and every ``CNN_EXPLORER_*`` setting, read in one place (the bottom of core: stdlib only).

Each setting is read here as text (blank counts as unset); the module that uses it checks it and raises its own
typed error (an executor kind, a worker count, a number of CPUs), so every message still names the variable.

    CNN_EXPLORER_STATE              the state folder (default ./state): run store, checkpoints, data, folders
    CNN_EXPLORER_DATA               where data sets live (default <state>/data)
    CNN_EXPLORER_FOLDERS            the only place folder paths may point into (default <state>/folders)
    CNN_EXPLORER_HEARTBEAT_TIMEOUT  seconds without a heartbeat before a running run is interrupted (30)
    CNN_EXPLORER_BUSY_TIMEOUT       seconds a trainer's write waits for a locked run database (120)
    CNN_EXPLORER_DIST_TIMEOUT       seconds a distributed run waits for a silent rank (300)
    CNN_EXPLORER_EXECUTOR           local or ray
    CNN_EXPLORER_RAY_ADDRESS        the Ray cluster to join
    CNN_EXPLORER_RAY_CPUS           CPUs a Ray run asks for on the CPU (1)
    CNN_EXPLORER_WORKERS            local worker processes
    CNN_EXPLORER_SHARE_IDLE_CORES   workers take the idle cores (on unless 0/false/no/off)
    CNN_EXPLORER_CPU_BFLOAT16       CPU training in bfloat16 mixed precision where the CPU has it (on unless 0/…)
    CNN_EXPLORER_SESSION_UPLOAD_MB  MB one browser session may hold in uploads
    CNN_EXPLORER_UPLOADS_MB         MB of uploads the server keeps in all (2048)
    CNN_EXPLORER_WEIGHTS_URL        a mirror of the official pretrained weights
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "CNN_EXPLORER_STATE"
DATA_ENV = "CNN_EXPLORER_DATA"
FOLDERS_ENV = "CNN_EXPLORER_FOLDERS"
HEARTBEAT_TIMEOUT_ENV = "CNN_EXPLORER_HEARTBEAT_TIMEOUT"
BUSY_TIMEOUT_ENV = "CNN_EXPLORER_BUSY_TIMEOUT"
DIST_TIMEOUT_ENV = "CNN_EXPLORER_DIST_TIMEOUT"
EXECUTOR_ENV = "CNN_EXPLORER_EXECUTOR"
RAY_ADDRESS_ENV = "CNN_EXPLORER_RAY_ADDRESS"
RAY_CPUS_ENV = "CNN_EXPLORER_RAY_CPUS"
WORKERS_ENV = "CNN_EXPLORER_WORKERS"
SHARE_ENV = "CNN_EXPLORER_SHARE_IDLE_CORES"
CPU_BFLOAT16_ENV = "CNN_EXPLORER_CPU_BFLOAT16"
SESSION_UPLOAD_ENV = "CNN_EXPLORER_SESSION_UPLOAD_MB"
UPLOADS_ENV = "CNN_EXPLORER_UPLOADS_MB"
WEIGHTS_URL_ENV = "CNN_EXPLORER_WEIGHTS_URL"

DEFAULT_HEARTBEAT_TIMEOUT = 30.0  # seconds without a heartbeat before a running run counts as interrupted
DEFAULT_BUSY_TIMEOUT = 120.0  # seconds a trainer's write waits for a database locked by another process
DEFAULT_DIST_TIMEOUT = 300.0  # seconds a distributed run waits for a silent rank
DEFAULT_UPLOADS_MB = 2048.0


def setting(name: str) -> str | None:
    """The environment variable ``name`` stripped; None when unset or blank."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def raw(name: str) -> str | None:
    """The environment variable ``name`` exactly as set (None when unset): for readers that judge blanks
    themselves."""
    return os.environ.get(name)


def state_dir() -> Path:
    """The one configurable state directory (``$CNN_EXPLORER_STATE``, default ``./state``)."""
    return Path(os.environ.get(STATE_ENV, "state")).resolve()


def data_dir() -> Path:
    """Where data sets live: ``$CNN_EXPLORER_DATA``, else ``<state dir>/data``."""
    return Path(os.environ.get(DATA_ENV, state_dir() / "data"))


def folders_dir() -> Path:
    """The only place folder paths may point into (``$CNN_EXPLORER_FOLDERS``, else ``<state>/folders``), resolved."""
    return Path(os.environ.get(FOLDERS_ENV, state_dir() / "folders")).resolve()


def seconds(name: str, default: float) -> float:
    """The environment variable ``name`` as a positive number of seconds; ``default`` if unset, unreadable or not
    positive."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a running run is interrupted (``$CNN_EXPLORER_HEARTBEAT_TIMEOUT``)."""
    return seconds(HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT)


def busy_timeout() -> float:
    """Seconds a trainer's write waits for a run database locked by another process before its run fails
    (``$CNN_EXPLORER_BUSY_TIMEOUT``, default 120; see core.claims)."""
    return seconds(BUSY_TIMEOUT_ENV, DEFAULT_BUSY_TIMEOUT)


def dist_timeout() -> float:
    """Seconds a distributed run waits for a silent rank (``$CNN_EXPLORER_DIST_TIMEOUT``, default 300; a value
    that is not a number raises ValueError, as it always has)."""
    return float(os.environ.get(DIST_TIMEOUT_ENV, str(DEFAULT_DIST_TIMEOUT)))


def _switch(name: str) -> bool:
    """An on/off setting that is on unless set to "0", "false", "no" or "off"."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def share_idle_cores() -> bool:
    """Whether workers take the idle cores (``$CNN_EXPLORER_SHARE_IDLE_CORES``, on unless "0", "false" or "no")."""
    return _switch(SHARE_ENV)


def cpu_bfloat16() -> bool:
    """Whether CPU training may use bfloat16 mixed precision (``$CNN_EXPLORER_CPU_BFLOAT16``, on unless "0", …);
    it still needs a CPU with bfloat16 arithmetic (``core.devices.cpu_bfloat16``)."""
    return _switch(CPU_BFLOAT16_ENV)


def uploads_max_bytes() -> int:
    """Bytes of uploads the server keeps in all (``$CNN_EXPLORER_UPLOADS_MB``, default 2048 MB)."""
    return int(float(os.environ.get(UPLOADS_ENV, str(DEFAULT_UPLOADS_MB))) * 2**20)


def weights_url() -> str | None:
    """A mirror of the official pretrained weights (``$CNN_EXPLORER_WEIGHTS_URL``), or None."""
    return os.environ.get(WEIGHTS_URL_ENV) or None
