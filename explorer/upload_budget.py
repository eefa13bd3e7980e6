"""A bound on the uploaded bytes one browser session may hold in the server's memory.

Streamlit keeps every uploaded file in memory (``MemoryUploadedFileManager``) until its uploader lets it go or
its session ends, which is ``server.disconnectedSessionTTL`` (120 s) after the tab closed. Its server checks
each file only against the global ``server.maxUploadSize`` (600 MB here); an uploader's own ``max_upload_size``
is checked by the browser and by this app's script, both after the file is held. Measured before this module:
three 550 MB files sent to one session's image uploader took the server from 2.7 to 4.4 GB.

:func:`install` (called by the entry script on every run; only the first call per server process does anything)
wraps the runtime manager's ``add_file``: a file that would take its session past the budget is refused with
HTTP 413 before it is stored, and nothing the session already holds is dropped. :func:`release` lets the script
drop a file its uploader refused at once, instead of when the widget changes or the session ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from starlette.exceptions import HTTPException
from streamlit.runtime import Runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from core import paths
from explorer import services

LOGGER = logging.getLogger(__name__)
ENV = paths.SESSION_UPLOAD_ENV  # MB one session may hold; 0 turns the bound off (the benchmark's baseline)
# The largest single file any uploader takes (a weights file: VGG-19's 548 MiB) plus two of the largest images,
# so a session can hold a weights file while it classifies a photo or two. Everything else an uploader takes is
# smaller: a zip (200 MB), the four MNIST files (under 48 MB each), several images (25 MB each).
DEFAULT_SESSION_UPLOAD_MB = services.WEIGHTS_UPLOAD_MB + 2 * services.IMAGE_UPLOAD_MB

_INSTALL_LOCK = threading.Lock()


def session_upload_mb() -> int:
    """The bound in MB: ``$CNN_EXPLORER_SESSION_UPLOAD_MB``, else :data:`DEFAULT_SESSION_UPLOAD_MB`; 0 means none."""
    text = (paths.raw(ENV) or "").strip()
    if not text:
        return DEFAULT_SESSION_UPLOAD_MB
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"${ENV} must be a whole number of MB (0 for no bound), not {text!r}") from None
    if value < 0:
        raise ValueError(f"${ENV} must be 0 or more, not {value}")
    return value


class SessionUploadBudget:
    """Wraps one ``MemoryUploadedFileManager``'s ``add_file`` so that no session holds more than ``limit_bytes``."""

    def __init__(self, manager: MemoryUploadedFileManager, limit_bytes: int) -> None:
        self.manager = manager
        self.limit_bytes = limit_bytes
        self._add_file: Callable[[str, UploadedFileRec], None] = manager.add_file  # the manager's own method
        # Held across check and store, so two uploads to one session cannot both pass the check on the same figure.
        # Only adds need it: a file removed in between can only leave more room.
        self._lock = threading.Lock()

    def held_bytes(self, session_id: str, except_file_id: str | None = None) -> int:
        """Bytes ``session_id`` holds in the manager, leaving out ``except_file_id`` (a file about to be replaced)."""
        with self.manager._lock:  # the manager's own lock guards its storage
            files = self.manager.file_storage.get(session_id, {})  # .get: no empty entry for an unknown session
            return sum(len(record.data) for file_id, record in files.items() if file_id != except_file_id)

    def add_file(self, session_id: str, file: UploadedFileRec) -> None:
        """Store ``file`` for ``session_id``, or raise HTTP 413 (the upload route's answer) if it does not fit."""
        with self._lock:
            held = self.held_bytes(session_id, except_file_id=file.file_id)  # a replaced file's bytes go
            if held + len(file.data) > self.limit_bytes:
                LOGGER.warning("Upload refused: session %s holds %d bytes; %d more would pass its %d-byte budget",
                               session_id, held, len(file.data), self.limit_bytes)
                limit_mb = self.limit_bytes / 2**20
                raise HTTPException(status_code=413, detail=(
                    f"This browser session already holds {held / 2**20:,.0f} MiB of uploads; "
                    f"{len(file.data) / 2**20:,.0f} MiB more would pass its {limit_mb:,.0f} MiB limit. "
                    "Remove an uploaded file and try again."))
            self._add_file(session_id, file)


def install(runtime: Runtime | None = None) -> SessionUploadBudget | None:
    """Bound each session's uploads in this server's file manager, once; the budget, or None if unbounded."""
    if runtime is None:
        if not Runtime.exists():  # a bare script or AppTest without a server
            return None
        runtime = Runtime.instance()
    manager = runtime.uploaded_file_mgr
    if not isinstance(manager, MemoryUploadedFileManager):  # another store keeps its own accounts
        return None
    with _INSTALL_LOCK:
        installed = getattr(manager.add_file, "__self__", None)
        if isinstance(installed, SessionUploadBudget):
            return installed
        try:
            limit_mb = session_upload_mb()
        except ValueError as error:  # a mistyped setting keeps the default bound rather than breaking every page
            LOGGER.error("%s; using the default, %d MB", error, DEFAULT_SESSION_UPLOAD_MB)
            limit_mb = DEFAULT_SESSION_UPLOAD_MB
        if limit_mb == 0:
            return None
        budget = SessionUploadBudget(manager, limit_mb * 2**20)
        # An instance attribute: the upload route holds this manager object and looks add_file up on every call.
        manager.add_file = budget.add_file  # type: ignore[method-assign]
        LOGGER.info("Each session may hold %d MB of uploads", limit_mb)
        return budget


def release(upload: object) -> None:
    """Drop an uploaded file (a Streamlit ``UploadedFile``) from the server's memory now: its uploader refused it.

    The widget then returns no file on the next run; until then this run's object still holds its bytes.
    """
    context = get_script_run_ctx()
    file_id = getattr(upload, "file_id", None)
    if context is None or not isinstance(file_id, str):
        return
    manager = context.uploaded_file_mgr
    if isinstance(manager, MemoryUploadedFileManager):
        manager.remove_file(context.session_id, file_id)
