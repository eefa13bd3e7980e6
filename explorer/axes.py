"""Chart axes by one rule for every chart: ticks at round values (1, 2 or 5 × 10ⁿ), a log axis labelled at its
decades (or at 1, 2, 5 of a decade when it spans less than two), and a value axis zoomed to the data it shows.

The live curves (an SVG the server draws) and the Plotly charts both take their ticks from here, so the same
data gets the same axis on every page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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


def epoch_ticks(low: float, high: float) -> list[float]:
    """Round ticks on an epoch axis: whole epochs only (no "1.5 epochs")."""
    ticks = [t for t in nice_ticks(low, high) if float(t).is_integer()]
    return ticks or [float(round(low))]


def plotly_epochs(last_epoch: int) -> dict[str, Any]:
    """The x axis of a chart over epochs 1 … ``last_epoch``: titled, ticked on whole epochs at round steps."""
    ticks = epoch_ticks(1, max(last_epoch, 1))
    return dict(title_text="epoch", tickvals=ticks, ticktext=[tick_label(t) for t in ticks])


def log_ticks(low: float, high: float) -> list[float]:
    """Labelled values of a log axis over [low, high] (both > 0): every decade when the range spans two or more,
    else 1, 2 and 5 of each decade, so no axis labels each minor tick."""
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"no log ticks for the range [{low}, {high}]")
    first, last = math.floor(math.log10(low) + 1e-9), math.ceil(math.log10(high) - 1e-9)
    decades = [10.0 ** p for p in range(first, last + 1)]
    inside = [d for d in decades if low * (1 - 1e-9) <= d <= high * (1 + 1e-9)]
    if len(inside) >= 3:
        return inside
    ticks = [d * m for d in decades for m in (1, 2, 5) if low * (1 - 1e-9) <= d * m <= high * (1 + 1e-9)]
    return ticks or [low]


def tick_label(value: float) -> str:
    """A tick's text: ``0.5``, ``250``, ``1e-4`` (no ``0.00010000001``)."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:g}"


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def log_label(value: float) -> str:
    """A log axis's tick: a decade as a power of ten ("10⁻³"), any other value as ``tick_label`` writes it, so
    one axis never mixes "0.001" with "1e-4"."""
    exponent = math.log10(value) if value > 0 else math.nan
    if math.isfinite(exponent) and abs(exponent - round(exponent)) < 1e-9:
        return "1" if round(exponent) == 0 else "10" + str(round(exponent)).translate(SUPERSCRIPT)
    return tick_label(value)


def zoomed_range(focus: Sequence[float], fallback: Sequence[float] = (), margin: float = 0.08,
                 floor: float | None = None, ceiling: float | None = None) -> tuple[float, float] | None:
    """The value range that shows ``focus`` (the values a reader compares) with a margin on each side, clamped to
    [floor, ceiling]; ``fallback`` when ``focus`` has no finite value; None when neither has. A flat series gets a
    span of its own size (or 1) so it sits in the middle."""
    values = [v for v in focus if math.isfinite(v)] or [v for v in fallback if math.isfinite(v)]
    if not values:
        return None
    low, high = min(values), max(values)
    pad = (high - low) * margin if high > low else (abs(low) * 0.1 or 0.5)
    low, high = low - pad, high + pad
    if floor is not None:
        low = max(low, floor)
    if ceiling is not None:
        high = min(high, ceiling)
    return low, high


def settled(points: Sequence[tuple[float, float]], after: float) -> list[float]:
    """The values of ``(x, y)`` points after ``x = after`` (the batches once the first epoch is over), or
    every value when no point is that late: what a zoomed axis must show of a noisy per-batch line."""
    late = [y for x, y in points if x > after]
    return late or [y for _, y in points]


def plotly_linear(low: float, high: float, epochs: bool = False) -> dict[str, Any]:
    """A Plotly axis over [low, high] with ticks at round values (whole ones on an epoch axis)."""
    ticks = (epoch_ticks if epochs else nice_ticks)(low, high) if high > low else [low]
    return dict(range=[low, high], tickvals=ticks, ticktext=[tick_label(t) for t in ticks])


def plotly_log(low: float, high: float, label: Any = log_label) -> dict[str, Any]:
    """A Plotly log axis over [low, high] (values, not exponents) labelled by ``log_ticks``."""
    ticks = log_ticks(low, high)
    return dict(type="log", tickvals=ticks, ticktext=[label(t) for t in ticks])
