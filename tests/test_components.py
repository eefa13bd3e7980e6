"""explorer.components: numbers and charts a lecture hall can read (one rule for counts and latencies, round
ticks, no flat "0" rate axis)."""

from __future__ import annotations

import math

import pandas as pd

from core import analysis, models


def test_the_cost_accuracy_chart_labels_every_bubble_on_round_ticks() -> None:
    from explorer import components, services

    summaries = {name: services.summary(name) for name in models.names()}
    table = pd.DataFrame(components.comparison_rows(summaries)).dropna(subset=["top-1 %"])
    figure = components.cost_accuracy_chart(table)
    trace = figure.data[0]
    assert set(trace.text) == set(table["model"]) and "text" in trace.mode and trace.cliponaxis is False
    ticks = figure.layout.xaxis.tickvals
    assert all(round(v / 10 ** math.floor(math.log10(v))) in (1, 2, 5) for v in ticks)  # 1, 2, 5 × 10ⁿ
    assert list(figure.layout.xaxis.ticktext) == [components.count_tick(v) for v in ticks]
    assert len(ticks) <= 7  # decades, or 1, 2, 5 within fewer than two: no label on every minor tick
    y_ticks = figure.layout.yaxis.tickvals
    steps = {b - a for a, b in zip(y_ticks, y_ticks[1:], strict=False)}
    assert all(float(v).is_integer() for v in y_ticks) and len(steps) == 1
    assert [components.count_tick(v) for v in (1e9, 5e8, 2.5e9, 1.14e9)] == ["1 G", "500 M", "2.5 G", "1.14 G"]
    assert analysis.format_count(1e9) == "1.00 G"  # tables keep three digits


def test_every_bubble_label_is_nearest_its_own_bubble_on_the_real_chart() -> None:
    """The 5–9 G cluster (ResNet-50/101, Inception-v3, Xception) once put a label beside a neighbour's bubble."""
    from explorer import components, services

    summaries = {name: services.summary(name) for name in models.names()}
    table = pd.DataFrame(components.comparison_rows(summaries)).dropna(subset=["top-1 %"]).sort_values("MACs")
    _, _, points, radii = components.bubble_layout(table)
    chosen = components.label_positions(points, list(table["model"]), radii)
    spots = [(x * 600, (1 - y) * 430) for x, y in points]
    for own, name, position, radius in zip(spots, table["model"], chosen, radii, strict=True):
        box = components._label_box(*own, len(name) * 8.5, 20, position, radius)
        assert min(spots, key=lambda spot: components._distance(box, spot)) == own, (name, position)


def test_bubble_labels_do_not_overlap() -> None:
    """The crowded corner of the chart (ResNet-50/101/152, Inception-v3, Xception): every label finds a free place."""
    from explorer import components

    points = [(0.52, 0.66), (0.58, 0.72), (0.6, 0.77), (0.66, 0.74), (0.62, 0.86), (0.7, 0.82), (0.8, 0.5),
              (0.83, 0.52)]
    names = ["ResNet-34", "ResNet-50", "Inception-v3", "ResNet-101", "Xception", "ResNet-152", "VGG-16", "VGG-19"]
    radii = [8, 10, 8, 12, 8, 14, 28, 30]
    chosen = components.label_positions(points, names, radii)
    size, boxes = (600, 430), []
    for (x, y), name, position, radius in zip(points, names, chosen, radii, strict=True):
        boxes.append(components._label_box(x * size[0], (1 - y) * size[1], len(name) * 8.5, 20, position, radius))
    assert all(components._overlap(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:]), chosen
    for (x, y), radius in zip(points, radii, strict=True):  # and no label lies on a bubble
        bubble = (x * size[0] - radius * 0.85, (1 - y) * size[1] - radius * 0.85,
                  x * size[0] + radius * 0.85, (1 - y) * size[1] + radius * 0.85)
        assert all(components._overlap(box, bubble) == 0 for box in boxes), chosen
    spots = [(x * size[0], (1 - y) * size[1]) for x, y in points]
    for own, box in zip(spots, boxes, strict=True):  # each label is nearest its own bubble: it reads as that one's
        assert min(spots, key=lambda spot: components._distance(box, spot)) == own, chosen


def test_the_layer_table_shows_macs_among_its_first_columns() -> None:
    from explorer import components

    columns = ["#", "layer", "type", "stage", "kernel", "stride", "padding", "output", "params", "trainable",
               "non-trainable", "MACs", "activation KB", "receptive field", "jump"]
    assert components.layer_columns(columns, presenting=False)[:6] == ["#", "layer", "type", "output", "params", "MACs"]
    assert sorted(components.layer_columns(columns, presenting=False)) == sorted(columns)
    assert "non-trainable" not in components.layer_columns(columns, presenting=True)


def test_every_count_in_the_comparison_is_exact_and_its_display_follows_the_rule() -> None:
    from explorer import components, services

    rows = components.comparison_rows({"resnet50": services.summary("resnet50")})
    assert rows[0]["parameters"] == 25_557_032 and rows[0]["MACs"] == 4_089_184_256  # what the CSV carries
    shown = components.count_columns(pd.DataFrame(rows), ["parameters", "MACs"])
    assert (shown.loc[0, "parameters"], shown.loc[0, "MACs"]) == ("25.6 M", "4.09 G")


def test_a_constant_learning_rate_is_said_not_drawn_at_zero() -> None:
    from explorer import training_view

    steps = [{"step": i, "train_loss": 1.0, "train_acc": 0.5, "lr": 1e-3} for i in range(5)]
    flat = training_view.curves(steps, [], 5)
    assert flat.layout.yaxis3.showticklabels is False
    assert any(a.text == "constant 0.001" for a in flat.layout.annotations)
    decaying = training_view.curves([dict(s, lr=0.1 / (s["step"] + 1)) for s in steps], [], 5)
    assert decaying.layout.yaxis3.type == "log"


def test_latencies_read_the_same_everywhere() -> None:
    from explorer import components

    assert [components.milliseconds(v) for v in (0.2143, 3.0, 12.34, 99.94, 1190.4)] == [
        "0.214 ms", "3 ms", "12.3 ms", "99.9 ms", "1,190 ms"]
