"""The learning-rate finder in a real browser: the range test runs in a worker, the page draws the suggestion,
and one click puts it into the form's learning-rate field."""

from __future__ import annotations

import pytest

from tests.browser import App, open_page, rerun, wait_until_idle
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402


def test_the_rate_finder_fills_the_form_with_its_suggestion(page: Page, app: App) -> None:
    from core.training import lr_finder, lr_sweep

    open_page(page, f"{app.url}/training")
    with rerun(page):
        page.get_by_role("button", name="Find a learning rate").click()
    expect(page.get_by_text("Suggested rates")).to_be_visible(timeout=300_000)
    store = app.store()
    finished = [r for r in store.runs() if r.config.get("lr_find")]
    assert len(finished) == 1 and finished[0].status == "completed"
    wait_until(lambda: store.metrics(finished[0].id, lr_sweep.KIND), 60, "the sweep's points")
    points = store.metrics(finished[0].id, lr_sweep.KIND)
    suggestion = lr_finder.suggest([p["lr"] for p in points], lr_finder.smooth([p["loss"] for p in points]))
    wait_until_idle(page)
    with rerun(page):
        page.get_by_role("button", name="(steepest descent)").click()
    page.get_by_text("Hyperparameters (the preset").click()
    rate = page.get_by_role("spinbutton", name="Learning rate")
    expect(rate).to_have_value(f"{max(suggestion.steepest, 1e-6):.6f}")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
