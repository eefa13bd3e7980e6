"""The learning-rate finder on the Training page (AppTest): the sweep runs as a run in a worker, the page draws
its curve and both suggestions, and a click puts the suggested rate into the form."""

from __future__ import annotations

import pytest

from tests.apptest import open_page, texts


def test_the_finder_suggests_a_rate_and_fills_the_form_with_it() -> None:
    from core.training import lr_finder, lr_sweep
    from explorer import lr_finder_view, services

    at = open_page("training")
    next(b for b in at.button if b.label == "Find a learning rate").click().run()
    assert not at.exception
    run_id = at.session_state[lr_finder_view.RUN_KEY]
    assert services.run(run_id).config["lr_find"]
    assert services.run_store().wait(run_id, timeout=300) == "completed"
    at.run()
    assert not at.exception
    assert "Suggested rates" in texts(at)
    points = services.run_store().metrics(run_id, lr_sweep.KIND)
    suggestion = lr_finder.suggest([p["lr"] for p in points], lr_finder.smooth([p["loss"] for p in points]))
    next(b for b in at.button if "steepest descent" in b.label).click().run()
    assert not at.exception
    values = {n.label: n.value for n in at.number_input}
    assert values["Learning rate"] == pytest.approx(max(suggestion.steepest, lr_finder_view.LOWEST))
