"""Small shared components: each renders one thing and owns its session-state keys."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import models
from core.analysis import ModelSummary, format_count, format_pair, format_shape
from core.fidelity import FidelityRow
from explorer import widgets

MACS_NOTE = (
    "MACs are multiply-accumulates (one multiplication and one addition): 1 MAC = 2 FLOPs. "
    "torchvision's “GFLOPS” are MACs too (ResNet-50: 4.09 G)."
)


def display_name(name: str) -> str:
    """``"resnet50"`` → ``"ResNet-50"``."""
    return models.spec(name).display_name


def model_picker(label: str = "Model", key: str = "model") -> str:
    """A model selectbox bound to the URL's ``?model=`` so a slide can link to a model."""
    names = models.names()
    if key not in st.session_state:
        st.session_state[key] = widgets.url_model(default="resnet50")
    name = st.selectbox(label, names, key=key, format_func=display_name)
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
    columns[0].metric("Parameters", f"{summary.total_params:,}",
                      help=f"{summary.trainable_params:,} trainable, {summary.non_trainable_params:,} frozen; "
                           f"plus {summary.buffers:,} batch-norm statistics (buffers)")
    columns[1].metric("MACs / image", format_count(summary.total_macs), help=MACS_NOTE)
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
    st.dataframe(
        frame,
        hide_index=True,
        height=420,
        column_config={
            "params": st.column_config.NumberColumn(format="localized"),
            "trainable": st.column_config.NumberColumn(format="localized"),
            "non-trainable": st.column_config.NumberColumn(format="localized"),
            "MACs": st.column_config.NumberColumn(format="localized", help=MACS_NOTE),
        },
    )
    rows_total = sum(row.params for row in summary.rows)
    st.markdown(
        f"**Total: {summary.total_params:,} parameters** ({summary.trainable_params:,} trainable, "
        f"{summary.non_trainable_params:,} non-trainable) · {summary.total_macs:,} MACs · "
        f"{summary.activation_bytes / 2**20:,.1f} MiB of activations per image (float32)"
    )
    for module_name, count in summary.unused:
        st.caption(f"{module_name} ({count:,} parameters) runs only in training, so it has no rows above; "
                   f"the table's rows hold {rows_total:,} parameters.")
    st.download_button("Download the table (CSV)", frame.to_csv(index=False).encode(),
                       file_name=f"{summary.name}-layers.csv", mime="text/csv")


def layer_charts(summary: ModelSummary) -> None:
    """Parameters and MACs per layer, and how the feature map's shape progresses."""
    weighted = [row for row in summary.rows if row.params or row.macs]
    labels = [row.name for row in weighted]
    left, right = st.columns(2)
    params = go.Figure(go.Bar(x=labels, y=[row.params for row in weighted], marker_color="#4a6fa5"))
    params.update_layout(title="Parameters per layer", xaxis_title=None, yaxis_title="parameters",
                         xaxis_showticklabels=len(labels) <= 40, height=360, margin=dict(t=40, b=10))
    left.plotly_chart(params, width="stretch")
    macs = go.Figure(go.Bar(x=labels, y=[row.macs for row in weighted], marker_color="#c77d2e"))
    macs.update_layout(title="MACs per layer", yaxis_title="multiply-accumulates",
                       xaxis_showticklabels=len(labels) <= 40, height=360, margin=dict(t=40, b=10))
    right.plotly_chart(macs, width="stretch")
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
    differing = sum(not row.agrees for row in rows)
    st.markdown(f"{len(rows)} figures from the course notes: **{len(rows) - differing} agree** with the live "
                f"model or the published references, **{differing} differ** — each with the reason.")
    frame = pd.DataFrame([
        {"": "✓ agrees" if row.agrees else "⚠ differs", "figure": row.label, "course notes": row.notes,
         "this app (live)": row.live, "published elsewhere": row.published, "why": row.explanation,
         "where in the notes": row.where}
        for row in rows
    ])
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"why": st.column_config.TextColumn(width="large")})
    for row in rows:
        if not row.agrees:
            st.markdown(f"- ⚠ **{row.label}** — notes: {row.notes}; live: {row.live}. {row.explanation}")


def confusion_heatmap(test: dict, title: str, height: int = 420, scale: bool = True) -> go.Figure:
    """The test set's confusion matrix (rows: true class, columns: predicted), every class labelled."""
    classes = test["classes"]
    figure = go.Figure(go.Heatmap(z=test["confusion"], x=classes, y=classes, colorscale="Blues", showscale=scale,
                                  text=test["confusion"], texttemplate="%{text}"))
    figure.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                         height=height, margin=dict(t=40, b=10), xaxis=dict(type="category"),
                         yaxis=dict(type="category"))
    return figure
