"""The live curves' SVG: valid, scaled to its data, honest about gaps and constant rates."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

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


def test_a_run_draws_three_panels_with_batch_and_epoch_lines() -> None:
    root = _parse(live_curves.svg(_steps(30), _epochs(3), steps_per_epoch=10))
    texts = _texts(root)
    assert {"Loss", "Accuracy", "Learning rate"} <= set(texts)
    assert {"train (batches)", "train (epochs)", "validation (epochs)", "learning rate"} <= set(texts)
    # loss and accuracy: a batch line, a train and a validation line each; the learning rate: one line
    assert len(list(root.iter(f"{NS}polyline"))) == 7
    assert "constant 0.01" in texts  # a constant rate is said in words, with no value axis
    # every epoch point lies inside the picture (batch points outside the zoomed axis are clipped)
    height = float(root.get("viewBox", "").split()[3])
    for marker in root.iter(f"{NS}circle"):
        assert 0 <= float(marker.get("cx", -1)) <= live_curves.WIDTH and 0 <= float(marker.get("cy", -1)) <= height
    assert all(line.get("clip-path") for line in root.iter(f"{NS}polyline"))


def test_a_varying_rate_gets_a_log_axis() -> None:
    root = _parse(live_curves.svg(_steps(50, lr=lambda i: 0.1 * 0.9 ** i), [], steps_per_epoch=25))
    texts = _texts(root)
    assert "10⁻¹" in texts and "10⁻²" in texts  # decades, written alike
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


def _accuracy_ticks(root: ElementTree.Element) -> list[float]:
    """The accuracy panel's y tick labels (right-aligned texts between the loss and learning-rate panels)."""
    layout = live_curves.Layout.of(1.0)
    left = layout.left + layout.panel + layout.gap
    return [float(t.text or "") for t in root.iter(f"{NS}text")
            if t.get("text-anchor") == "end" and abs(float(t.get("x", 0)) - (left - 6)) < 1]


def test_the_accuracy_axis_zooms_to_the_data_after_the_first_epoch() -> None:
    """Batches of the first epoch at 20 % must not flatten epochs at 97–99.3 % into one line."""
    steps = [{"step": i + 1, "train_loss": 1.0, "train_acc": 0.2 if i < 10 else 0.98, "lr": 0.01} for i in range(40)]
    epochs = [{"epoch": e + 1, "step": 10 * (e + 1), "train_loss": 0.1, "val_loss": 0.1,
               "train_acc": acc, "val_acc": acc - 0.002} for e, acc in enumerate((0.97, 0.985, 0.993, 0.99))]
    ticks = _accuracy_ticks(_parse(live_curves.svg(steps, epochs, steps_per_epoch=10)))
    assert ticks and min(ticks) >= 0.9, ticks
    assert max(ticks) - min(ticks) <= 0.1, ticks
    step = ticks[1] - ticks[0]
    assert min(abs(step / 10 ** math.floor(math.log10(step)) - m) for m in (1, 2, 5)) < 1e-6  # round ticks


def test_value_range_keeps_a_margin_and_never_goes_below_zero() -> None:
    low, high = live_curves.value_range([(0.5, 0.1), (1.5, 0.96)], [(1.0, 0.95), (2.0, 0.99)], accuracy=True)
    assert 0.9 < low < 0.95 and 0.99 < high <= 1.01
    low, high = live_curves.value_range([(0.5, 2.3), (1.5, 0.02)], [(1.0, 0.05)], accuracy=False)
    assert 0.0 <= low < 0.02 and 0.05 < high < 0.1


def test_presenter_scale_enlarges_every_text_and_keeps_it_in_the_picture() -> None:
    plain = _parse(live_curves.svg(_steps(30), _epochs(3), steps_per_epoch=10))
    large = _parse(live_curves.svg(_steps(30), _epochs(3), steps_per_epoch=10, scale=live_curves.PRESENTER_SCALE))
    sizes = [float(t.get("font-size", 0)) for t in large.iter(f"{NS}text")]
    assert min(sizes) >= 15 * live_curves.PRESENTER_SCALE - 0.1
    assert min(sizes) > max(float(t.get("font-size", 0)) for t in plain.iter(f"{NS}text")) - 3
    height = float(large.get("viewBox", "").split()[3])
    for text in large.iter(f"{NS}text"):
        x, y = float(text.get("x", -1)), float(text.get("y", -1))
        width = 0.55 * float(text.get("font-size", 0)) * len(text.text or "")  # about a glyph's width each
        if text.get("text-anchor") is None:
            assert x + width <= live_curves.WIDTH, text.text  # legend entries wrap rather than run off
        assert 0 <= x <= live_curves.WIDTH and 0 < y <= height, text.text
