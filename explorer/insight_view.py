"""A finished run's mistakes, explained, and its embedding map (core.mistakes), on the Training page.

Both are computed when asked (a toggle): the run's preferred checkpoint is loaded into a model of its own (never the
shared Classify model, so no shared lock is held) and scored once on the test set; core caches the scores per
checkpoint. A confusion cell is chosen by clicking the matrix above or in a select box of the cells by count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from core import explain, mistakes
from core.errors import ExplorerError
from core.runs import RunRecord
from explorer import chart_downloads, presenter, services, widgets

ALL = "Highest-loss images (all test images)"
MAX_POINTS = 2000


def _scored(run: RunRecord) -> mistakes.Scored | None:
    try:
        with st.spinner("Scoring the test set with the run's checkpoint…"):
            return mistakes.for_run(services.run_store().checkpoint_dir(run.id), run.config["dataset"])
    except ExplorerError as error:
        st.info(f"The mistakes and the embedding map cannot be shown: "
                f"{widgets.literal(services.public_text(str(error)))}")
        return None


def panel(run: RunRecord) -> None:
    """The toggle, then (when on) the mistakes of a chosen confusion cell and the embedding map."""
    if not run.test or not run.config:
        return
    if not st.toggle("Mistakes, explained, and the embedding map", key=f"insight-{run.id}",
                     help="Scores the test set with the run's checkpoint: the images of a confusion cell by loss, "
                          "with their top-3 and Grad-CAM, and the penultimate features in 2-D."):
        return
    scored = _scored(run)
    if scored is None:
        return
    _mistakes(run, scored)
    _embedding(run, scored)


def _clicked_cell(run: RunRecord, options: dict[str, tuple[int | None, int | None]], key: str) -> None:
    """A click on the confusion matrix above (true on y, predicted on x) chooses that cell in the select box."""
    state = st.session_state.get(f"confusion-{run.id}")
    points = (state or {}).get("selection", {}).get("points") or []
    if not points:
        return
    point = points[0]
    clicked = (str(point.get("y")), str(point.get("x")))
    if st.session_state.get(f"{key}-applied") == clicked:
        return  # already applied: the select box may have changed since
    st.session_state[f"{key}-applied"] = clicked
    for label in options:
        if label.startswith(f"{clicked[0]} → {clicked[1]} "):
            st.session_state[key] = label


def _mistakes(run: RunRecord, scored: mistakes.Scored) -> None:
    scores = scored.scores
    names = scores.classes
    st.markdown("**Mistakes, explained**: the test images of a confusion cell, highest loss first, with their "
                "top-3 and Grad-CAM (for the predicted class)")
    options: dict[str, tuple[int | None, int | None]] = {ALL: (None, None)}
    for true, predicted, count in mistakes.cells(scores):
        options[f"{names[true]} → {names[predicted]} ({count} images)"] = (true, predicted)
    key = f"insight-cell-{run.id}"
    _clicked_cell(run, options, key)
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    choice = st.selectbox("Confusion cell (true → predicted), most images first", list(options),
                          key=key)
    wanted = options[choice or ALL]
    chosen = mistakes.ranked(scores, *wanted)
    if not chosen:
        st.caption("No test image in this cell.")
        return
    total = len(scores.labels)
    st.caption(f"{len(chosen)} image(s) shown, of the first {total} test images scored.")
    per_row = 4 if presenter.active() else 6
    for start in range(0, len(chosen), per_row):
        for column, index in zip(st.columns(per_row), chosen[start:start + per_row], strict=False):
            with column:
                _example(scored, index)


def _example(scored: mistakes.Scored, index: int) -> None:
    """One test image beside its Grad-CAM, its true class, loss and top-3."""
    scores = scored.scores
    names = scores.classes
    image = scored.images([index])[0]
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    rgb = rgb.permute(1, 2, 0).contiguous()
    try:
        heat = mistakes.heat_map(scored, index)
        heat = torch.nn.functional.interpolate(heat[None, None], size=rgb.shape[:2], mode="bilinear")[0, 0]
        pair = np.hstack([rgb.numpy(), explain.overlay(rgb, heat.clamp(0, 1)).numpy()])
    except ExplorerError:
        pair = rgb.numpy()
    scale = max(1, 96 // pair.shape[0])
    st.image(pair.repeat(scale, 0).repeat(scale, 1), width="stretch")
    top = ", ".join(f"{widgets.literal(names[c])} {p:.0%}" for c, p in zip(scores.top_classes[index].tolist(),
                                                                           scores.top_probs[index].tolist(),
                                                                           strict=True))
    st.caption(f"Image {index} · true {widgets.literal(names[int(scores.labels[index])])} · loss "
               f"{float(scores.losses[index]):.2f} · top-3: {top}")


def _projection(run_id: str, features: torch.Tensor, sample: list[int], method: str) -> torch.Tensor | None:
    key = f"insight-tsne-{run_id}-{len(sample)}"
    if method == "PCA":
        return mistakes.pca_2d(features[sample])
    if key not in st.session_state:
        if not st.button(f"Compute t-SNE of {len(sample)} points", key=f"{key}-go"):
            st.caption("t-SNE takes seconds to a minute; PCA is shown at once.")
            return None
        try:
            with st.spinner(f"t-SNE of {len(sample)} points (scikit-learn)…"):
                st.session_state[key] = mistakes.tsne_2d(features[sample])
        except ExplorerError as error:
            widgets.show_error(error)
            return None
    return st.session_state[key]


def _embedding(run: RunRecord, scored: mistakes.Scored) -> None:
    scores = scored.scores
    st.markdown("**The embedding map**: the penultimate features of a class-stratified sample of the test set")
    if scores.features is None:
        st.caption("This model has no penultimate features to show (no forward_head).")
        return
    left, right = st.columns(2)
    limit = left.number_input("Points (at most)", 10, MAX_POINTS, min(500, MAX_POINTS), step=50,
                              key=f"insight-points-{run.id}")
    method = right.segmented_control("Projection", ["PCA", "t-SNE"], default="PCA", key=f"insight-proj-{run.id}")
    sample = mistakes.stratified_sample(scores.labels, int(limit))
    points = _projection(run.id, scores.features, sample, method or "PCA")
    if points is None:
        return
    figure = go.Figure()
    labels = scores.labels[sample]
    for c, name in enumerate(scores.classes):
        mine = (labels == c).nonzero().flatten().tolist()
        if not mine:
            continue
        indices = [sample[i] for i in mine]
        figure.add_trace(go.Scattergl(
            x=points[mine, 0].tolist(), y=points[mine, 1].tolist(), mode="markers", name=name,
            customdata=[[i, scores.classes[int(scores.predicted[i])]] for i in indices],
            hovertemplate=f"#%{{customdata[0]}} · true {name} · predicted %{{customdata[1]}}<extra></extra>"))
    figure.update_layout(height=460, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="class",
                         title=f"{method or 'PCA'} of {len(sample)} test images")
    event = st.plotly_chart(presenter.figure(figure), width="stretch", key=f"insight-map-{run.id}",
                            on_select="rerun", selection_mode="points", config=chart_downloads.config())
    clicked: list[Any] = dict(event or {}).get("selection", {}).get("points") or []
    if clicked and clicked[0].get("customdata"):
        index = int(clicked[0]["customdata"][0])
        st.markdown(f"**Test image #{index}** (clicked): its top-3 and Grad-CAM")
        with st.columns(3 if presenter.active() else 4)[0]:
            _example(scored, index)
    else:
        st.caption("Click a point to see its image, its top-3 and its Grad-CAM here.")
