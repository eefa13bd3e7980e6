"""The live curves' SVG: valid, scaled to its data, honest about gaps and constant rates."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

import pytest

from explorer import live_curves

NS = "{http://www.w3.org/2000/svg}"


def _steps(count: int, lr=lambda i: 0.01, loss=lambda i: 2.0 / (i + 1)) -> list[dict[str, float]]:
    return [{"step": i + 1, "train_loss": loss(i), "train_acc": min(1.0, i / count), "lr": lr(i)} for i in range(count)]


def _epochs(count: int) -> list[dict[str, float]]:
    return [{"epoch": e + 1, "step": 10 * (e + 1), "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1),
             "train_acc": 0.5 + e / 20, "val_acc": 0.45 + e / 20} for e in range(count)]


def _parse(text: str) -> ElementTree.Element:
    return ElementTree.fromstring(text)


def _texts(root: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


@pytest.mark.parametrize(("low", "high"), [(0, 1), (0.013, 0.92), (-3, 250), (1e-5, 3e-5), (7, 7)])
def test_nice_ticks_cover_the_range_in_round_steps(low: float, high: float) -> None:
    ticks = live_curves.nice_ticks(low, high)
    assert all(low - 1e-12 <= t <= high + 1e-12 for t in ticks)
    if high > low:
        assert 2 <= len(ticks) <= 11
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
        assert high - ticks[-1] < step and ticks[0] - low < step


def test_nice_ticks_refuse_a_non_finite_range() -> None:
    with pytest.raises(ValueError, match="no ticks"):
        live_curves.nice_ticks(0, math.nan)


def test_a_run_draws_three_panels_with_batch_and_epoch_lines() -> None:
    root = _parse(live_curves.svg(_steps(30), _epochs(3), steps_per_epoch=10))
    texts = _texts(root)
    assert {"Loss", "Accuracy", "Learning rate"} <= set(texts)
    assert {"train (batches)", "train (epochs)", "validation (epochs)", "learning rate"} <= set(texts)
    # loss and accuracy: a batch line, a train and a validation line each; the learning rate: one line
    assert len(list(root.iter(f"{NS}polyline"))) == 7
    assert "constant 0.01" in texts  # a constant rate is said in words, with no value axis
    # every point lies inside the picture
    for line in root.iter(f"{NS}polyline"):
        for point in line.get("points", "").split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= live_curves.WIDTH and 0 <= y <= live_curves.HEIGHT


def test_a_varying_rate_gets_a_log_axis() -> None:
    root = _parse(live_curves.svg(_steps(50, lr=lambda i: 0.1 * 0.9 ** i), [], steps_per_epoch=25))
    texts = _texts(root)
    assert "0.1" in texts and "0.01" in texts  # decades
    assert not any(t.startswith("constant") for t in texts)


def test_a_non_finite_loss_breaks_the_line_instead_of_drawing_it() -> None:
    loss = lambda i: math.nan if i in (10, 11) else 1.0  # noqa: E731
    root = _parse(live_curves.svg(_steps(20, loss=loss), [], steps_per_epoch=10))
    loss_lines = [line for line in root.iter(f"{NS}polyline") if line.get("stroke") == live_curves.BATCH]
    assert len(loss_lines) == 3  # loss in two pieces around the gap, accuracy in one
    assert "nan" not in ElementTree.tostring(root, encoding="unicode").lower()


def test_nothing_finite_yet_is_said() -> None:
    root = _parse(live_curves.svg(_steps(5, loss=lambda i: math.inf), [], steps_per_epoch=5))
    assert "no finite values yet" in _texts(root)


def test_one_epoch_is_a_marker_and_an_empty_run_still_draws() -> None:
    root = _parse(live_curves.svg([], _epochs(1), steps_per_epoch=0))
    assert len(list(root.iter(f"{NS}circle"))) >= 4  # train and validation, loss and accuracy
    empty = _parse(live_curves.svg([], [], steps_per_epoch=0))
    assert "Loss" in _texts(empty)
