"""A replay opened from a link, in presenter mode, in a real browser: it plays to the run's own final figures, and
the browser's Back returns to the speed chosen before."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.browser import open_page, rerun, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def replay_url(digits_run: str) -> Iterator[str]:
    """The app on the test session's state folder, where ``digits_run`` trained a LeNet-5 on the digits."""
    with serve(state_dir=os.environ["CNN_EXPLORER_STATE"]) as running:
        yield running.url


@pytest.fixture(scope="module")
def slow_run(digits_run: str) -> str:
    """``digits_run`` as if it had trained for 8 s: its rows, figures and status copied into a new run with every
    ``elapsed`` stretched (the digits train in a fraction of a second on a quiet machine, which a 1× replay passes
    between two redraws)."""
    from core import training
    from explorer import services

    store = services.run_store()
    run = store.run(digits_run)
    copy = store.create_run(training.TrainConfig(**run.config), status="running", worker="test")
    stretch = 8.0 / max(run.progress["elapsed"], 1e-3)
    for kind in ("step", "epoch"):
        for row in store.metrics(digits_run, kind):
            values = {k: v for k, v in row.items() if k not in ("epoch", "step", "elapsed")}
            store.log(copy, kind, int(row["epoch"]), int(row["step"]), row["elapsed"] * stretch, values)
    progress = {**run.progress, "elapsed": run.progress["elapsed"] * stretch}
    store.update_run(copy, status="completed", test=run.test, progress=progress, elapsed=progress["elapsed"],
                     best_val_acc=run.best_val_acc, heartbeat=None)
    return copy


def _query(page: Page) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)


def test_a_replay_link_in_presenter_mode_plays_to_the_runs_final_test_accuracy(page: Page, replay_url: str,
                                                                                digits_run: str) -> None:
    from explorer import services

    run = services.run(digits_run)
    accuracy = f"{run.test['accuracy']:.2%}"
    open_page(page, f"{replay_url}/training?run={digits_run}&replay=60&present=1")
    expect(page.get_by_text(re.compile(r"^Replay at 60× · Epoch 3/3 · 100%"))).to_be_visible(timeout=120_000)
    shown = page.get_by_test_id("stMetric").filter(has_text="Test accuracy").get_by_test_id("stMetricValue")
    expect(shown).to_have_text(accuracy, timeout=120_000)
    expect(page.get_by_alt_text(re.compile("^Live curves"))).to_be_visible()  # the curves, as the live view drew them
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "20px", "presenter mode"
    query = _query(page)
    assert query.get("replay") == ["60"] and query.get("present") == ["1"] and query.get("run") == [digits_run]

    with rerun(page):
        page.locator(".st-key-replay button", has_text="10×").click()
    expect(page.get_by_text(re.compile(r"^Replay at 10× · Epoch 3/3 · 100%"))).to_be_visible()
    assert _query(page).get("replay") == ["10"]
    with rerun(page):
        page.go_back()
    expect(page.get_by_text(re.compile(r"^Replay at 60× · "))).to_be_visible()
    assert _query(page).get("replay") == ["60"]
    expect(shown).to_have_text(accuracy)


# Every progress text the page shows, as the fragment redraws it (collected in the page, not by polling from here).
_WATCH_PROGRESS = """() => {
  window.__progressSeen = [];
  const note = () => {
    for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
      const text = bar.innerText.trim();
      if (text && !window.__progressSeen.includes(text)) window.__progressSeen.push(text);
    }
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
  note();
}"""


def test_a_replay_at_1x_draws_the_run_as_it_went_then_its_figures(page: Page, replay_url: str, slow_run: str) -> None:
    """Played out, sent back to the start (where it waits), then played: only the fragment's redraws can take
    it through the epochs to the end."""
    from explorer import services

    digits_run = slow_run  # recorded over 8 s
    accuracy = f"{services.run(digits_run).test['accuracy']:.2%}"
    open_page(page, f"{replay_url}/training?run={digits_run}&replay=1")
    button = f".st-key-replay-clock-{digits_run}-{{}} button"
    # Played out first (8 s at 1×), then "From the start" waits at the start: no race with a Pause button that
    # goes away when the replay ends (on a busy machine the first draw may itself take longer than 8 s).
    expect(page.locator(button.format("play"))).to_contain_text("Play again", timeout=120_000)
    with rerun(page):
        page.locator(button.format("start")).click()
    expect(page.get_by_text(re.compile(r"^Replay at 1× · Starting · 0%"))).to_be_visible()
    expect(page.get_by_text("Test accuracy")).to_have_count(0)
    page.evaluate(_WATCH_PROGRESS)
    page.locator(button.format("play")).click()
    shown = page.get_by_test_id("stMetric").filter(has_text="Test accuracy").get_by_test_id("stMetricValue")
    expect(shown).to_have_text(accuracy, timeout=180_000)
    seen = page.evaluate("window.__progressSeen")
    between = [text for text in seen if re.search(r"· Epoch [12]/3 · ", text)]
    assert between, f"the epochs before the last were shown on the way: {seen}"
    expect(page.get_by_text(re.compile(r"^Replay at 1× · Epoch 3/3 · 100%"))).to_be_visible()
