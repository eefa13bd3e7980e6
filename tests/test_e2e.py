"""End to end: the real server, a real browser, every page."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.browser import CHROMIUM_FLAGS, chromium_path, running_app, wait_until_idle

pytestmark = pytest.mark.e2e

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: install Debian's chromium (see .ci/run)")
    pytest.skip("no chromium on this machine: `apt-get install chromium` to run the browser tests",
                allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with running_app() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    wait_until_idle(page)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


@pytest.mark.parametrize(("path", "heading"), [
    ("/", "CNN Architecture Explorer"),
    ("/architectures", "Architectures"),
    ("/compare", "Compare"),
    ("/training", "Training"),
    ("/transfer", "Transfer learning"),
    ("/classify", "Classify"),
])
def test_every_page_opens_without_an_exception(page: Page, app_url: str, path: str, heading: str) -> None:
    open_page(page, app_url + path)
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_resnet50_layer_table_shows_its_parameters(page: Page, app_url: str) -> None:
    open_page(page, f"{app_url}/architectures?model=resnet50")
    expect(page.get_by_text("Total: 25,557,032 parameters")).to_be_visible()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("25,557,032")
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()


def test_navigation_and_block_diagram(page: Page, app_url: str) -> None:
    open_page(page, app_url)
    page.get_by_role("link", name="Architectures").first.click()
    wait_until_idle(page)
    page.get_by_role("tab", name="Block diagram").click()
    expect(page.locator('[data-testid="stGraphVizChart"] svg')).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_too_small_an_input_is_a_message(page: Page, app_url: str) -> None:
    open_page(page, f"{app_url}/architectures?model=inception_v3")
    field = page.get_by_role("spinbutton", name="Input size (px)")
    field.fill("60")
    field.press("Enter")
    wait_until_idle(page)
    expect(page.get_by_text("smallest input it accepts, 75×75 px")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_training_run_survives_a_refresh_stops_resumes_and_its_checkpoint_downloads(page: Page, app_url: str,
                                                                                   tmp_path) -> None:
    from safetensors.torch import load_file

    open_page(page, f"{app_url}/training")
    page.get_by_text("Hyperparameters").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("400")
    epochs.press("Enter")  # Enter in a form field submits the form, as the "Start training" button does
    progress = page.get_by_text("images/s")
    expect(progress).to_be_visible(timeout=180_000)  # trained by a worker process, watched through the store
    assert "run=" in page.url
    page.reload()  # a refresh reattaches to the running job through the URL
    wait_until_idle(page)
    expect(page.get_by_text("images/s")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Stopped by the user")).to_be_visible()
    wait_until_idle(page)
    resume.click()
    expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=180_000)  # training again
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=120_000)
    wait_until_idle(page)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_text("Download the last checkpoint").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith("-last.safetensors") and load_file(str(saved))  # real weights, not a page
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_a_zip_of_class_folders_is_fine_tuned_in_the_browser(page: Page, app_url: str, tmp_path) -> None:
    import zipfile

    from tests.test_archives import png

    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        for label, colour in (("cats", "orange"), ("dogs", "brown")):
            for i in range(6):
                writer.writestr(f"pets/{label}/{i}.png", png(colour))
        writer.writestr("__MACOSX/pets/._x", b"fork")
    open_page(page, f"{app_url}/transfer")
    page.get_by_text("Upload a zip of class folders").click()
    wait_until_idle(page)
    page.locator('input[type="file"]').nth(1).set_input_files(str(archive))
    expect(page.get_by_text("2 classes, 12 images")).to_be_visible(timeout=60_000)
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    epochs.press("Tab")
    wait_until_idle(page)
    page.get_by_role("button", name="Start fine-tuning").click()
    expect(page.get_by_text("Test accuracy")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("feature cache")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_classify_trains_a_first_model_then_classifies_an_upload(page: Page, app_url: str, tmp_path) -> None:
    from PIL import Image

    _open_classify_with_a_model(page, app_url)
    photo = tmp_path / "seven.png"
    digit = Image.new("RGB", (160, 160), "white")
    digit.paste((0, 0, 0), (60, 20, 90, 140))
    digit.save(photo)
    page.get_by_text("Upload", exact=True).click()
    wait_until_idle(page)
    page.locator('input[type="file"]').first.set_input_files(str(photo))
    expect(page.get_by_text("What the model sees")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Top predictions")).to_be_visible()
    expect(page.get_by_text("Grad-CAM for")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def _train_digits_model(page: Page, app_url: str) -> None:
    """A short LeNet-5 run on digits through the Training page's defaults."""
    open_page(page, f"{app_url}/training")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Test accuracy")).to_be_visible(timeout=180_000)


def _open_classify_with_a_model(page: Page, app_url: str) -> None:
    """Open Classify; on a fresh server, use its one-click LeNet-5 training first."""
    open_page(page, f"{app_url}/classify")
    if page.get_by_text("No model can classify yet").count():
        page.get_by_role("button", name="Train LeNet-5 on digits now").click()
        # the run streams on the page; once it ends, the page turns into the classifier
        expect(page.get_by_text("What the model sees")).to_be_visible(timeout=120_000)
        wait_until_idle(page)


def test_a_digit_drawn_on_the_pad_is_classified(page: Page, app_url: str) -> None:
    import re

    _open_classify_with_a_model(page, app_url)
    page.locator('[data-testid="stSelectbox"]').first.click()  # the Model box: pick a digits model
    digits = page.get_by_role("option", name=re.compile(r"LeNet-5 · digits"))
    if not digits.count():  # the runs before this test left no digits model: train one
        page.keyboard.press("Escape")
        _train_digits_model(page, app_url)
        open_page(page, f"{app_url}/classify")
        page.locator('[data-testid="stSelectbox"]').first.click()
    digits.first.click()
    wait_until_idle(page)
    page.get_by_text("Draw a digit").click()
    wait_until_idle(page)
    expect(page.get_by_text("The pad is empty")).to_be_visible()
    pad = page.locator("canvas").first
    box = pad.bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(box["x"] + 140, box["y"] + 40 + step * 10)
    page.mouse.up()
    expect(page.get_by_text("Centred by mass in 28×28", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Top predictions")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
