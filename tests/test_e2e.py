"""End to end: the real server, a real browser, every page."""

from __future__ import annotations

import re
import urllib.parse
import zipfile

import pytest

from explorer import live_curves
from tests.browser import App, draw_a_one, no_exception, open_page, rerun, wait_until_idle
from tests.conftest import png, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402


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
    no_exception(page)


def test_resnet50_layer_table_shows_its_parameters(page: Page, app_url: str) -> None:
    open_page(page, f"{app_url}/architectures?model=resnet50")
    expect(page.get_by_text("Total: 25,557,032 parameters")).to_be_visible()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("25.6 M")  # exact in its help
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()


def test_navigation_and_block_diagram(page: Page, app_url: str) -> None:
    open_page(page, app_url)
    with rerun(page):
        page.get_by_role("link", name="Architectures").first.click()
    page.get_by_role("tab", name="Block diagram").click()
    expect(page.locator('[data-testid="stGraphVizChart"] svg')).to_be_visible(timeout=60_000)
    no_exception(page)


def test_too_small_an_input_is_a_message(page: Page, app_url: str) -> None:
    open_page(page, f"{app_url}/architectures?model=inception_v3")
    field = page.get_by_role("spinbutton", name="Input size (px)")
    field.fill("60")
    with rerun(page):
        field.press("Enter")
    expect(page.get_by_text("smallest input it accepts, 75×75 px")).to_be_visible()
    no_exception(page)


def _epoch(page: Page) -> int:
    """The epoch the progress bar shows (0 before the first)."""
    text = " ".join(page.locator('[data-testid="stProgress"]').all_inner_texts())
    match = re.search(r"Epoch (\d+)", text)
    return int(match.group(1)) if match else 0


def _run_id(page: Page) -> str:
    """The run named in the page's URL."""
    run_id = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query).get("run", [""])[0]
    assert run_id, f"no run= in {page.url}"
    return run_id


# How long a run may take to start or finish: generous, because these are conditions, not pauses; a quiet
# machine is done in seconds, a 2-core machine shared with other work can take minutes.
RUN_STARTS = 300_000
RUN_ENDS = 600_000


def _status(app: App, run_id: str) -> str:
    return str(app.store().run(run_id).status)


def test_training_run_survives_a_refresh_stops_resumes_and_its_checkpoint_downloads(page: Page, app: App,
                                                                                   tmp_path) -> None:
    from safetensors.torch import load_file

    open_page(page, f"{app.url}/training")
    page.get_by_text("Hyperparameters").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("400")
    epochs.press("Enter")  # Enter in a form field submits the form, as the "Start training" button does
    expect(page.get_by_text("images/s")).to_be_visible(timeout=RUN_STARTS)  # a worker process trains it
    expect(page.get_by_alt_text(live_curves.ALT)).to_be_visible()  # the live curves, drawn by the server
    run_id = _run_id(page)
    assert _status(app, run_id) == "running"
    first = _epoch(page)
    wait_until(lambda: _epoch(page) > first, 180, f"the progress bar to pass epoch {first}", poll=0.5)
    page.reload()  # a refresh reattaches to the running job through the URL
    wait_until_idle(page)
    expect(page.get_by_text("images/s")).to_be_visible(timeout=60_000)
    # by key (Streamlit's header has a Stop button too); .first: a page redrawn by its fragment can hold the old copy
    stop = page.locator(f".st-key-stop-{run_id} button").first
    stop.click()
    wait_until(lambda: _status(app, run_id) == "stopped", 120, f"run {run_id} to be stopped in the store")
    resume = page.locator(f".st-key-resume-{run_id} button").first
    expect(resume).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Test accuracy")).to_be_visible()
    wait_until_idle(page)
    resume.click()
    wait_until(lambda: _status(app, run_id) == "running", 180, f"run {run_id} to train again")
    expect(stop).to_be_visible(timeout=60_000)
    stop.click()
    wait_until(lambda: _status(app, run_id) == "stopped", 120, f"run {run_id} to be stopped again")
    expect(resume).to_be_visible(timeout=60_000)
    wait_until_idle(page)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Last checkpoint").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith("-last.safetensors") and load_file(str(saved))  # real weights, not a page
    no_exception(page)


def test_a_zip_of_class_folders_is_fine_tuned_in_the_browser(page: Page, app: App, tmp_path) -> None:
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        for label, colour in (("cats", "orange"), ("dogs", "brown")):
            for i in range(6):
                writer.writestr(f"pets/{label}/{i}.png", png(colour))
        writer.writestr("__MACOSX/pets/._x", b"fork")
    open_page(page, f"{app.url}/transfer")
    with rerun(page):
        page.get_by_text("Upload a zip of class folders").click()
    with rerun(page):
        page.locator('input[type="file"]').nth(1).set_input_files(str(archive))
    expect(page.get_by_text("2 classes, 12 images")).to_be_visible(timeout=60_000)
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    with rerun(page):
        epochs.press("Tab")
    page.get_by_role("button", name="Start fine-tuning").click()
    expect(page.get_by_text("Test accuracy")).to_be_visible(timeout=RUN_ENDS)
    expect(page.get_by_text("feature cache")).to_be_visible()
    wait_until(lambda: [run.status for run in app.store().runs()] == ["completed"], 60,
               "the fine-tuning run to be completed in the store")
    no_exception(page)


def _open_classify_with_a_digits_model(page: Page, app: App) -> None:
    """Open Classify on a fresh app and use its one-click LeNet-5 training on digits."""
    open_page(page, f"{app.url}/classify")
    expect(page.get_by_text("No model can classify yet")).to_be_visible()
    page.get_by_role("button", name="Train LeNet-5 on digits now").click()
    # the run streams on the page; once it ends, the page turns into the classifier
    expect(page.get_by_text("What the model sees")).to_be_visible(timeout=RUN_ENDS)
    wait_until(lambda: [run.status for run in app.store().runs()] == ["completed"], 60,
               "the one-click run to be completed in the store")
    wait_until_idle(page)


def test_classify_trains_a_first_model_then_classifies_an_upload(page: Page, app: App, tmp_path) -> None:
    from PIL import Image

    _open_classify_with_a_digits_model(page, app)
    photo = tmp_path / "seven.png"
    digit = Image.new("RGB", (160, 160), "white")
    digit.paste((0, 0, 0), (60, 20, 90, 140))
    digit.save(photo)
    with rerun(page):  # the image source, not the weights panel's uploader, which also says "Upload"
        page.get_by_role("radiogroup", name="Image").get_by_text("Upload", exact=True).click()
    page.locator('.st-key-classify-upload input[type="file"]').set_input_files(str(photo))
    expect(page.get_by_text("What the model sees")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Top predictions")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Grad-CAM for")).to_be_visible()
    no_exception(page)

    # The digit pad, with the LeNet-5 just trained (the only model, so the one selected).
    with rerun(page):
        page.get_by_role("radiogroup", name="Image").get_by_text("Draw a digit", exact=True).click()
    expect(page.get_by_text("The pad is empty")).to_be_visible(timeout=60_000)
    draw_a_one(page, page.locator(".st-key-classify-pad canvas"))  # not the data grids' canvases
    expect(page.get_by_text("Centred by mass in 28×28", exact=True).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Top predictions")).to_be_visible()
    no_exception(page)


def test_a_refresh_during_a_race_shows_its_data_set_settings_and_whole_epochs(page: Page, app: App) -> None:
    from core import data, training, transfer
    from tests.conftest import make_image_folder

    folder = make_image_folder(app.state_dir / "folders" / "race-photos", classes=("cat", "dog", "fox"))
    store, group = app.store(), "group-refreshed"
    for strategy, lr in transfer.STRATEGIES.items():  # an ended race on random weights, written into the store
        config = training.TrainConfig(arch="resnet18", dataset=data.FOLDER_PREFIX + str(folder.resolve()),
                                      strategy=strategy, optimizer="adam", lr=lr, weight_decay=0.0, epochs=3,
                                      batch_size=16)
        run_id = store.create_run(config, status="running", group=group, worker="test")
        for epoch in (1, 2, 3):
            store.log(run_id, "epoch", epoch, 10 * epoch, float(epoch),
                      {"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.3, "val_acc": 0.1 * epoch})
        store.update_run(run_id, status="stopped", best_val_acc=0.3, elapsed=3.0)
    open_page(page, f"{app.url}/transfer?group={group}")  # what a refresh during the race loads
    expect(page.get_by_role("heading", name="Strategy race")).to_be_visible()
    expect(page.get_by_role("radio", name="The data set of the runs below")).to_be_checked()
    expect(page.get_by_text("3 classes, 18 images")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Epochs")).to_have_value("3")
    expect(page.get_by_role("spinbutton", name="Batch size")).to_have_value("16")
    expect(page.get_by_text("no ImageNet file for ResNet-18").first).to_be_visible()
    ticks = page.locator('.st-key-race-curves .xtick text')
    expect(ticks.first).to_be_visible()
    labels = {text.strip() for text in ticks.evaluate_all("nodes => nodes.map(node => node.textContent)")}
    assert labels and all(label.isdigit() for label in labels), labels  # whole epochs, never 1.5
    no_exception(page)
