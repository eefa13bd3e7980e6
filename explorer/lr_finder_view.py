"""The learning-rate finder on the Training page: fastai's range test as a run in a worker (never in the web
server), its loss-against-rate curve (log x) drawn as the points arrive, both suggested rates, and buttons that
put either into the form's learning-rate field.

The sweep itself is ``core.training.lr_sweep`` (a run whose config has ``lr_find``); the smoothing and the
suggestions are ``core.training.lr_finder``'s pure functions, recomputed here from the run's rows.
"""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import streamlit as st

from core.errors import ExplorerError
from core.runs import RunRecord
from core.training import lr_finder, lr_sweep
from explorer import chart_downloads, services, widgets

RUN_KEY = "lr-find-run"  # the session's range-test run
POLL_EVERY = 1.0  # seconds between looks at a running sweep
LOWEST, HIGHEST = 1e-6, 10.0  # the form's learning-rate field accepts these


def start(config: services.TrainConfig) -> None:
    """Queue a range test of ``config`` (its model, data, optimiser and batch size) and follow it."""
    run_id = widgets.attempt(services.submit, dataclasses.replace(config, lr_find=True, epochs=1))
    if run_id:
        st.session_state[RUN_KEY] = run_id


def suggestions(points: list[dict[str, float]]) -> lr_finder.Suggestion | None:
    """Both suggested rates from a sweep's rows, or None while there are too few."""
    try:
        return lr_finder.suggest([p["lr"] for p in points], lr_finder.smooth([p["loss"] for p in points]))
    except ExplorerError:
        return None


def figure(points: list[dict[str, float]], suggestion: lr_finder.Suggestion | None) -> go.Figure:
    """Loss (raw and smoothed) against the learning rate, log x, with both suggestions marked."""
    rates = [p["lr"] for p in points]
    smoothed = lr_finder.smooth([p["loss"] for p in points])
    chart = go.Figure()
    chart.add_trace(go.Scatter(x=rates, y=[p["loss"] for p in points], name="loss", mode="lines",
                               line={"width": 1}, opacity=0.4))
    chart.add_trace(go.Scatter(x=rates, y=smoothed, name="smoothed loss", mode="lines"))
    if suggestion is not None:
        for rate, name, dash in ((suggestion.steepest, "steepest descent", "dash"),
                                 (suggestion.minimum_tenth, "minimum / 10", "dot")):
            chart.add_vline(x=rate, line_dash=dash, annotation_text=f"{name}: {rate:.2g}")
    finite = [s for s in smoothed if s == s and s != float("inf")]
    top = min(max(finite), 4 * min(finite)) if finite else None
    chart.update_layout(xaxis={"type": "log", "title": "learning rate"},
                        yaxis={"title": "training loss", "range": [0, top * 1.05] if top else None},
                        height=360, margin={"t": 30, "b": 40})
    return chart


def _use(rate: float, key: str) -> None:
    """Put ``rate`` (clamped to the field's range) into the form's learning-rate field."""
    st.session_state[key] = float(min(max(rate, LOWEST), HIGHEST))


def show(lr_key: str) -> None:
    """The session's range test, if any: live while it runs, then its curve and the two suggestions."""
    run_id = st.session_state.get(RUN_KEY)
    if not run_id:
        return
    run = widgets.attempt(services.run, run_id)
    if run is None:
        return
    st.subheader("Learning-rate finder")
    st.caption("fastai's range test: one batch per rate, the rate growing exponentially from "
               f"{lr_finder.START_LR:g} to {lr_finder.END_LR:g} over at most {lr_finder.STEPS} batches, stopping "
               f"once the smoothed loss exceeds {lr_finder.DIVERGENCE:g}× its minimum. The weights are not kept.")
    if run.is_active:
        if st.button("Stop the range test", key=f"stop-lr-{run_id}", icon=":material/stop_circle:"):
            widgets.attempt(services.stop, run_id)
        _live(run_id)
        return
    _result(run, lr_key)


def _live(run_id: str) -> None:
    """The curve so far, redrawn every ``POLL_EVERY`` seconds; the page redraws once the sweep ends."""

    @st.fragment(run_every=POLL_EVERY)
    def live() -> None:
        now = widgets.attempt(services.run, run_id)
        if now is None:
            return
        if now.has_ended:
            st.rerun()
        points = services.run_store().metrics(run_id, lr_sweep.KIND)
        st.progress(min(len(points) / lr_finder.STEPS, 1.0),
                    text=f"Range test: {len(points)} of at most {lr_finder.STEPS} batches")
        if points:
            st.plotly_chart(figure(points, None), key=f"lr-live-{run_id}", config=chart_downloads.config())

    live()


def _result(run: RunRecord, lr_key: str) -> None:
    """The finished sweep's curve, both suggestions and the buttons that use them."""
    points = services.run_store().metrics(run.id, lr_sweep.KIND)
    suggestion = suggestions(points)
    if run.status != "completed" or suggestion is None:
        st.warning(widgets.literal(services.public_text(run.message or f"The range test {run.status}.")))
        if len(points) < 3:
            return
    st.plotly_chart(figure(points, suggestion), key=f"lr-done-{run.id}", config=chart_downloads.config())
    if suggestion is None:
        return
    st.markdown(f"Suggested rates: **{suggestion.steepest:.2g}** where the smoothed loss falls fastest (steepest "
                f"descent against log rate), and **{suggestion.minimum_tenth:.2g}**, a tenth of the rate at its "
                "minimum. Both are rules of thumb; the first is fastai's default.")
    left, right = st.columns(2)
    left.button(f"Use {suggestion.steepest:.2g} (steepest descent)", key="use-lr-steepest", type="primary",
                on_click=_use, args=(suggestion.steepest, lr_key))
    right.button(f"Use {suggestion.minimum_tenth:.2g} (minimum / 10)", key="use-lr-minimum",
                 on_click=_use, args=(suggestion.minimum_tenth, lr_key))
