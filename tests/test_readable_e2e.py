"""Readable from the back of the room: in presenter mode at 1280×720 and at 1024 px, chart text is at least 14 px
on screen, confusion-matrix cells at least 40 px, no label is cut, nothing says "None", and Home lists every page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import OVERFLOW, chromium_path, open_page, serve, wait_until_drawn, watch_script_runs

pytestmark = pytest.mark.e2e

if chromium_path() is None:
    pytest.skip("no chromium on this machine: `apt-get install chromium` to run the browser tests",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

MIN_FONT_PX, MIN_CELL_PX = 14, 40
SIZES = [(1280, 720), (1024, 768)]

# Every visible SVG text of the Plotly charts: its font size on screen (the computed size times the SVG's scale).
CHART_FONTS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] svg.main-svg text')]
  .filter(t => t.getClientRects().length && (t.textContent || '').trim())
  .map(t => { const m = t.getScreenCTM();  // rotated axis titles: the scale is the length of (a, b)
    return {text: t.textContent.trim(), px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b)}; })"""

# Text cut short in the main column: any element that clips its own text (ellipsis, or hidden overflow on one line)
# and holds more than it shows: widget and metric labels, buttons, popovers, page links, captions.
# (A choice box shows a long option shortened, as every select does: other tests' runs with long names share this
# state folder.)
CUT_LABELS = """() => [...document.querySelectorAll('[data-testid="stMain"] *')]
  .filter(e => { const s = getComputedStyle(e);
    return e.getClientRects().length && (e.textContent || '').trim() && !e.closest('[data-testid="stDataFrame"]')
      && !e.closest('[data-testid="stSelectbox"], [data-testid="stMultiSelect"]')
      && (s.textOverflow === 'ellipsis' || (s.whiteSpace === 'nowrap' && s.overflowX === 'hidden'))
      && e.scrollWidth > e.clientWidth + 1; })
  .map(e => e.textContent.trim())"""

# Tables (Glide data grids) that hide rows or columns behind their own scroll bar: a table meant to show every row
# whose height was sized for smaller type, or columns wider than the page.
GRID_CLIPPED = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
  .filter(e => e.scrollHeight > e.clientHeight + 2 || e.scrollWidth > e.clientWidth + 2)
  .map(e => ({rows: [e.scrollHeight, e.clientHeight], columns: [e.scrollWidth, e.clientWidth]}))"""


def _cut(page: Any) -> list[str]:
    """Texts cut short on the page, less the hostile tests' deliberately long names (they share this state folder,
    and Classify opens on the most accurate run, which can be theirs)."""
    return [text for text in page.evaluate(CUT_LABELS) if "onerror" not in text and "Click here" not in text]


@pytest.fixture(scope="module")
def readable_app(digits_run: str) -> Iterator[Any]:
    """The app on the test session's state folder, where ``digits_run`` trained a LeNet-5."""
    with serve(state_dir=os.environ["CNN_EXPLORER_STATE"]) as running:
        yield running


def _context(browser: Any, width: int, height: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    watch_script_runs(context)
    return context


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_finished_run_reads_from_the_back_of_the_room(readable_app: Any, digits_run: str, browser: Any,
                                                        width: int, height: int) -> None:
    context = _context(browser, width, height)
    try:
        page = context.new_page()
        open_page(page, f"{readable_app.url}/training?run={digits_run}&present=1")
        matrix = page.locator(f".st-key-confusion-{digits_run}")
        matrix.scroll_into_view_if_needed()
        wait_until_drawn(page)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        assert page.evaluate(OVERFLOW) == []
        small = [f for f in page.evaluate(CHART_FONTS) if f["px"] < MIN_FONT_PX - 0.05]
        assert not small, small
        plot = matrix.locator(".nsewdrag").first.bounding_box()
        classes = 10
        assert plot and plot["width"] / classes >= MIN_CELL_PX and plot["height"] / classes >= MIN_CELL_PX, plot
        # The live curves' image: its text (15 × PRESENTER_SCALE in a 1200-wide viewBox) at ≥ 14 px in this column.
        from explorer import live_curves

        column = page.locator('[data-testid="stMainBlockContainer"]').evaluate(
            "e => { const s = getComputedStyle(e); "
            "return e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); }")
        assert 15 * live_curves.PRESENTER_SCALE * column / live_curves.WIDTH >= MIN_FONT_PX, column
        _misclassified_grid_fits(page, digits_run)
        assert _cut(page) == []
        history = page.locator('[data-testid="stMain"]').inner_text()
        assert "None" not in history.split()
    finally:
        context.close()


def _misclassified_grid_fits(page: Any, run_id: str) -> None:
    """No two pictures of the misclassified grid overlap, and each caption is one line."""
    figures = page.locator(f".st-key-misclassified-{run_id} figure")
    assert figures.count() > 0
    boxes = [figures.nth(i).bounding_box() for i in range(figures.count())]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["width"] <= b["x"] + 0.5 or b["x"] + b["width"] <= a["x"] + 0.5
                     or a["y"] + a["height"] <= b["y"] + 0.5 or b["y"] + b["height"] <= a["y"] + 0.5)
            assert apart, (a, b)
    lines = page.locator(f".st-key-misclassified-{run_id} figcaption").evaluate_all(
        "cs => cs.map(c => Math.round(c.getBoundingClientRect().height / parseFloat(getComputedStyle(c).lineHeight)))")
    assert set(lines) == {1}, lines


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_home_lists_every_page_whole_and_answers_at_slash_home(readable_app: Any, browser: Any, width: int,
                                                               height: int) -> None:
    from explorer import navigation

    context = _context(browser, width, height)
    try:
        page = context.new_page()
        open_page(page, f"{readable_app.url}/home?present=1")
        links = page.locator('[data-testid="stMain"] [data-testid="stPageLink"]')
        expect(links).to_have_count(len(navigation.PAGES) - 1)  # /home leads to Home (at "/"), with its links
        expect(page.get_by_text("Page not found")).to_have_count(0)
        assert page.url.endswith("/?present=1"), page.url  # presenter mode kept
        titles = [t.strip().splitlines()[-1] for t in links.all_inner_texts()]  # after the icon's ligature name
        assert titles == [p.title for p in navigation.PAGES if p is not navigation.HOME]
        assert _cut(page) == []
        assert page.evaluate(OVERFLOW) == []
        page.locator('[data-testid="stDataFrame"]').first.scroll_into_view_if_needed()
        expect(page.locator('[data-testid="stDataFrame"] .dvn-scroller')).to_have_count(1)
        assert page.evaluate(GRID_CLIPPED) == []  # every model, every column, no inner scroll bar
    finally:
        context.close()


CHART_PAGES = ["/compare", "/architectures?model=resnet50&tab=Charts", "/classify", "/inside"]


@pytest.mark.parametrize("path", CHART_PAGES)
def test_chart_text_is_large_enough_on_every_chart_page(readable_app: Any, browser: Any, path: str) -> None:
    """Every Plotly chart's text at ≥ 14 px on a 1280×720 projector, and no text cut short."""
    context = _context(browser, 1280, 720)
    try:
        page = context.new_page()
        open_page(page, f"{readable_app.url}{path}&present=1" if "?" in path else f"{readable_app.url}{path}?present=1")
        wait_until_drawn(page)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        charts = page.locator('[data-testid="stPlotlyChart"]')
        for i in range(charts.count()):  # drawn when scrolled into view
            charts.nth(i).scroll_into_view_if_needed()
        wait_until_drawn(page)
        small = [f for f in page.evaluate(CHART_FONTS) if f["px"] < MIN_FONT_PX - 0.05]
        assert not small, small
        assert _cut(page) == []
        if path == "/compare":  # its tables show every model (a layer table elsewhere scrolls on purpose)
            assert [g for g in page.evaluate(GRID_CLIPPED) if g["rows"][0] > g["rows"][1] + 2] == []
    finally:
        context.close()
