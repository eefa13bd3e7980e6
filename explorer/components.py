"""Small shared components: each renders one thing and owns its session-state keys."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from core import labels, models
from core.analysis import ModelSummary, format_count, format_pair, format_shape
from core.fidelity import NOTES_SOURCE, FidelityRow
from explorer import axes, chart_downloads, opened_models, presenter, services, widgets

MACS_NOTE = (
    "MACs are multiply-accumulates (one multiplication and one addition): 1 MAC = 2 FLOPs. "
    "torchvision's “GFLOPS” are MACs too (ResNet-50: 4.09 G)."
)


ROW_PX = 35  # st.dataframe's row height at Streamlit's 16 px root font (2.1875 rem: it grows with presenter mode's)


def table_height(rows: int, cap: int = 30) -> int:
    """Pixels for a table that shows ``rows`` rows (up to ``cap``, then it scrolls) and its header, unclipped."""
    row = math.ceil(ROW_PX * presenter.FONT_PX / 16) if presenter.active() else ROW_PX
    return row * (min(rows, cap) + 1) + 3


def milliseconds(value: float) -> str:
    """A latency as the app writes it everywhere: three significant digits, so 0.214 ms and 1,190 ms both read."""
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def latency_spread(row: dict) -> str:
    """A latency row's spread as the app writes it: "p10–p90 0.29–0.40 ms" (a tenth of the passes were faster
    than the first figure, a tenth slower than the second)."""
    low, high = milliseconds(row["p10 ms"]), milliseconds(row["p90 ms"])
    return f"p10–p90 {low.removesuffix(' ms')}–{high}"


WIDE_SPREAD = 2.0  # p90 over p10 past this: the passes did not run alike (something else used the processor)
WIDE_SPREAD_NOTE = "a wide spread: something else used the processor while it was measured, so the figure is rough"


def wide_spread(row: dict) -> bool:
    """Whether a latency row's slowest tenth took over ``WIDE_SPREAD`` times its fastest tenth."""
    return row["p90 ms"] > WIDE_SPREAD * row["p10 ms"]


def latency_note(row: dict) -> str:
    """The spread and the conditions of a latency row, in one line: "p10–p90 0.29–0.40 ms · CPU · x86_64, 1 thread
    of 2 cores · measured while 1 run was training", and a warning when the spread is wide."""
    return f"{latency_spread(row)} · {row['conditions']}" + (f" · {WIDE_SPREAD_NOTE}" if wide_spread(row) else "")


def counts_axis(figure: go.Figure, axis: str = "yaxis") -> go.Figure:
    """An axis of counts or MACs with the app's K/M/G suffixes at round values (1, 2, 5 × 10ⁿ); a log axis of
    counts takes its ticks from ``axes.plotly_log(…, label=count_tick)``."""
    figure.update_layout({axis: dict(exponentformat="SI", tickformat="~s")})
    return figure


def count_tick(value: float) -> str:
    """A count on a tick: ``format_count`` without trailing zeros ("1 G", "500 M", "2.5 G")."""
    text = format_count(value)
    return re.sub(r"\.?0+(?= |$)", "", text) if "." in text else text


def count_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A display copy of ``frame`` whose count columns read "25.6 M" (the app's one rule); the exact numbers stay
    in the original, which the CSV download carries."""
    shown = frame.copy()
    for column in columns:
        shown[column] = [format_count(value) for value in frame[column]]
    return shown


def csv_button(frame: pd.DataFrame, file_name: str, key: str) -> None:
    """Download ``frame`` (exact numbers) as CSV."""
    st.download_button("Download the table (CSV, exact numbers)", frame.to_csv(index=False).encode(),
                       file_name=file_name, mime="text/csv", key=key)


def display_name(name: str) -> str:
    """``"resnet50"`` → ``"ResNet-50"``."""
    return models.spec(name).display_name


def featured_index(options: list[str], view: str) -> int:
    """Where in ``options`` the first model whose registry entry features it in ``view`` is (0 if none)."""
    return next((i for i, name in enumerate(options) if view in models.spec(name).featured_in), 0)


DEFAULT_MODEL = "resnet50"


def model_picker(label: str = "Model", key: str = "model") -> str:
    """A model selectbox bound to the URL's ``?model=`` so a slide can link to a model. The default model is left
    out of a URL that does not name one: writing it on first opening would add a history entry that Back returns to
    and leaves again."""
    opened_models.follow_links()
    names = opened_models.options()
    if key not in st.session_state:
        st.session_state[key] = widgets.url_model(default=DEFAULT_MODEL)
    widgets.follow_url(widgets.MODEL_PARAM, key, lambda: widgets.url_model(default=DEFAULT_MODEL))
    name = st.selectbox(label, names, key=key, format_func=display_name) or names[0]  # None only without options
    # A link's (or Back's) ?model= stays, even for the default: removing it would be a history entry too
    widgets.set_url_model(None if name == DEFAULT_MODEL and widgets.MODEL_PARAM not in st.query_params else name)
    return name


def paper_card(name: str) -> None:
    """Year, authors, paper, task and the one idea of the architecture (for an opened model: where it is from)."""
    spec = models.spec(name)
    convention = (f"input {spec.input_size}×{spec.input_size}×{spec.in_channels} · normalised with mean "
                  f"{labels.number_list(spec.mean)}, std {labels.number_list(spec.std)}")
    if spec.origin == "design":
        st.markdown(f"**{widgets.literal(spec.display_name)}** · designed in the explorer · {spec.task} · "
                    f"{convention}")
        return
    if spec.origin == "catalogue":
        st.markdown(f"**{widgets.literal(spec.display_name)}** · from torchvision's catalogue: torchvision's own "
                    f"code, not written here and not checked against a second implementation · "
                    f"[{spec.paper_title}]({spec.paper_url})  \n{spec.task} · data set: {spec.dataset} · {convention}")
        return
    st.markdown(
        f"**{spec.display_name}** ({spec.year}) · {spec.authors}  \n"
        f"[{spec.paper_title}]({spec.paper_url})  \n"
        f"Original task: {spec.task} · data set: {spec.dataset} · {convention}"
    )
    if spec.idea:
        st.info(spec.idea, icon=":material/lightbulb:")


def summary_metrics(summary: ModelSummary) -> None:
    """Parameters, MACs, depth, input, weight size and receptive field as metric tiles."""
    columns = [*st.columns(3), *st.columns(3)]
    columns[0].metric("Parameters", format_count(summary.total_params),
                      help=f"{summary.total_params:,} exactly: {summary.trainable_params:,} trainable, "
                           f"{summary.non_trainable_params:,} frozen; plus {summary.buffers:,} batch-norm statistics "
                           "(buffers)")
    columns[1].metric("MACs / image", format_count(summary.total_macs),
                      help=f"{summary.total_macs:,} exactly. {MACS_NOTE}")
    columns[2].metric("Depth", f"{summary.weight_layers} layers",
                      help=f"Weight layers on the longest path, as papers count them. "
                           f"{summary.module_count} modules in all, {summary.weight_layer_count} weight layers "
                           "including shortcut projections and parallel branches.")
    channels, height, width = summary.input_shape
    columns[3].metric("Input", f"{height}×{width}×{channels}")
    columns[4].metric("Weights (float32)", f"{summary.weight_bytes / 1e6:,.1f} MB")
    columns[5].metric("Receptive field", f"{format_pair(summary.receptive_field)} px",
                      help="Input pixels that can influence one position of the last feature map "
                           "(largest path). It can exceed the image: the rest is padding.")


def layer_table(summary: ModelSummary) -> None:
    """The layer table and its totals (the totals line is plain text, so browsers and tests can read it)."""
    frame = pd.DataFrame(summary.records())
    exact = "; the CSV has the exact number"
    st.dataframe(
        count_columns(frame, ["params", "trainable", "non-trainable", "MACs"]),
        hide_index=True,
        height=table_height(len(frame), cap=16),
        width="stretch",
        column_order=layer_columns(list(frame.columns), presenter.active()),
        column_config={
            "layer": st.column_config.TextColumn(pinned=True),
            "params": st.column_config.TextColumn(help="Parameters of the layer" + exact),
            "trainable": st.column_config.TextColumn(help="Parameters that train" + exact),
            "non-trainable": st.column_config.TextColumn(help="Frozen parameters" + exact),
            "MACs": st.column_config.TextColumn(help=MACS_NOTE + " Exact numbers in the CSV."),
        },
    )
    rows_total = sum(row.params for row in summary.rows)
    st.markdown(
        f"**Total: {summary.total_params:,} parameters** ({format_count(summary.total_params)}; "
        f"{summary.trainable_params:,} trainable, {summary.non_trainable_params:,} non-trainable) · "
        f"{format_count(summary.total_macs)} MACs ({summary.total_macs:,}) · "
        f"{summary.activation_bytes / 2**20:,.1f} MiB of activations per image (float32)"
    )
    for module_name, count in summary.unused:
        st.caption(f"{module_name} ({count:,} parameters) runs only in training, so it has no rows above; "
                   f"the table's rows hold {rows_total:,} parameters.")
    csv_button(frame, f"{summary.name}-layers.csv", key=f"layers-csv-{summary.name}")


LAYER_COLUMNS_FIRST = ["#", "layer", "type", "output", "params", "MACs"]  # what a lecture reads, in the first screen
PRESENTER_HIDDEN = {"stage", "trainable", "non-trainable", "jump"}  # in the CSV; off the projected table


def layer_columns(columns: list[str], presenting: bool) -> list[str]:
    """The layer table's column order: layer, shape, parameters and MACs first (at 1024 px the MACs column was off
    the right edge), then the rest; presenter mode leaves out the columns a lecture does not read."""
    first = [c for c in LAYER_COLUMNS_FIRST if c in columns]
    rest = [c for c in columns if c not in first and not (presenting and c in PRESENTER_HIDDEN)]
    return first + rest


def comparison_rows(summaries: dict[str, ModelSummary]) -> list[dict]:
    """The notes' comparison table rebuilt from the live models, exact numbers (top-1 first: what a lecture asks)."""
    rows = []
    for name, summary in summaries.items():
        spec, traits = models.spec(name), services.traits(name)
        top1 = spec.published_top1()
        rows.append({
            "model": spec.display_name, "year": spec.year, "top-1 %": top1.value if top1 else None,
            "parameters": summary.total_params, "MACs": summary.total_macs,
            "depth": summary.weight_layers, "receptive field": summary.receptive_field[0],
            "input": f"{spec.input_size}×{spec.input_size}",
            "kernels": ", ".join(traits.kernels) + (" depthwise" if traits.depthwise else ""),
            "skip connections": traits.residual_blocks, "normalisation": ", ".join(traits.normalisation) or "none",
            "dropout": "yes" if traits.dropout else "no", "modules": summary.module_count,
            "top-1 source": top1.source if top1 else "",
        })
    return rows


AMBIGUOUS_PX2 = 400.0  # the cost of a label nearer another bubble than its own, as a 20×20 px overlap would cost
LABEL_POSITIONS = ["top center", "bottom center", "middle right", "middle left", "top right", "top left",
                   "bottom right", "bottom left"]


def label_positions(points: list[tuple[float, float]], names: list[str], radii: list[float] | None = None,
                    size: tuple[float, float] = (600, 430), char_px: float = 8.5,
                    line_px: float = 20) -> list[str]:
    """A text position for each point's label such that no two labels overlap, nor a label a bubble (of radius
    ``radii`` pixels), where any choice allows; ``points`` are in plot fractions (0–1 across, 0–1 up) of a plot
    of ``size`` pixels (the narrowest it is drawn: a projector at 1024 px)."""
    radii = radii or [6.0] * len(points)
    spots = [(x * size[0], (1 - y) * size[1]) for x, y in points]
    bubbles = [(sx - r * 0.85, sy - r * 0.85, sx + r * 0.85, sy + r * 0.85)
               for (sx, sy), r in zip(spots, radii, strict=True)]
    placed: list[tuple[float, float, float, float]] = []
    chosen = []
    for (px, py), radius, name in zip(spots, radii, names, strict=True):
        width, best, best_cost = len(name) * char_px, LABEL_POSITIONS[0], math.inf
        for position in LABEL_POSITIONS:
            box = _label_box(px, py, width, line_px, position, radius)
            cost = sum(_overlap(box, other) for other in placed + bubbles)
            own = _distance(box, (px, py))  # a label nearer another bubble than its own reads as that one's
            cost += AMBIGUOUS_PX2 * sum(1 for spot in spots if spot != (px, py) and _distance(box, spot) < own)
            if cost < best_cost - 1e-9:
                best, best_cost = position, cost
        placed.append(_label_box(px, py, width, line_px, best, radius))
        chosen.append(best)
    return chosen


def _label_box(x: float, y: float, width: float, height: float, position: str,
               radius: float = 6.0) -> tuple[float, float, float, float]:
    vertical, horizontal = position.split()
    gap = radius + 3
    top = {"top": y - gap - height, "middle": y - height / 2, "bottom": y + gap}[vertical]
    left = {"center": x - width / 2, "right": x + gap, "left": x - gap - width}[horizontal]
    return left, top, left + width, top + height


def _distance(box: tuple[float, float, float, float], point: tuple[float, float]) -> float:
    """Pixels from ``point`` to the nearest part of ``box`` (0 inside it)."""
    dx = max(box[0] - point[0], 0.0, point[0] - box[2])
    dy = max(box[1] - point[1], 0.0, point[1] - box[3])
    return math.hypot(dx, dy)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


BUBBLE_PX = 60  # the largest bubble's diameter


def bubble_layout(table: pd.DataFrame) -> tuple[list[float], list[float], list[tuple[float, float]], list[float]]:
    """The cost–accuracy chart's x range (log10 MACs), y range (top-1 %), each bubble's place in plot fractions
    and its radius in pixels, for a table sorted by MACs."""
    low, high = float(table["MACs"].min()), float(table["MACs"].max())
    x_range = [math.log10(low / 2), math.log10(high * 2)]
    top1 = table["top-1 %"].astype(float)
    y_range = [math.floor(top1.min() - 2), math.ceil(top1.max() + 2)]
    fractions = [((math.log10(m) - x_range[0]) / (x_range[1] - x_range[0]), (t - y_range[0]) / (y_range[1] - y_range[0]))
                 for m, t in zip(table["MACs"], top1, strict=True)]
    largest = float(table["parameters"].max())
    radii = [max(3.0, BUBBLE_PX / 2 * math.sqrt(v / largest)) for v in table["parameters"]]
    return x_range, y_range, fractions, radii


def cost_accuracy_chart(table: pd.DataFrame) -> go.Figure:
    """MACs (log axis, ticks at round values) against published top-1, bubble area = parameters, every bubble
    labelled where its label overlaps no other (``label_positions``)."""
    table = table.sort_values("MACs")
    low, high = float(table["MACs"].min()), float(table["MACs"].max())
    x_range, y_range, fractions, radii = bubble_layout(table)
    largest = float(table["parameters"].max())
    figure = go.Figure(go.Scatter(
        x=table["MACs"], y=table["top-1 %"], mode="markers+text", text=table["model"],
        textposition=label_positions(fractions, list(table["model"]), radii), textfont=dict(size=14),
        cliponaxis=False,
        marker=dict(size=table["parameters"], sizemode="area", sizeref=2.0 * largest / BUBBLE_PX**2, sizemin=6,
                    color="#4a6fa5", opacity=0.6, line=dict(width=1, color="#1f2a37")),
        customdata=list(zip([format_count(v) for v in table["parameters"]], [format_count(v) for v in table["MACs"]],
                            table["top-1 source"], strict=True)),
        hovertemplate="<b>%{text}</b><br>%{customdata[1]} MACs · %{customdata[0]} parameters<br>"
                      "top-1 %{y:.1f} % (%{customdata[2]})<extra></extra>",
    ))
    x_axis = axes.plotly_log(low / 2, high * 2, label=count_tick)
    figure.update_layout(height=520, margin=dict(t=30, l=10, r=10, b=10), showlegend=False,
                         xaxis=dict(x_axis, title="MACs per image (log scale)", range=x_range),
                         yaxis=dict(axes.plotly_linear(y_range[0], y_range[1]), title="ImageNet top-1 (%)"))
    return figure


def layer_charts(summary: ModelSummary) -> None:
    """Parameters and MACs per layer, and how the feature map's shape progresses."""
    weighted = [row for row in summary.rows if row.params or row.macs]
    labels = [row.name for row in weighted]
    left, right = st.columns(2)
    params = go.Figure(go.Bar(x=labels, y=[row.params for row in weighted], marker_color="#4a6fa5"))
    params.update_layout(title="Parameters per layer", xaxis_title=None, yaxis_title="parameters",
                         xaxis_showticklabels=len(labels) <= 40, height=360, margin=dict(t=40, b=10))
    left.plotly_chart(counts_axis(params), config=chart_downloads.config(), width="stretch")
    macs = go.Figure(go.Bar(x=labels, y=[row.macs for row in weighted], marker_color="#c77d2e"))
    macs.update_layout(title="MACs per layer", yaxis_title="multiply-accumulates",
                       xaxis_showticklabels=len(labels) <= 40, height=360, margin=dict(t=40, b=10))
    right.plotly_chart(counts_axis(macs), config=chart_downloads.config(), width="stretch")
    spatial = [row for row in summary.rows if len(row.output_shape) == 3]
    shapes = go.Figure()
    shapes.add_trace(go.Scatter(x=[r.index for r in spatial], y=[r.output_shape[1] for r in spatial],
                                name="height (px)", mode="lines", line_shape="hv",
                                text=[f"{r.name}: {format_shape(r.output_shape)}" for r in spatial]))
    shapes.add_trace(go.Scatter(x=[r.index for r in spatial], y=[r.output_shape[0] for r in spatial],
                                name="channels", mode="lines", line_shape="hv", yaxis="y2",
                                text=[f"{r.name}: {format_shape(r.output_shape)}" for r in spatial]))
    shapes.update_layout(title="Feature map: resolution shrinks, channels grow", xaxis_title="layer #",
                         yaxis=dict(title="height (px)"), yaxis2=dict(title="channels", overlaying="y", side="right"),
                         height=360, margin=dict(t=40, b=10), legend=dict(orientation="h"))
    st.plotly_chart(shapes, config=chart_downloads.config(), width="stretch")


def fidelity_table(rows: list[FidelityRow]) -> None:
    """The notes' figures beside the live ones, with the reason wherever they differ."""
    if not rows:
        st.caption("The course notes give no figures for this model beyond its name.")
        return
    st.caption(NOTES_SOURCE)
    differing = sum(not row.agrees for row in rows)
    agree = len(rows) - differing
    st.markdown(f"{labels.plural(len(rows), 'figure')} from the course notes: **{agree} "
                f"{'agrees' if agree == 1 else 'agree'}** with the live model or the published references, "
                f"**{differing} {'differs' if differing == 1 else 'differ'}** — each with the reason.")
    frame = pd.DataFrame([
        {"": "✓ agrees" if row.agrees else "⚠ differs", "figure": row.label, "course notes": row.notes,
         "this app (live)": row.live, "published elsewhere": row.published, "why": row.explanation,
         "where in the notes": row.where}
        for row in rows
    ])
    st.dataframe(frame, hide_index=True, width="stretch", height=table_height(len(frame), cap=20),
                 column_config={"why": st.column_config.TextColumn(width="large")})
    for row in rows:
        if not row.agrees:
            st.markdown(f"- ⚠ **{row.label}** — notes: {row.notes}; live: {row.live}. {row.explanation}")


CELL_PX = 44  # a confusion-matrix cell in presenter mode: its count readable from the back of the room


def confusion_heatmap(test: dict, title: str, height: int = 420, scale: bool = True,
                      cell: int | None = None) -> go.Figure:
    """The test set's confusion matrix (rows: true class, columns: predicted), every class labelled, each count
    written in its cell. With ``cell`` (pixels) the figure is sized so each cell is that large and square, and
    the counts are written large; otherwise it is ``height`` tall and stretches to its column."""
    classes = [widgets.chart_literal(name) for name in test["classes"]]  # folder names: shown as they are
    count = len(classes)
    text_px = max(11, min(20, int((cell or 0) * 0.42))) if cell else None
    figure = go.Figure(go.Heatmap(z=test["confusion"], x=classes, y=classes, colorscale="Blues", showscale=scale,
                                  text=test["confusion"], texttemplate="%{text}",
                                  textfont=dict(size=text_px) if text_px else None))
    figure.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                         height=height, margin=dict(t=40, b=10), xaxis=dict(type="category"),
                         yaxis=dict(type="category"))
    if cell:
        label_px = 12 + 10 * max((len(str(name)) for name in test["classes"]), default=1)  # the y tick labels
        left, top, bottom = 40 + label_px, 50, 60 + label_px // 2
        figure.update_layout(width=left + cell * count + (100 if scale else 20), height=top + cell * count + bottom,
                             margin=dict(l=left, r=100 if scale else 20, t=top, b=bottom, autoexpand=False))
    return figure


def image_grid(items: list[tuple[Any, str]], key: str, thumb_px: int = 96) -> None:
    """Small images with a caption under each, wrapping to the column's width: a cell is as wide as its caption
    (never cut, never wrapped mid-word), so nothing overlaps at any width. Images are enlarged pixel by pixel."""
    cells = []
    for array, caption in items:
        picture = Image.fromarray(np.asarray(array))
        picture.thumbnail((thumb_px, thumb_px))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode()
        cells.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}"/>'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = (f".st-key-{key} .grid {{ display: flex; flex-wrap: wrap; gap: 0.6rem 0.9rem; }}"
             f".st-key-{key} figure {{ margin: 0; min-width: 4rem; text-align: center; }}"
             f".st-key-{key} img {{ width: 4rem; height: 4rem; object-fit: contain; image-rendering: pixelated; }}"
             f".st-key-{key} figcaption {{ white-space: nowrap; font-size: 0.9rem; color: #31333f; }}")
    with st.container(key=key):
        st.html(f"<style>{style}</style><div class='grid'>{''.join(cells)}</div>")
