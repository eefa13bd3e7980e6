"""What one browser session may hold in uploads: the budget on Streamlit's real file manager, and on a real server
(uploads PUT straight to its route, as a client that skips the browser's checks)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from explorer import upload_budget
from explorer.upload_budget import SessionUploadBudget

MB = 2**20


def record(file_id: str, size: int) -> UploadedFileRec:
    return UploadedFileRec(file_id=file_id, name=f"{file_id}.bin", type="application/octet-stream", data=b"\0" * size)


def bounded(limit_bytes: int) -> tuple[MemoryUploadedFileManager, SessionUploadBudget]:
    """A real manager whose add_file the budget wraps, as :func:`upload_budget.install` does."""
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    runtime = types.SimpleNamespace(uploaded_file_mgr=manager)
    budget = upload_budget.install(runtime)  # type: ignore[arg-type]
    assert budget is not None
    budget.limit_bytes = limit_bytes
    return manager, budget


def held(manager: MemoryUploadedFileManager, session_id: str) -> dict[str, int]:
    return {record.file_id: len(record.data) for record in manager.file_storage.get(session_id, {}).values()}


def test_files_within_the_budget_are_stored_and_one_past_it_is_refused_keeping_the_rest() -> None:
    manager, _ = bounded(10 * MB)
    manager.add_file("a", record("one", 4 * MB))
    manager.add_file("a", record("two", 6 * MB))  # exactly the budget
    with pytest.raises(HTTPException) as refused:
        manager.add_file("a", record("three", 1))
    assert refused.value.status_code == 413
    assert "holds 10 MiB" in refused.value.detail and "10 MiB limit" in refused.value.detail
    assert held(manager, "a") == {"one": 4 * MB, "two": 6 * MB}
    assert manager.get_stats()  # the manager's own accounts still add up
    assert manager._total_bytes == 10 * MB and manager._file_count == 2


def test_a_single_file_larger_than_the_budget_is_refused() -> None:
    manager, _ = bounded(10 * MB)
    with pytest.raises(HTTPException):
        manager.add_file("a", record("big", 10 * MB + 1))
    assert held(manager, "a") == {}


def test_a_replaced_file_counts_once() -> None:
    manager, budget = bounded(10 * MB)
    manager.add_file("a", record("one", 4 * MB))
    manager.add_file("a", record("two", 4 * MB))
    manager.add_file("a", record("one", 6 * MB))  # replaces its 4 MB: 10 MB held, not 14
    assert budget.held_bytes("a") == 10 * MB
    with pytest.raises(HTTPException):
        manager.add_file("a", record("two", 4 * MB + 1))  # replacing "two" would make 10 MB + 1
    assert held(manager, "a") == {"one": 6 * MB, "two": 4 * MB}


def test_other_sessions_have_budgets_of_their_own() -> None:
    manager, _ = bounded(10 * MB)
    manager.add_file("a", record("one", 10 * MB))
    manager.add_file("b", record("one", 10 * MB))  # same file id, another session
    with pytest.raises(HTTPException):
        manager.add_file("a", record("two", 1))
    assert held(manager, "b") == {"one": 10 * MB}


def test_removing_a_file_or_a_session_frees_its_budget() -> None:
    manager, _ = bounded(10 * MB)
    manager.add_file("a", record("one", 6 * MB))
    manager.add_file("a", record("two", 4 * MB))
    manager.remove_file("a", "one")
    manager.add_file("a", record("three", 6 * MB))
    manager.remove_session_files("a")
    manager.add_file("a", record("four", 10 * MB))
    assert held(manager, "a") == {"four": 10 * MB}


def test_install_wraps_once_and_zero_means_no_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    runtime: Any = types.SimpleNamespace(uploaded_file_mgr=manager)
    monkeypatch.setenv(upload_budget.ENV, "0")
    assert upload_budget.install(runtime) is None
    assert manager.add_file.__self__ is manager  # the manager's own, unwrapped
    monkeypatch.setenv(upload_budget.ENV, "3")
    first = upload_budget.install(runtime)
    assert first is not None and first.limit_bytes == 3 * MB
    assert upload_budget.install(runtime) is first  # every script run calls it: one wrapper, not a stack
    monkeypatch.delenv(upload_budget.ENV)
    assert upload_budget.session_upload_mb() == upload_budget.DEFAULT_SESSION_UPLOAD_MB
    monkeypatch.setenv(upload_budget.ENV, "lots")
    with pytest.raises(ValueError, match="whole number"):
        upload_budget.session_upload_mb()
    fresh = MemoryUploadedFileManager("/_stcore/upload_file")
    kept = upload_budget.install(types.SimpleNamespace(uploaded_file_mgr=fresh))  # type: ignore[arg-type]
    assert kept is not None and kept.limit_bytes == upload_budget.DEFAULT_SESSION_UPLOAD_MB * MB  # not an error page


def test_the_default_holds_the_largest_weights_file_and_two_images() -> None:
    from explorer import services

    assert upload_budget.DEFAULT_SESSION_UPLOAD_MB >= services.WEIGHTS_UPLOAD_MB + 2 * services.IMAGE_UPLOAD_MB
    assert upload_budget.DEFAULT_SESSION_UPLOAD_MB >= services.ZIP_UPLOAD_MB + 4 * services.IDX_UPLOAD_MB


def test_a_file_its_uploader_refuses_leaves_the_server_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    from explorer import widgets

    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    big, small = record("big", widgets.IMAGE_UPLOAD_MB * MB + 1), record("small", 10)
    manager.add_file("a", big)
    manager.add_file("a", small)
    context = types.SimpleNamespace(session_id="a", uploaded_file_mgr=manager)
    monkeypatch.setattr(upload_budget, "get_script_run_ctx", lambda: context)
    urls: Any = None
    assert widgets.within_limit(UploadedFile(small, urls), widgets.IMAGE_UPLOAD_MB)
    assert not widgets.within_limit(UploadedFile(big, urls), widgets.IMAGE_UPLOAD_MB)
    assert held(manager, "a") == {"small": 10}


# On a real server ---------------------------------------------------------------------------------------------


@pytest.fixture
def bounded_app() -> Iterator[Any]:
    """The app with a 3 MB budget per session."""
    from tests.browser import serve

    with serve(env={upload_budget.ENV: "3"}) as app:
        yield app


@pytest.mark.e2e
@pytest.mark.slow
def test_the_server_refuses_an_upload_past_the_sessions_budget(page: Any, browser: Any, bounded_app: Any) -> None:
    from tests.browser import put_upload, upload_session, watch_script_runs

    url = bounded_app.url
    session = upload_session(page, url)  # holds a 2-byte probe
    assert put_upload(page, url, session, "one", b"\1" * MB).status == 204
    assert put_upload(page, url, session, "two", b"\2" * MB).status == 204
    refused = put_upload(page, url, session, "three", b"\3" * (MB + MB // 2))
    assert refused.status == 413, refused.text()
    assert "3 MiB limit" in refused.text()
    assert put_upload(page, url, session, "one", b"\4" * (MB + MB // 2)).status == 204  # a replacement fits
    deleted = page.request.delete(f"{url}/_stcore/upload_file/{session}/two", headers={
        "X-Xsrftoken": {c["name"]: c["value"] for c in page.context.cookies()}["_streamlit_xsrf"]})
    assert deleted.status == 204
    assert put_upload(page, url, session, "three", b"\3" * (MB + MB // 4)).status == 204  # room again

    other = browser.new_context()  # another browser: a session of its own
    try:
        watch_script_runs(other)
        other_page = other.new_page()
        other_session = upload_session(other_page, url)
        assert other_session != session
        assert put_upload(other_page, url, other_session, "one", b"\5" * (2 * MB)).status == 204
    finally:
        other.close()
