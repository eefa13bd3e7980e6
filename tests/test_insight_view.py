"""The mistakes and the embedding map of a finished run on the Training page, through AppTest."""

from __future__ import annotations

import pytest

from tests.apptest import open_page


@pytest.mark.parametrize("present", ["0", "1"])
def test_a_finished_run_shows_a_cells_images_and_the_embedding_map(digits_run: str, present: str) -> None:
    at = open_page("training", run=digits_run, present=present)
    at.toggle(key=f"insight-{digits_run}").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    cells = at.selectbox(key=f"insight-cell-{digits_run}")
    assert cells.value.startswith("Highest-loss images")
    captions = [c.value for c in at.caption if "top-3:" in c.value]
    assert 0 < len(captions) <= 24
    losses = [float(c.split(" · loss ")[1].split(" ")[0]) for c in captions]
    assert losses == sorted(losses, reverse=True)
    if len(cells.options) > 1:  # a real confusion cell: only its images, true class as chosen
        cells.set_value(cells.options[1]).run()
        assert not at.exception
        true = cells.options[1].split(" → ")[0]
        chosen = [c.value for c in at.caption if "top-3:" in c.value]
        assert chosen and all(f"true {true} ·" in c for c in chosen)
    charts = [c for c in at.get("plotly_chart")]
    assert any("PCA of" in c.proto.spec for c in charts)
