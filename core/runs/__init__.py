"""The run store (core.runs.store), the runs it reads (record), its schema and migrations (schema), rebuilding it
from checkpoint sidecars (recovery) and its command line (cli, ``python -m core.runs``).

The names callers use are re-exported here, so ``from core.runs import RunStore`` keeps working; the store
callback, stop flag and heartbeat live in core.tracking (above both the store and the trainer) and are
re-exported here too.
"""

from core.paths import state_dir
from core.runs.cli import main
from core.runs.record import ACTIVE, RESUMABLE, RunRecord, Status
from core.runs.schema import COLUMNS, SCHEMA
from core.runs.store import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_HEARTBEAT_TIMEOUT,
    LOCK_WAIT,
    RunNotFoundError,
    RunStateError,
    RunStore,
    Store,
    default_busy_timeout,
    default_heartbeat_timeout,
    new_id,
    versions,
)
from core.store_errors import (
    StoreDamagedError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreUnreadableError,
    unreadable,
)
from core.tracking import Heartbeat, StopFlag, StoreCallback

__all__ = [
    "ACTIVE", "COLUMNS", "DEFAULT_BUSY_TIMEOUT", "DEFAULT_HEARTBEAT_TIMEOUT", "LOCK_WAIT", "RESUMABLE", "SCHEMA",
    "Heartbeat", "RunNotFoundError", "RunRecord", "RunStateError", "RunStore", "Status", "StopFlag", "Store",
    "StoreCallback", "StoreDamagedError", "StoreFullError", "StoreLockedError", "StoreReadOnlyError", "StoreUnreadableError",
    "default_busy_timeout", "default_heartbeat_timeout", "main", "new_id", "state_dir", "unreadable", "versions",
]
