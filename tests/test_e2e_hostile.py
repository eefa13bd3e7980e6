"""End to end, as a careless user and as an attacker: a bad zip then a good one (with markdown for class names),
trained on; markdown in a URL parameter; nothing of it becomes a link or an image in the real browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import quoted
from tests import hostile
from tests.browser import App, open_page, rerun, wait_until_idle
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402

SHOTS = Path(os.environ.get("CNN_EXPLORER_SHOTS", "/tmp/cnn-explorer-shots"))
CLASS_NAMES = ("[Click here](https:example.com)", "**b** <img src=https:example.com>")


def no_injection(page: Page) -> None:
    """Nothing a user or a file wrote became a link, an image or bold text, and no exception or traceback shows."""
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.locator('a[href*="example.com"]')).to_have_count(0)
    expect(page.locator('img[src*="example.com"]')).to_have_count(0)
    expect(page.locator('a[href^="mailto:"]')).to_have_count(0)
    expect(page.locator('[data-testid="stMarkdownContainer"] .katex')).to_have_count(0)
    assert "Traceback" not in page.inner_text("body")


@pytest.mark.parametrize(("path", "parameter"), [("architectures", "model"), ("transfer", "group")])
def test_markdown_in_a_url_parameter_stays_text(page: Page, app_url: str, path: str, parameter: str) -> None:
    """Transfer's ``?group=`` was a reflected link and an external image (issue 18)."""
    from urllib.parse import quote

    open_page(page, f"{app_url}/{path}?{parameter}={quote(hostile.MARKDOWN)}")
    no_injection(page)
    shown = page.locator('[data-testid="stAlert"]').filter(has_text="Click here").first.inner_text().replace("\u2060", "")
    # every character as typed (no link, emoji, icon, colour or LaTeX), in the message's cut-down quotation
    assert quoted(hostile.MARKDOWN) in shown, shown
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"url-parameter-{parameter}.png"))


def test_a_bad_zip_then_a_good_one_with_markdown_class_names_trains(page: Page, app: App, tmp_path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(hostile.bad_zips()["bad CRC"][0])
    good = tmp_path / "good.zip"
    members = hostile.good_members(per_class=5, names=CLASS_NAMES)
    members[f"{CLASS_NAMES[0]}/cut.jpg"] = hostile.truncated("JPEG")  # extracted, then left out by the scan
    good.write_bytes(hostile.make_zip(members))
    open_page(page, f"{app.url}/transfer")
    with rerun(page):
        page.get_by_text("Upload a zip of class folders").click()
    uploader = page.locator('input[type="file"]').nth(1)
    uploader.set_input_files(str(bad))
    expect(page.get_by_text("cannot be read", exact=False)).to_be_visible(timeout=60_000)
    no_injection(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "bad-zip.png"), full_page=True)
    uploader.set_input_files(str(good))
    expect(page.get_by_text("failed the check", exact=False)).to_be_visible(timeout=60_000)
    expect(page.get_by_text(CLASS_NAMES[0], exact=False).first).to_be_visible()
    no_injection(page)
    page.screenshot(path=str(SHOTS / "good-zip-health.png"), full_page=True)
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    with rerun(page):
        epochs.press("Tab")
    page.get_by_role("button", name="Start fine-tuning").click()
    expect(page.get_by_text("Test accuracy")).to_be_visible(timeout=600_000)  # a condition, not a pause
    wait_until_idle(page)
    wait_until(lambda: [run.status for run in app.store().runs()] == ["completed"], 60,
               "the fine-tuning run to be completed in the store")
    no_injection(page)
    page.screenshot(path=str(SHOTS / "trained.png"), full_page=True)
    open_page(page, f"{app.url}/classify")  # it opens on the only finished run, with a sample photo
    value = page.locator('[data-testid="stMetricValue"]').first
    expect(value).to_be_visible(timeout=120_000)
    no_injection(page)  # issue 18: the Prediction metric rendered a class name as Markdown, a live link
    assert value.inner_text().replace("\u2060", "") in CLASS_NAMES, value.inner_text()
    page.screenshot(path=str(SHOTS / "classify-markdown-class.png"), full_page=True)
