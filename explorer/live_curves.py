"""The live curves of a running run, drawn by the server as one small SVG image.

A Plotly figure of three panels costs a browser ~350 ms of CPU per redraw; where the browser shares the
machine with the run (a laptop demo, this 2-core machine), every watching tab takes that from training.
An SVG image is a string the server builds in about a millisecond and a browser paints in a few, so the
live view can redraw it every few seconds. The finished run keeps the interactive Plotly chart
(``training_view.curves``): the same series, colours and axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from explorer.axes import log_label, nice_ticks, settled, tick_label, zoomed_range

WIDTH = 1200  # the viewBox's width: the image scales to the page's width
BATCH, TRAIN, VALIDATION, RATE = "#6f8fc0", "#2f5597", "#c0392b", "#c77d2e"  # batch line dark enough to project
LEGEND = [(BATCH, "train (batches)", False), (RATE, "learning rate", False),
          (TRAIN, "train (epochs)", True), (VALIDATION, "validation (epochs)", True)]
PRESENTER_SCALE = 1.8  # text and margins in presenter mode: ≥ 14 px on screen where the image is ~650 px wide

ALT = "Live curves: loss, accuracy and learning rate so far"  # the image's alternative text
Series = list[tuple[float, float]]

__all__ = ["ALT", "Layout", "nice_ticks", "svg"]


@dataclass(frozen=True)
class Layout:
    """Sizes in viewBox units for one text scale: fonts, margins and the legend's rows grow with the text, the
    panels take what is left of the width."""

    scale: float = 1.0
    legend_rows: list[list[tuple[float, str, str, bool]]] = field(default_factory=list)

    @property
    def font(self) -> float:
        return 15 * self.scale

    @property
    def top(self) -> float:
        return 36 * self.scale

    @property
    def left(self) -> float:
        return 62 * self.scale

    @property
    def gap(self) -> float:
        return 70 * self.scale

    @property
    def bottom(self) -> float:
        return (56 + 24 * max(len(self.legend_rows), 1)) * self.scale

    @property
    def height(self) -> float:
        return 190 * (1 + (self.scale - 1) / 2) + self.top + self.bottom  # taller plots with larger text

    @property
    def panel(self) -> float:
        return (WIDTH - self.left - 14 - 2 * self.gap) / 3

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def text(self, size: float | None = None) -> str:
        return f'font-family="sans-serif" fill="#31333f" font-size="{size or self.font:.1f}"'

    @staticmethod
    def of(scale: float) -> Layout:
        """The layout for ``scale``, with the legend wrapped into rows that fit the width."""
        rows: list[list[tuple[float, str, str, bool]]] = [[]]
        x = 62 * scale
        for colour, name, marker in LEGEND:
            width = (44 + 9 * len(name)) * scale
            if rows[-1] and x + width > WIDTH:
                rows.append([])
                x = 62 * scale
            rows[-1].append((x, colour, name, marker))
            x += width
        return Layout(scale, rows)

class _Panel:
    """One panel: maps data to the viewBox and writes its axes, ticks and lines (clipped to its plot area)."""

    def __init__(self, layout: Layout, index: int, title: str, x_range: tuple[float, float],
                 y_range: tuple[float, float], log: bool = False) -> None:
        self.layout, self.index = layout, index
        self.left = layout.left + index * (layout.panel + layout.gap)
        self.title, self.log = title, log
        self.x_low, self.x_high = x_range
        low, high = (math.log10(v) for v in y_range) if log else y_range
        if high - low < 1e-12:  # a flat line sits in the middle, not on the frame
            pad = abs(low) * 0.1 or 0.5
            low, high = low - pad, high + pad
        if log:
            self.ticks = [float(p) for p in range(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1)] or [low]
        else:
            self.ticks = nice_ticks(low, high)
        self.y_low, self.y_high = low, high

    def x(self, value: float) -> float:
        span = self.x_high - self.x_low or 1.0
        return self.left + (value - self.x_low) / span * self.layout.panel

    def y(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        bottom = self.layout.top + self.layout.plot_height
        return bottom - (value - self.y_low) / (self.y_high - self.y_low) * self.layout.plot_height

    def frame(self, y_ticks: bool = True) -> list[str]:
        """Title, background and clip area, horizontal grid with its labels (unless ``y_ticks`` is false), x labels."""
        lay = self.layout
        top, bottom, width = lay.top, lay.top + lay.plot_height, lay.panel
        parts = [f'<text x="{self.left + width / 2:.1f}" y="{top - 12 * lay.scale:.1f}" text-anchor="middle" '
                 f'{lay.text(17 * lay.scale)}>{escape(self.title)}</text>',
                 f'<clipPath id="plot{self.index}"><rect x="{self.left:.1f}" y="{top:.1f}" width="{width:.1f}" '
                 f'height="{lay.plot_height:.1f}"/></clipPath>',
                 f'<rect x="{self.left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{lay.plot_height:.1f}" '
                 'fill="#f7f8fa"/>']
        for tick in self.ticks if y_ticks else []:
            y = bottom - (tick - self.y_low) / (self.y_high - self.y_low) * lay.plot_height
            text = log_label(10 ** tick) if self.log else tick_label(tick)
            parts.append(f'<line x1="{self.left:.1f}" x2="{self.left + width:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="#dde1e8"/>')
            parts.append(f'<text x="{self.left - 6 * lay.scale:.1f}" y="{y + lay.font / 3:.1f}" text-anchor="end" '
                         f'{lay.text()}>{text}</text>')
        for tick in _x_ticks(self.x_low, self.x_high):
            parts.append(f'<text x="{self.x(tick):.1f}" y="{bottom + lay.font * 1.35:.1f}" text-anchor="middle" '
                         f'{lay.text()}>{tick_label(tick)}</text>')
        parts.append(f'<text x="{self.left + width / 2:.1f}" y="{bottom + lay.font * 2.75:.1f}" '
                     f'text-anchor="middle" {lay.text()}>epoch</text>')
        return parts

    def line(self, points: Series, colour: str, width: float = 1.0, markers: bool = False) -> list[str]:
        """A polyline through the finite points (a non-finite value breaks the line), with optional markers."""
        parts: list[str] = []
        runs: list[list[str]] = [[]]
        for x, y in points:
            if math.isfinite(x) and math.isfinite(y) and (y > 0 or not self.log):
                runs[-1].append(f"{self.x(x):.1f},{self.y(y):.1f}")
            elif runs[-1]:
                runs.append([])
        clip = f'clip-path="url(#plot{self.index})"'
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                             f'stroke-width="{width * self.layout.scale:.1f}" stroke-linejoin="round" {clip}/>')
            if markers or len(run) == 1:
                parts.extend(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" '
                             f'r="{3.5 * self.layout.scale:.1f}" fill="{colour}" {clip}/>' for p in run)
        return parts

    def note(self, text: str) -> str:
        lay = self.layout
        return (f'<text x="{self.left + lay.panel / 2:.1f}" y="{lay.top + lay.plot_height * 0.4:.1f}" '
                f'text-anchor="middle" {lay.text(17 * lay.scale)}>{escape(text)}</text>')


def _x_ticks(low: float, high: float) -> list[float]:
    """Epoch ticks: whole epochs when the range spans at least two, else round fractions."""
    if high <= low:
        return [low]
    ticks = nice_ticks(low, high)
    whole = [t for t in ticks if float(t).is_integer()]
    return whole if len(whole) >= 2 else ticks


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def value_range(batch: Series, epochs: Series, accuracy: bool) -> tuple[float, float]:
    """The loss or accuracy axis: zoomed to the epoch values and the batches after the first epoch, with a margin
    (an accuracy of 97–99.3 % must not be flattened by the first batches' 20 %); never below 0."""
    focus = _finite([y for _, y in epochs] + settled(batch, after=1.0))
    every = _finite([y for _, y in batch + epochs])
    found = zoomed_range(focus, every, floor=0.0)
    if found is None:
        return (0.0, 1.0)
    low, high = found
    if accuracy:  # a run at 100 % keeps its line inside the frame
        high = max(high, min(1.0, max(focus or every) + 0.005))
    return low, high


def svg(steps: Sequence[dict[str, float]], epochs: Sequence[dict[str, float]], steps_per_epoch: float,
        scale: float = 1.0) -> str:
    """Loss, accuracy and learning rate of a run so far, per batch (train) and per epoch (train, validation).

    ``steps`` rows have ``step``, ``train_loss``, ``train_acc`` and ``lr``; ``epochs`` rows ``epoch``,
    ``train_loss``, ``val_loss``, ``train_acc`` and ``val_acc``. Batches are placed at ``step /
    steps_per_epoch`` epochs (at their step number if that is 0). Loss and accuracy axes are zoomed to the data
    (``value_range``). A constant learning rate is said in words; one that varies gets a log axis, as on the
    finished run's chart. ``scale`` enlarges text and margins (presenter mode: ``PRESENTER_SCALE``)."""
    layout = Layout.of(scale)
    per = steps_per_epoch or 1.0
    batch_x = [s["step"] / per for s in steps]
    epoch_x = [float(e["epoch"]) for e in epochs]
    xs = _finite(batch_x + epoch_x)
    low, high = (min(0.0, *xs), max(xs)) if xs else (0.0, 1.0)
    high = high + 0.02 * (high - low) if high > low else low + 1.0  # the last marker whole, inside its panel
    x_range = (low, high)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {layout.height:.0f}" width="{WIDTH}" '
             f'height="{layout.height:.0f}">', '<rect width="100%" height="100%" fill="white"/>']
    for index, (title, batch_key, epoch_keys) in enumerate([("Loss", "train_loss", ("train_loss", "val_loss")),
                                                             ("Accuracy", "train_acc", ("train_acc", "val_acc"))]):
        batch = [(x, s[batch_key]) for x, s in zip(batch_x, steps, strict=True)]
        train = [(x, e[epoch_keys[0]]) for x, e in zip(epoch_x, epochs, strict=True)]
        validation = [(x, e[epoch_keys[1]]) for x, e in zip(epoch_x, epochs, strict=True)]
        panel = _Panel(layout, index, title, x_range, value_range(batch, train + validation, accuracy=index == 1))
        parts += panel.frame()
        if not _finite([y for _, y in batch + train + validation]):
            parts.append(panel.note("no finite values yet"))
        parts += panel.line(batch, BATCH, width=1.6)
        parts += panel.line(train, TRAIN, width=2.5, markers=True)
        parts += panel.line(validation, VALIDATION, width=2.5, markers=True)
    parts += _rate_panel(layout, batch_x, steps, x_range)
    parts += _legend(layout)
    parts.append("</svg>")
    return "\n".join(parts)


def _rate_panel(layout: Layout, batch_x: list[float], steps: Sequence[dict[str, float]],
                x_range: tuple[float, float]) -> list[str]:
    """The learning rate: a log axis when it varies, words when it is constant."""
    rates = [(x, s["lr"]) for x, s in zip(batch_x, steps, strict=True)]
    finite_rates = _finite([r for _, r in rates])
    varying = len(set(finite_rates)) > 1
    log = varying and min(finite_rates) > 0
    y_range = (min(finite_rates), max(finite_rates)) if finite_rates else (0.0, 1.0)
    if not log and varying:
        y_range = zoomed_range(finite_rates, margin=0.05) or y_range
    panel = _Panel(layout, 2, "Learning rate", x_range, y_range, log=log)
    parts = panel.frame(y_ticks=varying)  # a flat line on an axis labelled "0.01" reads as a value; words don't
    parts += panel.line(rates, RATE, width=1.8)
    if finite_rates and not varying:
        parts.append(panel.note(f"constant {finite_rates[0]:g}"))
    return parts


def _legend(layout: Layout) -> list[str]:
    parts = []
    for row, items in enumerate(layout.legend_rows):
        y = layout.height - 10 * layout.scale - (len(layout.legend_rows) - 1 - row) * 24 * layout.scale
        for x, colour, name, marker in items:
            middle = y - layout.font / 3
            parts.append(f'<line x1="{x:.1f}" x2="{x + 24 * layout.scale:.1f}" y1="{middle:.1f}" y2="{middle:.1f}" '
                         f'stroke="{colour}" stroke-width="{2.5 * layout.scale:.1f}"/>')
            if marker:
                parts.append(f'<circle cx="{x + 12 * layout.scale:.1f}" cy="{middle:.1f}" r="{3.5 * layout.scale:.1f}" '
                             f'fill="{colour}"/>')
            parts.append(f'<text x="{x + 30 * layout.scale:.1f}" y="{y:.1f}" {layout.text()}>{name}</text>')
    return parts
