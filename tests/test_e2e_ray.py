"""End to end with the Ray executor: a run queued in the browser trains as a Ray task and looks like any other."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import runs
from tests.browser import chromium_path, running_app, wait_until_drawn, wait_until_idle
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-ray.txt")
if chromium_path() is None:
    pytest.skip("no chromium on this machine: `apt-get install chromium` to run the browser tests",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

SHOTS = Path(os.environ.get("CNN_EXPLORER_SHOTS", tempfile.gettempdir()))


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[str, Path]]:
    """The app with ``CNN_EXPLORER_EXECUTOR=ray`` (it starts a local Ray instance): its URL and state folder."""
    state = Path(tempfile.mkdtemp(prefix="cnn-explorer-ray-e2e-"))
    saved = {name: os.environ.get(name) for name in ("CNN_EXPLORER_EXECUTOR", "CNN_EXPLORER_RAY_ADDRESS")}
    os.environ["CNN_EXPLORER_EXECUTOR"] = "ray"
    os.environ.pop("CNN_EXPLORER_RAY_ADDRESS", None)
    try:
        with running_app(timeout=180, state_dir=str(state)) as url:
            yield url, state
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of the session's one browser (a second Playwright instance cannot run beside it)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def test_a_run_on_ray_streams_stops_resumes_and_downloads_like_a_local_one(page: Page, app: tuple[str, Path],
                                                                           tmp_path: Path) -> None:
    from safetensors.torch import load_file

    url, state = app
    page.goto(f"{url}/training")
    wait_until_idle(page)
    page.get_by_text("Hyperparameters").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("400")
    epochs.press("Enter")
    expect(page.get_by_text("images/s")).to_be_visible(timeout=300_000)  # Ray started, the task claimed it
    run_id = re.search(r"run=([\w-]+)", page.url)
    assert run_id, page.url
    store = runs.RunStore(state)
    assert store.run(run_id.group(1)).worker.startswith("ray-")
    wait_until_drawn(page)
    page.screenshot(path=str(SHOTS / "training-on-ray.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible(timeout=120_000)
    wait_until_idle(page)
    resume.click()
    expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=180_000)  # training again, on Ray
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=120_000)
    wait_until_idle(page)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Last checkpoint").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert load_file(str(saved))  # the weights written on the Ray worker reached the server's state folder
    assert store.run(run_id.group(1)).status == "stopped"
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_the_server_outlives_its_ray_executor(page: Page, app: tuple[str, Path]) -> None:
    """Ray's driver runs in a child of the server: killed (as when Ray's head is lost), it is replaced and the
    pages go on being served; the server never loaded Ray."""
    import json
    import signal

    url, state = app
    status = state / "logs" / "ray-executor.json"
    page.goto(f"{url}/training")
    wait_until_idle(page)
    first = wait_until(lambda: json.loads(status.read_text()).get("pid") if status.exists() else None, 180,
                       "the executor process reporting")
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: json.loads(status.read_text()).get("pid") not in (None, first), 180,
               "another executor process reporting")
    assert json.loads(status.read_text())["problem"] is None
    page.goto(f"{url}/training")
    wait_until_idle(page)
    expect(page.get_by_role("heading", name="Training")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
