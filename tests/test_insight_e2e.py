"""A finished run's mistakes in a real browser, in presenter mode at 1280 × 720: pick a confusion cell, see its
images (each with its top-3) and the embedding map."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from tests.browser import open_page, rerun, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def app_url(digits_run: str) -> Iterator[str]:
    """The app on the test session's state folder, where ``digits_run`` trained a LeNet-5 on the digits."""
    with serve(state_dir=os.environ["CNN_EXPLORER_STATE"]) as running:
        yield running.url


def test_picking_a_confusion_cell_shows_its_images_by_loss(page: Page, app_url: str, digits_run: str) -> None:
    from core import mistakes
    from explorer import services

    scores = mistakes.for_run(services.run_store().checkpoint_dir(digits_run), "digits").scores
    true, predicted, count = mistakes.cells(scores)[0]
    names = scores.classes
    page.set_viewport_size({"width": 1280, "height": 720})
    open_page(page, f"{app_url}/training?run={digits_run}&present=1")
    with rerun(page):
        page.get_by_text("Mistakes, explained, and the embedding map").click()
    cell = page.get_by_role("combobox", name=re.compile("^Confusion cell"))
    expect(cell).to_be_visible(timeout=120_000)
    with rerun(page):
        cell.click()
        page.get_by_role("option", name=f"{names[true]} → {names[predicted]} ({count} images)", exact=True).click()
    shown = page.get_by_text(re.compile(rf"^Image \d+ · true {names[true]} · loss [\d.]+ · top-3: {names[predicted]} "))
    expect(shown).to_have_count(min(count, mistakes.SHOWN), timeout=60_000)
    expect(page.get_by_text(re.compile(r"^Image \d+ · true ")).filter(
        has_not_text=f"true {names[true]} ·")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^PCA of \d+ test images"))).to_have_count(1, timeout=60_000)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
