"""The browser's Back and Forward step through the views whose state is in the URL (a real browser)."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.browser import open_page, rerun, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402

PARAMS = {"ResNet-50": "resnet50", "VGG-16": "vgg16", "Inception-v3": "inception_v3"}


def _pick(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox labelled ``label``."""
    with rerun(page):
        page.get_by_role("combobox", name=label).click()
        page.get_by_role("option", name=option, exact=True).click()


def _shows(page: Page, model: str, tab: str | None) -> None:
    """The page shows ``model`` (selectbox and URL) and ``tab`` open (None: the first tab)."""
    expect(page.get_by_role("combobox", name="Model")).to_have_value(model, timeout=30_000)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query).get("model") == [PARAMS[model]]
    selected = page.get_by_role("tab", name=tab or "Layer table")
    expect(selected).to_have_attribute("aria-selected", "true", timeout=30_000)


def _history(page: Page, back: bool) -> None:
    """Back or Forward, then wait for the rerun it causes (``rerun`` settles for idle when a quick rerun left no
    trace in the DOM: one Back in a CI run waited 120 s for a run the counter never saw)."""
    with rerun(page):
        page.go_back() if back else page.go_forward()


def test_back_and_forward_step_through_models_tabs_and_pages(page: Page, app_url: str) -> None:
    open_page(page, f"{app_url}/architectures?model=resnet50")
    _pick(page, "Model", "VGG-16")
    with rerun(page):
        page.get_by_role("tab", name="Block diagram").click()
    _pick(page, "Model", "Inception-v3")
    with rerun(page):
        page.get_by_role("link", name="Compare").first.click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    views = [("Inception-v3", "Block diagram"), ("VGG-16", "Block diagram"), ("VGG-16", None), ("ResNet-50", None)]
    for model, tab in views:  # Back, four times (the page change is one of them)
        _history(page, back=True)
        _shows(page, model, tab)
    for model, tab in reversed(views[:-1]):  # and Forward again
        _history(page, back=False)
        _shows(page, model, tab)


def test_back_from_a_page_opened_by_its_link_returns_to_the_page_before(page: Page, app_url: str) -> None:
    """Opening Architectures at its default model adds no history entry of its own (it used to write
    ``?model=resnet50``, so the first Back stayed on Architectures)."""
    open_page(page, app_url)
    with rerun(page):
        page.get_by_role("link", name="Architectures").first.click()
    expect(page.get_by_role("combobox", name="Model")).to_have_value("ResNet-50", timeout=30_000)
    assert "model=" not in page.url
    _history(page, back=True)
    expect(page.get_by_role("heading", name="CNN Architecture Explorer")).to_be_visible(timeout=30_000)


@pytest.fixture(scope="module")
def classify_url(digits_run: str) -> Iterator[str]:
    """The app on the test session's state folder, where ``digits_run`` trained a LeNet-5 Classify can use."""
    with serve(state_dir=os.environ["CNN_EXPLORER_STATE"]) as running:
        yield running.url


def _photo(page: Page, name: str) -> None:
    expect(page.get_by_role("combobox", name="Photo")).to_have_value(name, timeout=30_000)


def test_back_and_forward_step_through_classifys_image_choices(page: Page, classify_url: str) -> None:
    open_page(page, f"{classify_url}/classify")
    _pick(page, "Photo", "coffee")
    _pick(page, "Photo", "astronaut")
    with rerun(page):
        page.get_by_role("radiogroup", name="Image").get_by_text("Upload", exact=True).click()
    expect(page.locator(".st-key-classify-upload")).to_be_visible()
    _history(page, back=True)
    _photo(page, "astronaut")
    assert "classify-sample=astronaut" in page.url
    _history(page, back=True)
    _photo(page, "coffee")
    _history(page, back=True)
    _photo(page, "cat (Chelsea)")
    assert "classify-sample" not in page.url  # the default is left out of the URL
    _history(page, back=False)
    _photo(page, "coffee")
    _history(page, back=False)
    _history(page, back=False)
    expect(page.locator(".st-key-classify-upload")).to_be_visible()
