"""Regenerate docs/screenshots/*.png from the running app (needs Debian's chromium).

    python docs/make_screenshots.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import CHROMIUM_FLAGS, chromium_path, running_app, wait_until_idle  # noqa: E402

SHOTS = [  # file name, path, tab to open (or None), window height
    ("home", "/", None, 1600),
    ("architectures", "/architectures?model=resnet50", None, 1600),
    ("architectures-diagram", "/architectures?model=xception", "Block diagram", 1600),
    ("architectures-topology", "/architectures?model=inception_v3&tab=Block+diagram&open-inception_v3=Mixed_5b",
     None, 3000),
    ("architectures-fidelity", "/architectures?model=alexnet", "Fidelity to the course notes", 1600),
    ("compare", "/compare", None, 1600),
    ("transfer", "/transfer", None, 1600),
]
CLASSIFY = "classify"  # captured after the training run above: the trained LeNet-5 reads a sample
TRAINING = "training"  # started, then captured once the run has finished
PRESENTER = [  # presenter mode on a 1280×720 projector, once a model is trained: file name, path
    ("presenter-architectures", "/architectures?model=resnet50&present=1"),
    ("presenter-compare", "/compare?present=1"),
    ("presenter-classify", "/classify?present=1"),
]
STROKES = [(210, 60), (190, 110), (160, 170), (140, 230)]  # a 7, drawn from (70, 60) on the pad


def draw_seven(page) -> None:
    """Draw a 7 on the first drawing pad of the page."""
    box = page.locator("canvas").first.bounding_box()
    page.mouse.move(box["x"] + 70, box["y"] + 60)
    page.mouse.down()
    for x, y in STROKES:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
    page.mouse.up()


def element_shot(page, selector: str, path: Path) -> None:
    """A screenshot of one element (scrolled into view)."""
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    element.screenshot(path=str(path))
    print("wrote", path)


def main() -> None:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with running_app() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        for name, path, tab, height in SHOTS:
            page.set_viewport_size({"width": 1400, "height": height})
            page.goto(url + path)
            wait_until_idle(page)
            if tab:
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(1500)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / f"{name}.png"))
            print("wrote", out / f"{name}.png")
        page.set_viewport_size({"width": 1400, "height": 1600})
        page.goto(url + "/training")
        wait_until_idle(page)
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Test accuracy").wait_for(timeout=480_000)
        wait_until_idle(page)
        page.wait_for_timeout(1500)
        page.set_viewport_size({"width": 1400, "height": 2300})
        page.screenshot(path=str(out / f"{TRAINING}.png"))
        print("wrote", out / f"{TRAINING}.png")
        page.set_viewport_size({"width": 1400, "height": 1900})
        page.goto(url + "/classify")
        wait_until_idle(page)
        page.get_by_text("Draw a digit").click()  # the LeNet-5 just trained reads a drawn 7
        wait_until_idle(page)
        draw_seven(page)
        page.get_by_text("Top predictions").wait_for(timeout=60_000)
        wait_until_idle(page)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / f"{CLASSIFY}.png"))
        print("wrote", out / f"{CLASSIFY}.png")
        element_shot(page, ".st-key-classify-gradcam", out / "classify-gradcam.png")
        page.get_by_text("Sample photos").click()  # a 451×300 photo: each step to scale
        wait_until_idle(page)
        page.wait_for_timeout(1500)
        element_shot(page, ".st-key-classify-steps", out / "classify-preprocessing.png")
        page.set_viewport_size({"width": 1400, "height": 3600})
        page.goto(url + "/inside")
        wait_until_idle(page)
        page.get_by_text("Draw a digit").click()
        wait_until_idle(page)
        draw_seven(page)
        page.get_by_text("A convolution, computed by hand").wait_for(timeout=60_000)
        wait_until_idle(page)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(out / "inside.png"))
        print("wrote", out / "inside.png")
        page.set_viewport_size({"width": 1280, "height": 720})
        for name, path in PRESENTER:
            page.goto(url + path)
            wait_until_idle(page)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(out / f"{name}.png"))
            print("wrote", out / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
