"""The one rule for chart ticks (round values, log axes at decades, zoomed value axes) and for the words the app
names things with (plurals, data sets, strategies, number lists)."""

from __future__ import annotations

import math

import pytest

from core import labels
from explorer import axes


def _round(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6


@pytest.mark.parametrize(("low", "high"), [(0, 1), (0.013, 0.92), (-3, 250), (1e-5, 3e-5), (7, 7), (46, 761),
                                           (0.962, 0.998)])
def test_nice_ticks_cover_the_range_in_round_steps(low: float, high: float) -> None:
    ticks = axes.nice_ticks(low, high)
    assert all(low - 1e-12 <= t <= high + 1e-12 for t in ticks)
    if high > low:
        assert 2 <= len(ticks) <= 11
        step = ticks[1] - ticks[0]
        assert _round(step)
        assert all(abs(t / step - round(t / step)) < 1e-6 for t in ticks)  # multiples of the step: 100, not 46
        assert high - ticks[-1] < step and ticks[0] - low < step


def test_nice_ticks_refuse_a_non_finite_range() -> None:
    with pytest.raises(ValueError, match="no ticks"):
        axes.nice_ticks(0, math.nan)


def test_epoch_ticks_are_whole_epochs() -> None:
    assert axes.epoch_ticks(1, 3) == [1, 2, 3]
    assert all(float(t).is_integer() for t in axes.epoch_ticks(0, 47))


@pytest.mark.parametrize("last", [1, 2, 7, 20, 150])
def test_every_chart_over_epochs_gets_one_axis(last: int) -> None:
    axis = axes.plotly_epochs(last)
    assert axis["title_text"] == "epoch"
    assert axis["tickvals"] and all(float(t).is_integer() and 1 <= t <= max(last, 1) for t in axis["tickvals"])
    assert axis["ticktext"] == [str(int(t)) for t in axis["tickvals"]]


@pytest.mark.parametrize(("low", "high", "expected"), [
    (2e5, 3e10, [1e6, 1e7, 1e8, 1e9, 1e10]),  # many decades: decades only, no label on every minor tick
    (3e8, 2e10, [5e8, 1e9, 2e9, 5e9, 1e10, 2e10]),  # under two decades: 1, 2, 5
    (1e-6, 1e-3, [1e-6, 1e-5, 1e-4, 1e-3]),
])
def test_log_ticks_label_decades_or_one_two_five(low: float, high: float, expected: list[float]) -> None:
    assert axes.log_ticks(low, high) == pytest.approx(expected)


def test_tick_labels_are_short() -> None:
    assert [axes.tick_label(v) for v in (0, 0.5, 250, 1e-4, 2e5)] == ["0", "0.5", "250", "1e-4", "2e5"]


def test_log_labels_write_decades_as_powers() -> None:
    assert [axes.log_label(v) for v in (1e-3, 1e-4, 1, 1e9, 2e-4)] == ["10⁻³", "10⁻⁴", "1", "10⁹", "2e-4"]


def test_zoomed_range_frames_the_focus_with_a_margin() -> None:
    low, high = axes.zoomed_range([0.97, 0.993], floor=0.0)
    assert 0.95 < low < 0.97 and 0.993 < high < 1.0
    assert axes.zoomed_range([math.nan], [0.2, 0.4]) == pytest.approx((0.184, 0.416))
    assert axes.zoomed_range([]) is None
    assert axes.settled([(0.5, 0.2), (1.0, 0.3), (1.5, 0.95)], after=1.0) == [0.95]
    assert axes.settled([(0.5, 0.2)], after=1.0) == [0.2]


def test_plurals() -> None:
    assert labels.plural(1, "model") == "1 model"
    assert labels.plural(3, "model") == "3 models"
    assert labels.plural(1200, "image") == "1,200 images"
    assert labels.plural(2, "class", "classes") == "2 classes"
    assert [labels.every(n, "model") for n in (1, 2, 7)] == ["the model", "both models", "all 7 models"]


def test_data_sets_and_strategies_have_names_not_ids() -> None:
    assert labels.dataset_title("fashion_mnist") == "Fashion-MNIST"
    assert labels.dataset_title("cifar10") == "CIFAR-10"
    assert labels.dataset_title("folder:/srv/state/folders/rock-paper-scissors") == "rock-paper-scissors"
    upload = "folder:/srv/state/uploads/b6c66e9b0f1a2c3d4e5f"
    assert labels.dataset_title(upload) == "uploaded zip"
    assert labels.dataset_title(upload, "pets.zip") == "pets.zip"
    assert labels.dataset_title(upload + "/pets") == "pets"  # the zip's own wrapping folder
    assert labels.strategy_title("feature_extraction") == "Feature extraction"
    assert labels.strategy_title("") == labels.strategy_title(None) == "From scratch"


def test_an_uploaded_zip_is_named_by_the_file_name_kept_beside_it(tmp_path) -> None:
    folder = tmp_path / "uploads" / "0123456789abcdef0123"
    folder.mkdir(parents=True)
    assert labels.dataset_title(f"folder:{folder}") == "uploaded zip"
    (folder / labels.UPLOAD_NAME).write_text("pets\x1b.zip\n")
    assert labels.dataset_title(f"folder:{folder}") == "pets.zip"  # printable characters only


def test_number_lists_have_no_tuple_syntax() -> None:
    assert labels.number_list((0.1307,)) == "0.1307"
    assert labels.number_list((0.485, 0.456, 0.406)) == "0.485, 0.456, 0.406"


@pytest.mark.parametrize(("authors", "cited"), [
    ("Karen Simonyan, Andrew Zisserman", "Simonyan, Zisserman"),
    ("François Chollet", "Chollet"),
    ("Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun", "He et al."),
])
def test_a_table_cites_authors_by_surname_and_et_al_past_two(authors: str, cited: str) -> None:
    assert labels.short_authors(authors) == cited


def test_a_grid_cell_never_reads_minus_zero() -> None:
    from explorer import inside_view

    assert [inside_view._cell(v) for v in (-0.001, 0.0, -0.006, 0.004)] == ["0.00", "0.00", "-0.01", "0.00"]
