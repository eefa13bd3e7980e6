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
from html import escape

WIDTH, HEIGHT = 1200, 330  # the viewBox: the image scales to the page's width
TOP, BOTTOM = 36, 80  # above the plot area (titles); below it (tick labels, axis title, legend)
LEFT, RIGHT, GAP = 62, 14, 70  # left margin (tick labels), right margin, between panels
PANEL = (WIDTH - LEFT - RIGHT - 2 * GAP) / 3
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
FONT = 'font-family="sans-serif" fill="#31333f" font-size="15"'
TITLE = 'font-family="sans-serif" fill="#31333f" font-size="17"'

BATCH, TRAIN, VALIDATION, RATE = "#9db4d6", "#4a6fa5", "#c0392b", "#c77d2e"
LEGEND = [(BATCH, "train (batches)", False), (RATE, "learning rate", False),
          (TRAIN, "train (epochs)", True), (VALIDATION, "validation (epochs)", True)]

ALT = "Live curves: loss, accuracy and learning rate so far"  # the image's alternative text
Series = list[tuple[float, float]]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) inside [low, high], three at least
    where the range spans more than one."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ValueError(f"no ticks for the range [{low}, {high}]")
    if high == low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    steps = [m * power for m in (0.5, 1, 2, 5, 10)]  # round steps around the raw one, finest first
    step = next(s for s in steps if s >= raw)
    ticks = _multiples(low, high, step)
    while len(ticks) < 3 and step > steps[0]:  # a coarse step can leave one tick inside: take the next finer one
        step = steps[steps.index(step) - 1]
        ticks = _multiples(low, high, step)
    return ticks


def _multiples(low: float, high: float, step: float) -> list[float]:
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:g}"


class _Panel:
    """One panel: maps data to the viewBox and writes its axes, ticks and lines."""

    def __init__(self, index: int, title: str, x_range: tuple[float, float], ys: Sequence[float],
                 log: bool = False) -> None:
        self.left = LEFT + index * (PANEL + GAP)
        self.title, self.log = title, log
        self.x_low, self.x_high = x_range
        values = [math.log10(y) for y in ys] if log else list(ys)
        low, high = min(values), max(values)
        if high - low < 1e-12:  # a flat line sits in the middle, not on the frame
            pad = abs(low) * 0.1 or 0.5
            low, high = low - pad, high + pad
        if log:
            self.ticks = [float(p) for p in range(math.floor(low), math.ceil(high) + 1)]
            self.y_low, self.y_high = min(self.ticks[0], low), max(self.ticks[-1], high)
        else:
            self.ticks = nice_ticks(low, high)
            margin = (high - low) * 0.05
            self.y_low, self.y_high = min(self.ticks[0], low - margin), max(self.ticks[-1], high + margin)

    def x(self, value: float) -> float:
        span = self.x_high - self.x_low or 1.0
        return self.left + (value - self.x_low) / span * PANEL

    def y(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        return TOP + PLOT_HEIGHT - (value - self.y_low) / (self.y_high - self.y_low) * PLOT_HEIGHT

    def frame(self, y_ticks: bool = True) -> list[str]:
        """Title, background, horizontal grid with its labels (unless ``y_ticks`` is false), x labels."""
        parts = [f'<text x="{self.left + PANEL / 2:.1f}" y="22" text-anchor="middle" {TITLE}>'
                 f'{escape(self.title)}</text>',
                 f'<rect x="{self.left:.1f}" y="{TOP}" width="{PANEL:.1f}" height="{PLOT_HEIGHT}" fill="#f7f8fa"/>']
        for tick in self.ticks if y_ticks else []:
            y = TOP + PLOT_HEIGHT - (tick - self.y_low) / (self.y_high - self.y_low) * PLOT_HEIGHT
            text = _label(10 ** tick) if self.log else _label(tick)
            parts.append(f'<line x1="{self.left:.1f}" x2="{self.left + PANEL:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="#e1e4ea"/>')
            parts.append(f'<text x="{self.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{text}</text>')
        for tick in nice_ticks(self.x_low, self.x_high) if self.x_high > self.x_low else [self.x_low]:
            x = self.x(tick)
            parts.append(f'<text x="{x:.1f}" y="{TOP + PLOT_HEIGHT + 20}" text-anchor="middle" {FONT}>'
                         f'{_label(tick)}</text>')
        parts.append(f'<text x="{self.left + PANEL / 2:.1f}" y="{TOP + PLOT_HEIGHT + 41}" text-anchor="middle" '
                     f'{FONT}>epoch</text>')
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
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                             f'stroke-width="{width}" stroke-linejoin="round"/>')
            if markers or len(run) == 1:
                parts.extend(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3.5" fill="{colour}"/>'
                             for p in run)
        return parts

    def note(self, text: str) -> str:
        return (f'<text x="{self.left + PANEL / 2:.1f}" y="{TOP + PLOT_HEIGHT * 0.4:.1f}" text-anchor="middle" '
                f'{TITLE}>{escape(text)}</text>')


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def svg(steps: Sequence[dict[str, float]], epochs: Sequence[dict[str, float]], steps_per_epoch: float) -> str:
    """Loss, accuracy and learning rate of a run so far, per batch (train) and per epoch (train, validation).

    ``steps`` rows have ``step``, ``train_loss``, ``train_acc`` and ``lr``; ``epochs`` rows ``epoch``,
    ``train_loss``, ``val_loss``, ``train_acc`` and ``val_acc``. Batches are placed at ``step /
    steps_per_epoch`` epochs (at their step number if that is 0). A constant learning rate is said in words;
    one that varies gets a log axis, as on the finished run's chart."""
    per = steps_per_epoch or 1.0
    batch_x = [s["step"] / per for s in steps]
    epoch_x = [float(e["epoch"]) for e in epochs]
    xs = _finite(batch_x + epoch_x)
    low, high = (min(0.0, *xs), max(xs)) if xs else (0.0, 1.0)
    high = high + 0.02 * (high - low) if high > low else low + 1.0  # the last marker whole, inside its panel
    x_range = (low, high)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}">', '<rect width="100%" height="100%" fill="white"/>']
    for index, (title, batch_key, epoch_keys) in enumerate([("Loss", "train_loss", ("train_loss", "val_loss")),
                                                             ("Accuracy", "train_acc", ("train_acc", "val_acc"))]):
        batch = [(x, s[batch_key]) for x, s in zip(batch_x, steps, strict=True)]
        train = [(x, e[epoch_keys[0]]) for x, e in zip(epoch_x, epochs, strict=True)]
        validation = [(x, e[epoch_keys[1]]) for x, e in zip(epoch_x, epochs, strict=True)]
        ys = _finite([y for _, y in batch + train + validation])
        panel = _Panel(index, title, x_range, ys or [0.0, 1.0])
        parts += panel.frame()
        if not ys:
            parts.append(panel.note("no finite values yet"))
        parts += panel.line(batch, BATCH)
        parts += panel.line(train, TRAIN, width=2, markers=True)
        parts += panel.line(validation, VALIDATION, width=2, markers=True)

    rates = [(x, s["lr"]) for x, s in zip(batch_x, steps, strict=True)]
    finite_rates = _finite([r for _, r in rates])
    varying = len(set(finite_rates)) > 1
    log = varying and min(finite_rates) > 0
    panel = _Panel(2, "Learning rate", x_range, finite_rates or [0.0, 1.0], log=log)
    parts += panel.frame(y_ticks=varying)  # a flat line on an axis labelled "0.01" reads as a value; words don't
    parts += panel.line(rates, RATE, width=1.5)
    if finite_rates and not varying:
        parts.append(panel.note(f"constant {finite_rates[0]:g}"))

    x = LEFT
    for colour, name, marker in LEGEND:
        y = HEIGHT - 10
        parts.append(f'<line x1="{x}" x2="{x + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>')
        if marker:
            parts.append(f'<circle cx="{x + 12}" cy="{y - 4}" r="3.5" fill="{colour}"/>')
        parts.append(f'<text x="{x + 30}" y="{y}" {FONT}>{name}</text>')
        x += 44 + 9 * len(name)
    parts.append("</svg>")
    return "\n".join(parts)
