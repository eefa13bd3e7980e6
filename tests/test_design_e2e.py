"""End to end, in a real browser: type a design, see its table follow, train it on the digits for one epoch, and
classify a drawing with it."""

from __future__ import annotations

import re

import pytest

import core.models as models
from core.models import opened
from tests.browser import App, draw_a_one, no_exception, open_page, rerun
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402

DESIGN = "name mynet\ninput 1x28x28\nconv 8 k3 p1 bn\nmaxpool 2\nconv 16 k3 p1\nmaxpool 2\nfc 32\nfc 10"


def _parameters(text: str) -> str:
    return f"{sum(p.numel() for p in models.build(opened.design_name(text)).parameters()):,}"


def _type_design(page: Page, text: str) -> None:
    area = page.get_by_role("textbox", name="Layers")
    area.fill(text)
    with rerun(page):
        area.press("Control+Enter")


def test_a_design_is_typed_trained_on_digits_and_classifies_a_drawing(page: Page, app: App) -> None:
    open_page(page, f"{app.url}/architectures")
    page.get_by_text("Design your own CNN").first.click()
    _type_design(page, DESIGN)
    expect(page.get_by_text(f"Total: {_parameters(DESIGN)} parameters")).to_be_visible(timeout=60_000)
    wider = DESIGN.replace("fc 32", "fc 64")
    _type_design(page, wider)  # the table follows each change
    expect(page.get_by_text(f"Total: {_parameters(wider)} parameters")).to_be_visible(timeout=60_000)
    _type_design(page, wider.replace("conv 16 k3 p1", "conv 16 k31"))
    expect(page.get_by_text("→").first).to_be_visible(timeout=60_000)  # the error, at its line
    expect(page.get_by_text(f"Total: {_parameters(wider)} parameters")).to_be_visible()  # the last design stays
    _type_design(page, DESIGN)
    expect(page.get_by_text(f"Total: {_parameters(DESIGN)} parameters")).to_be_visible(timeout=60_000)
    no_exception(page)

    with rerun(page):  # within the session: the design opened here is offered on the Training page
        page.get_by_role("link", name="Training").first.click()
    with rerun(page):
        page.get_by_role("combobox", name="Model").click()
        page.get_by_role("option", name="mynet (your design)", exact=True).click()
    page.get_by_text("Hyperparameters").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    epochs.press("Enter")  # submits the form
    try:
        (run,) = wait_until(lambda: app.store().runs(), 120, "Start to queue the design's run")
        wait_until(lambda: app.store().run(run.id).status in ("completed", "failed", "stopped"), 600,
                   "the design's run to end")
    finally:
        page.screenshot(path="/tmp/design-e2e.png", full_page=True)
    run = app.store().run(run.id)
    assert run.status == "completed", (run.status, run.message, app.log_tail())
    assert run.arch == opened.design_name(DESIGN)

    with rerun(page):
        page.get_by_role("link", name="Classify").first.click()
    with rerun(page):
        page.get_by_role("radiogroup", name="Image").get_by_text("Draw a digit", exact=True).click()
    draw_a_one(page, page.locator(".st-key-classify-pad canvas"))
    expect(page.get_by_text("Top predictions")).to_be_visible(timeout=60_000)
    # the model classifying is the design (the only model here, so the one Classify opens on)
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile("mynet"))
    no_exception(page)
