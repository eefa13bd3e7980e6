"""Small shared components: each renders one thing and owns its session-state keys."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import models
from core.analysis import ModelSummary, format_count, format_pair, format_shape
from core.fidelity import NOTES_SOURCE, FidelityRow
from explorer import services, widgets

MACS_NOTE = (
    "MACs are multiply-accumulates (one multiplication and one addition): 1 MAC = 2 FLOPs. "
    "torchvision's “GFLOPS” are MACs too (ResNet-50: 4.09 G)."
)


ROW_PX = 35  # st.dataframe's row height


def table_height(rows: int, cap: int = 30) -> int:
    """Pixels for a table that shows ``rows`` rows (up to ``cap``, then it scrolls) and its header, unclipped."""
    return ROW_PX * (min(rows, cap) + 1) + 3


def milliseconds(value: float) -> str:
    """A latency as the app writes it everywhere: three significant digits, so 0.214 ms and 1,190 ms both read."""
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def latency_spread(row: dict) -> str:
    """A latency row's spread as the app writes it: "p10–p90 0.29–0.40 ms" (a tenth of the passes were faster
    than the first figure, a tenth slower than the second)."""
    low, high = milliseconds(row["p10 ms"]), milliseconds(row["p90 ms"])
    return f"p10–p90 {low.removesuffix(' ms')}–{high}"


def latency_note(row: dict) -> str:
    """The spread and the conditions of a latency row, in one line: "p10–p90 0.29–0.40 ms · CPU · x86_64, 1 thread
    of 2 cores · measured while 1 run was training"."""
    return f"{latency_spread(row)} · {row['conditions']}"


def counts_axis(figure: go.Figure, axis: str = "yaxis", log: bool = False) -> go.Figure:
    """An axis of counts or MACs with the app's K/M/G suffixes at round values (1, 2, 5 × 10ⁿ)."""
    settings: dict = dict(exponentformat="SI", tickformat="~s")
    if log:
        settings.update(type="log", dtick="D2")  # ticks at 1, 2, 5 of each decade, labelled 100M, 1G, 2G…
    figure.update_layout({axis: settings})
    return figure


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


def model_picker(label: str = "Model", key: str = "model") -> str:
    """A model selectbox bound to the URL's ``?model=`` so a slide can link to a model."""
    names = models.names()
    if key not in st.session_state:
        st.session_state[key] = widgets.url_model(default="resnet50")
    widgets.follow_url(widgets.MODEL_PARAM, key, lambda: widgets.url_model(default=st.session_state[key]))
    name = st.selectbox(label, names, key=key, format_func=display_name) or names[0]  # None only without options
    widgets.set_url_model(name)
    return name


def paper_card(name: str) -> None:
    """Year, authors, paper, task and the one idea of the architecture."""
    spec = models.spec(name)
    st.markdown(
        f"**{spec.display_name}** ({spec.year}) · {spec.authors}  \n"
        f"[{spec.paper_title}]({spec.paper_url})  \n"
        f"Original task: {spec.task} · data set: {spec.dataset} · input {spec.input_size}×{spec.input_size}"
        f"×{spec.in_channels} · normalised with mean {spec.mean}, std {spec.std}"
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
        column_config={
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


_DECADES = [10.0 ** exponent for exponent in range(3, 14)]


def cost_accuracy_chart(table: pd.DataFrame) -> go.Figure:
    """MACs (log axis, ticks at round values) against published top-1, bubble area = parameters, every bubble
    labelled; labels alternate above and below so that neighbours (ResNet-101/152, Xception) stay readable."""
    table = table.sort_values("MACs")
    positions = ["top center" if i % 2 == 0 else "bottom center" for i in range(len(table))]
    largest = float(table["parameters"].max())
    figure = go.Figure(go.Scatter(
        x=table["MACs"], y=table["top-1 %"], mode="markers+text", text=table["model"], textposition=positions,
        textfont=dict(size=14), cliponaxis=False,
        marker=dict(size=table["parameters"], sizemode="area", sizeref=2.0 * largest / 60**2, sizemin=6,
                    color="#4a6fa5", opacity=0.6, line=dict(width=1, color="#1f2a37")),
        customdata=list(zip([format_count(v) for v in table["parameters"]], [format_count(v) for v in table["MACs"]],
                            table["top-1 source"], strict=True)),
        hovertemplate="<b>%{text}</b><br>%{customdata[1]} MACs · %{customdata[0]} parameters<br>"
                      "top-1 %{y:.1f} % (%{customdata[2]})<extra></extra>",
    ))
    low, high = float(table["MACs"].min()), float(table["MACs"].max())
    ticks = [v * step for v in _DECADES for step in (1, 2, 5) if low / 3 <= v * step <= high * 3]
    figure.update_layout(height=520, margin=dict(t=30, l=10, r=10, b=10), showlegend=False,
                         xaxis=dict(type="log", title="MACs per image (log scale)", tickvals=ticks,
                                    ticktext=[format_count(v) for v in ticks],
                                    range=[math.log10(low / 2), math.log10(high * 2)]),
                         yaxis=dict(title="ImageNet top-1 (%)", dtick=2))
    return figure


def layer_charts(summary: ModelSummary) -> None:
    """Parameters and MACs per layer, and how the feature map's shape progresses."""
    weighted = [row for row in summary.rows if row.params or row.macs]
    labels = [row.name for row in weighted]
    left, right = st.columns(2)
    params = go.Figure(go.Bar(x=labels, y=[row.params for row in weighted], marker_color="#4a6fa5"))
    params.update_layout(title="Parameters per layer", xaxis_title=None, yaxis_title="parameters",
                         xaxis_showticklabels=len(labels) <= 40, height=360, margin=dict(t=40, b=10))
    left.plotly_chart(counts_axis(params), width="stretch")
    macs = go.Figure(go.Bar(x=labels, y=[row.macs for row in weighted], marker_color="#c77d2e"))
    macs.update_layout(title="MACs per layer", yaxis_title="multiply-accumulates",
                       xaxis_showticklabels=len(labels) <= 40, height=360, margin=dict(t=40, b=10))
    right.plotly_chart(counts_axis(macs), width="stretch")
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
    st.plotly_chart(shapes, width="stretch")


def fidelity_table(rows: list[FidelityRow]) -> None:
    """The notes' figures beside the live ones, with the reason wherever they differ."""
    if not rows:
        st.caption("The course notes give no figures for this model beyond its name.")
        return
    st.caption(NOTES_SOURCE)
    differing = sum(not row.agrees for row in rows)
    st.markdown(f"{len(rows)} figures from the course notes: **{len(rows) - differing} agree** with the live "
                f"model or the published references, **{differing} differ** — each with the reason.")
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


def confusion_heatmap(test: dict, title: str, height: int = 420, scale: bool = True) -> go.Figure:
    """The test set's confusion matrix (rows: true class, columns: predicted), every class labelled."""
    classes = [widgets.chart_literal(name) for name in test["classes"]]  # folder names: shown as they are
    figure = go.Figure(go.Heatmap(z=test["confusion"], x=classes, y=classes, colorscale="Blues", showscale=scale,
                                  text=test["confusion"], texttemplate="%{text}"))
    figure.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                         height=height, margin=dict(t=40, b=10), xaxis=dict(type="category"),
                         yaxis=dict(type="category"))
    return figure
