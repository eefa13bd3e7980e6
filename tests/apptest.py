"""Helpers for the AppTest page tests: open a page the way a user would, read what it says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "explorer" / "app.py")
TIMEOUT = 120  # importing torch alone exceeds AppTest's 3 s default


def no_exception(at: AppTest) -> None:
    """The page raised nothing."""
    assert not at.exception, [e.value for e in at.exception]


def open_page(page: str | None = None, check: Callable[[AppTest], None] = no_exception, timeout: float = TIMEOUT,
              **query: str) -> AppTest:
    """Run the app with these URL query parameters, switch to `page`, and ``check`` what it drew."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(f"../pages/{page}.py")
        at.run()
    check(at)
    return at


def texts(at: AppTest) -> str:
    """Everything the page says in markdown, captions and message boxes, one element per line."""
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error])
