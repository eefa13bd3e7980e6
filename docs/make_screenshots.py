"""Regenerate docs/screenshots/*.png from the running app (needs Debian's chromium).

    python docs/make_screenshots.py
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from explorer import live_curves  # noqa: E402
from tests.browser import (  # noqa: E402
    CHROMIUM_FLAGS,
    chromium_path,
    open_page,
    rerun,
    running_app,
    wait_until_drawn,
    wait_until_idle,
    watch_script_runs,
)

SHOTS = [  # file name, path, tab to open (or None), window height
    ("home", "/", None, 1600),
    ("architectures", "/architectures?model=resnet50", None, 1600),
    ("architectures-diagram", "/architectures?model=xception", "Block diagram", 1600),
    ("architectures-topology", "/architectures?model=inception_v3&tab=Block+diagram&open-inception_v3=Mixed_5b",
     None, 3000),
    ("architectures-fidelity", "/architectures?model=alexnet", "Fidelity to the course notes", 1600),
    ("architectures-design", "/architectures?design=" + urllib.parse.quote(
        "name mynet; input 1x28x28; conv 8 k3 p1 bn; residual { conv 8 k3 p1; conv 8 k3 p1 }; maxpool 2; "
        "parallel { conv 8 k1 | conv 8 k3 p1 }; maxpool 2; fc 32; fc 10"), "Block diagram", 2400),
    ("architectures-catalogue", "/architectures?model=tv:densenet121", None, 1600),
    ("compare", "/compare", None, 1600),
    ("transfer", "/transfer", None, 1600),
]
CLASSIFY = "classify"  # captured after the training run above: the trained LeNet-5 reads a sample
TRAINING = "training"  # started, then captured once the run has finished
LIVE, LIVE_EPOCHS = "training-live", 150  # the same run, captured a third of the way through
# Presenter mode on a 1280×720 projector: file name, path, and the element the projected view is scrolled to.
FRESH = ("presenter-classify-fresh", "/classify?present=1", "text=Get the ImageNet weights of")  # before any model
PRESENTER = [  # once a model is trained
    ("presenter-architectures", "/architectures?model=resnet50&present=1", None),
    ("presenter-topology", "/architectures?model=inception_v3&tab=Block+diagram&open-inception_v3=Mixed_5b&present=1",
     '[data-testid="stGraphVizChart"] g.cluster'),  # the opened module
    ("presenter-compare", "/compare?present=1", None),
    ("presenter-classify", "/classify?present=1", ".st-key-classify-gradcam"),
    ("presenter-inside", "/inside?present=1", ".st-key-inside-stage"),
    ("presenter-classify-saliency", "/classify?present=1&classify-cam-method=Saliency",
     ".st-key-classify-cam-method"),  # the method's choice, above its maps
]
REPLAY = "presenter-replay"  # the trained run replayed at 5× from its link, caught a third of the way
STROKES = [(210, 60), (190, 110), (160, 170), (140, 230)]  # a 7, drawn from (70, 60) on the pad


def draw_seven(page) -> None:
    """Draw a 7 on the first drawing pad of the page."""
    pad = page.get_by_label("Digit drawing pad").first  # not the data grids, which draw on canvases too
    pad.wait_for(state="visible")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    page.mouse.move(box["x"] + 70, box["y"] + 60)
    page.mouse.down()
    for x, y in STROKES:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
    page.mouse.up()


def element_shot(page, selector: str, path: Path) -> None:
    """A screenshot of one element, once its charts have drawn."""
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    wait_until_drawn(page)
    element.screenshot(path=str(path))
    print("wrote", path)


def projected(page, url: str, name: str, path: str, focus: str | None, out: Path) -> None:
    """What a 1280×720 projector shows of ``path``, scrolled to ``focus``."""
    open_page(page, url + path)
    if focus:
        element = page.locator(focus).first
        element.wait_for(state="visible", timeout=120_000)
        element.evaluate("e => e.scrollIntoView({block: 'start'})")
    wait_until_drawn(page)
    page.screenshot(path=str(out / f"{name}.png"))
    print("wrote", out / f"{name}.png")


def replayed(page, url: str, run_id: str, out: Path) -> None:
    """The run replayed at 5× in presenter mode, once a third of its epochs have been drawn."""
    open_page(page, f"{url}/training?run={run_id}&replay=5&present=1")
    progress = page.get_by_text(re.compile(rf"^Replay at 5× · Epoch \d+/{LIVE_EPOCHS}"))
    progress.wait_for(timeout=120_000)
    while int(re.search(r"Epoch (\d+)/", progress.inner_text())[1]) < LIVE_EPOCHS // 3:
        page.wait_for_timeout(250)
    page.locator(".st-key-replay").evaluate("e => e.scrollIntoView({block: 'start'})")  # the speed, then the view
    page.screenshot(path=str(out / f"{REPLAY}.png"))
    print("wrote", out / f"{REPLAY}.png")


def main() -> None:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with running_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        watch_script_runs(context)  # every wait below is on a condition, never a pause
        page = context.new_page()
        for name, path, tab, height in SHOTS:
            page.set_viewport_size({"width": 1400, "height": height})
            open_page(page, url + path)
            if tab:
                page.get_by_role("tab", name=tab).click()
                page.get_by_role("tabpanel", name=tab).wait_for(state="visible")
            wait_until_drawn(page)
            page.screenshot(path=str(out / f"{name}.png"))
            print("wrote", out / f"{name}.png")
        page.set_viewport_size({"width": 1280, "height": 720})
        projected(page, url, *FRESH, out)  # a fresh install, offline: which file to place, and where
        page.set_viewport_size({"width": 1400, "height": 1600})
        open_page(page, url + "/training")
        page.get_by_text("Hyperparameters").click()
        epochs = page.get_by_role("spinbutton", name="Epochs")
        epochs.fill(str(LIVE_EPOCHS))  # long enough to be caught live
        epochs.press("Enter")  # submits the form
        epochs.blur()  # else "Press Enter to submit form" stays over the number in the screenshots
        page.get_by_alt_text(live_curves.ALT).wait_for(timeout=300_000)
        progress = page.get_by_text(re.compile(rf"Epoch \d+/{LIVE_EPOCHS}"))
        while int(re.search(r"Epoch (\d+)/", progress.inner_text())[1]) < LIVE_EPOCHS // 3:
            page.wait_for_timeout(500)
        page.screenshot(path=str(out / f"{LIVE}.png"))
        print("wrote", out / f"{LIVE}.png")
        page.get_by_text("Test accuracy").wait_for(timeout=900_000)
        wait_until_idle(page)
        wait_until_drawn(page)
        page.set_viewport_size({"width": 1400, "height": 2300})
        page.screenshot(path=str(out / f"{TRAINING}.png"))
        print("wrote", out / f"{TRAINING}.png")
        run_id = page.url.split("run=")[1].split("&")[0]
        page.set_viewport_size({"width": 1400, "height": 1900})
        open_page(page, url + "/classify")
        with rerun(page):
            # the LeNet-5 just trained reads a drawn 7
            page.get_by_role("radiogroup", name="Image").get_by_text("Draw a digit", exact=True).click()
        draw_seven(page)
        page.get_by_text("Top predictions").wait_for(timeout=60_000)
        wait_until_idle(page, after=0)
        wait_until_drawn(page)
        page.screenshot(path=str(out / f"{CLASSIFY}.png"))
        print("wrote", out / f"{CLASSIFY}.png")
        element_shot(page, ".st-key-classify-gradcam", out / "classify-gradcam.png")
        with rerun(page):
            page.get_by_text("Sample photos").click()  # a 451×300 photo: each step to scale
        element_shot(page, ".st-key-classify-steps", out / "classify-preprocessing.png")
        page.set_viewport_size({"width": 1400, "height": 3600})
        open_page(page, url + "/inside")
        with rerun(page):
            page.get_by_role("radiogroup", name="Image").get_by_text("Draw a digit", exact=True).click()
        draw_seven(page)
        page.get_by_text("A convolution, computed by hand").wait_for(timeout=60_000)
        wait_until_idle(page, after=0)
        wait_until_drawn(page)
        page.screenshot(path=str(out / "inside.png"))
        print("wrote", out / "inside.png")
        page.set_viewport_size({"width": 1280, "height": 720})
        for name, path, focus in PRESENTER:
            projected(page, url, name, path, focus, out)
        replayed(page, url, run_id, out)
        browser.close()


if __name__ == "__main__":
    main()
