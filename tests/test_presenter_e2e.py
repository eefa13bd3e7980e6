"""Presenter mode in a real browser: every page at 1280×720 with ?present=1, nothing wider than its column."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.browser import (
    OVERFLOW,
    ROOT,
    chromium_path,
    open_page,
    rerun,
    running_app,
    wait_until_drawn,
    wait_until_idle,
    watch_script_runs,
)

pytestmark = pytest.mark.e2e

if chromium_path() is None:
    pytest.skip("no chromium on this machine: `apt-get install chromium` to run the browser tests",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

PAGES = ["/", "/architectures?model=inception_v3&tab=Block+diagram", "/architectures?model=resnet152&tab=Charts",
         "/compare", "/training", "/transfer", "/classify", "/inside"]


def _digits_model(state) -> None:
    """A LeNet-5 trained on the bundled digits by one worker, so Classify and Inside the network have a model."""
    from core import training
    from core.runs import RunStore

    store = RunStore(state)
    run_id = store.create_run(training.preset("Fast", arch="lenet5", dataset="digits", epochs=2).validate())
    subprocess.run([sys.executable, "-m", "core.worker", "--state", str(state), "--device", "cpu", "--once"],
                   cwd=ROOT, check=True, timeout=900, env={**os.environ, "CNN_EXPLORER_STATE": str(state)})
    assert store.run(run_id).status == "completed"


def test_every_page_fits_a_projector_in_presenter_mode(tmp_path, browser) -> None:
    state = tmp_path / "state"
    _digits_model(state)
    with running_app(state_dir=str(state)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        try:
            watch_script_runs(context)
            page = context.new_page()
            for path in PAGES:
                open_page(page, url + path + ("&" if "?" in path else "?") + "present=1")
                wait_until_drawn(page)
                expect(page.locator('[data-testid="stException"]')).to_have_count(0)
                assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "20px", path
                expect(page.locator(".st-key-presenter-mode input")).to_be_checked()
                assert "present=1" in page.url, path
                assert page.evaluate(OVERFLOW) == [], path
            # On Inside the network, a click on a feature map moves the receptive field to the clicked position.
            position = page.get_by_text(re.compile(r"^Position \(\d+, \d+\) of"))
            before = position.inner_text()
            plot = page.locator(".st-key-inside-map .nsewdrag").first
            plot.scroll_into_view_if_needed()
            box = plot.bounding_box()
            with rerun(page):
                page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
            expect(position).not_to_have_text(before, timeout=60_000)
            wait_until_idle(page)
            assert position.inner_text().startswith("Position (0, 0) of"), position.inner_text()
            # The switch turns the mode off again, and the URL follows.
            with rerun(page):
                page.get_by_text("Presenter mode").click()
            assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "16px"
            assert "present=1" not in page.url
            _classify_and_compare_state_one_rule(page, url)
        finally:
            context.close()


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d,.]+) ms", text.strip())
    assert match, f"not a latency: {text!r}"
    return float(match.group(1).replace(",", ""))


# "p10–p90 0.29–0.40 ms · CPU · x86_64, 2 threads of 2 cores · measured with no run training"
CLASSIFY_NOTE = re.compile(r"p10–p90 [\d,.]+–[\d,.]+ ms · (?P<conditions>.+ · measured "
                           r"(?:with no run training|while \d+ runs? (?:was|were) training))"
                           r"(?: · a wide spread: .+)?")  # a busy machine: the note says the figure is rough


def _classify_and_compare_state_one_rule(page, url: str) -> None:
    """Classify's latency for the digits LeNet-5 and Compare's for LeNet-5 at batch 1: each page shows a median with
    its p10–p90 and the conditions it was measured under, and the two state the same conditions (one function,
    the same device, threads and load). The two figures are never compared with each other: timings taken at
    different moments differ whatever the rule (that comparison failed a clean CI run)."""
    open_page(page, f"{url}/classify?present=1")
    wait_until_drawn(page)
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Inference latency")
    expect(metric).to_be_visible(timeout=120_000)
    assert _milliseconds(metric.locator('[data-testid="stMetricValue"]').inner_text()) > 0
    note = page.locator(".st-key-classify-latency-conditions").inner_text().strip()
    on_classify = CLASSIFY_NOTE.fullmatch(note)
    assert on_classify, f"Classify states no spread and conditions: {note!r}"
    open_page(page, f"{url}/compare?present=1")
    wait_until_drawn(page)
    for widget, remove in (("models", "AlexNet"), ("models", "ResNet-18"), ("batches", "32")):
        with rerun(page):
            page.locator(f".st-key-latency-{widget}").get_by_role("button", name=f"Remove {remove}").click()
    with rerun(page):
        page.get_by_role("button", name="Measure latency").click()
    bar = page.locator(".st-key-latency-chart text.bartext")
    expect(bar).to_have_count(1, timeout=120_000)
    assert _milliseconds(bar.text_content() or "") > 0
    expect(page.locator(".st-key-latency-chart g.errorbar")).to_have_count(1)  # the spread, as whiskers
    stated = page.locator(".st-key-latency-conditions").inner_text()
    assert "whiskers: p10–p90" in stated, stated
    assert f"Conditions: {on_classify['conditions']}." in stated, (note, stated)
