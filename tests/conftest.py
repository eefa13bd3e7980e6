"""Shared fixtures: a fixed seed, a temporary state directory, a run store, and the app in a browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from core import models

NAMES = models.names()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs, checkpoints and data sets of the whole test session go to a temporary state directory."""
    os.environ["CNN_EXPLORER_STATE"] = str(tmp_path_factory.mktemp("state"))


@pytest.fixture
def run_store(tmp_path: Path) -> Iterator[Any]:
    """A run store of its own; on teardown every run still queued or running in it is stopped."""
    from core.runs import RunStore
    from tests.browser import stop_runs

    store = RunStore(tmp_path / "store")
    yield store
    stop_runs(store.root)


# The app in a browser ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian chromium for the session (skipped where there is none, an error in CI)."""
    from tests.browser import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must run the browser tests: install Debian's chromium (see tests/run.sh)")
        pytest.skip("no chromium on this machine: `apt-get install chromium` to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page that count Streamlit's script runs (for ``tests.browser.rerun``)."""
    from playwright.sync_api import expect

    from tests.browser import watch_script_runs

    expect.set_options(timeout=60_000)  # a busy 2-core machine renders slowly; conditions, not sleeps
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    watch_script_runs(context)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def app() -> Iterator[Any]:
    """The app on its own server and state directory, for a test that starts runs; stopped, with every
    run it started, when the test ends (also when it fails)."""
    from tests.browser import serve

    with serve() as running:
        yield running
        print(f"--- the app's log ends ({running.log}):\n{running.log_tail()}")  # shown when the test fails


@pytest.fixture(scope="module")
def shared_app() -> Iterator[Any]:
    """One app for a module's tests that start no run; torn down like ``app``."""
    from tests.browser import serve

    with serve() as running:
        yield running


@pytest.fixture
def app_url(shared_app: Any) -> Iterator[str]:
    """The shared app's URL; after each test no run may be left active in it."""
    from tests.browser import stop_runs

    yield shared_app.url
    left = stop_runs(shared_app.state_dir)
    assert not left, f"the test left runs active in the shared app (use the `app` fixture): {left}"
