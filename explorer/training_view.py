"""Components of the Training page: the live view of a run, its results, and the history of runs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.errors import ExplorerError
from explorer import components, services, widgets

ACTIVE = ("queued", "running")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "…"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _rate_axis(figure: go.Figure, rates: list[float]) -> None:
    """A constant rate is said in words (a flat line on an axis labelled "0" reads as zero); one that varies
    gets a log axis, where schedules over decades stay readable."""
    if max(rates) == min(rates):
        figure.update_yaxes(showticklabels=False, row=1, col=3)
        figure.add_annotation(text=f"constant {rates[0]:g}", xref="x3 domain", yref="y3 domain", x=0.5, y=0.6,
                              showarrow=False, font=dict(size=14))
    elif min(rates) > 0:
        figure.update_yaxes(type="log", exponentformat="power", row=1, col=3)


def curves(steps: list[dict[str, float]], epochs: list[dict[str, float]], steps_per_epoch: float) -> go.Figure:
    """Loss, accuracy and learning rate: per batch (train) and per epoch (train and validation)."""
    figure = make_subplots(rows=1, cols=3, subplot_titles=("Loss", "Accuracy", "Learning rate"))
    if steps:
        x = [s["step"] / steps_per_epoch for s in steps] if steps_per_epoch else [s["step"] for s in steps]
        figure.add_trace(go.Scatter(x=x, y=[s["train_loss"] for s in steps], name="train (batches)",
                                    line=dict(color="#9db4d6", width=1)), 1, 1)
        figure.add_trace(go.Scatter(x=x, y=[s["train_acc"] for s in steps], name="train (batches)",
                                    line=dict(color="#9db4d6", width=1), showlegend=False), 1, 2)
        figure.add_trace(go.Scatter(x=x, y=[s["lr"] for s in steps], name="learning rate",
                                    line=dict(color="#c77d2e")), 1, 3)
        _rate_axis(figure, [s["lr"] for s in steps])
    if epochs:
        x = [e["epoch"] for e in epochs]
        for key, name, colour, column in [("train_loss", "train", "#4a6fa5", 1), ("val_loss", "validation", "#c0392b", 1),
                                          ("train_acc", "train", "#4a6fa5", 2), ("val_acc", "validation", "#c0392b", 2)]:
            figure.add_trace(go.Scatter(x=x, y=[e[key] for e in epochs], name=f"{name} (epochs)", mode="lines+markers",
                                        line=dict(color=colour), showlegend=column == 1), 1, column)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=340, margin=dict(t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return figure


def follow(run_id: str) -> None:
    """The followed run: live while it is active (polled each second), then its results."""
    manager = services.job_manager()
    live = manager.snapshot(run_id)
    active = live is not None and live.status in ACTIVE

    @st.fragment(run_every=1.0 if active else None)
    def panel() -> None:
        snapshot = manager.snapshot(run_id)
        run = services.run_store().run(run_id)
        status = snapshot.status if snapshot else run["status"]
        config = run["config"]
        st.subheader(f"Run {run_id}")
        st.caption(f"{components.display_name(config['arch'])} on "
                   f"{widgets.literal(services.dataset_label(config['dataset']))} · {config['optimizer']} "
                   f"lr {config['lr']} · batch {config['batch_size']} · {config['epochs']} epochs · "
                   f"{run.get('device') or 'device pending'}")
        if snapshot and status in ACTIVE:
            _live(manager, snapshot, run_id)
            return
        if active:  # it has just finished: redraw the page without polling
            st.rerun()
        _finished(run, snapshot.messages if snapshot else [])

    panel()


def _live(manager: Any, snapshot: Any, run_id: str) -> None:
    position = manager.position(run_id)
    if snapshot.status == "queued":
        st.info(f"Queued: place {position} — the device is busy with another run." if position
                else "Starting…", icon=":material/schedule:")
    else:
        done = snapshot.step / snapshot.total_steps if snapshot.total_steps else 0.0
        st.progress(min(done, 1.0), text=f"Epoch {snapshot.epoch}/{snapshot.epochs} · {done:.0%} · "
                    f"{snapshot.images_per_second:,.0f} images/s · {_duration(snapshot.elapsed)} elapsed · "
                    f"ETA {_duration(snapshot.eta)}")
        steps_per_epoch = snapshot.total_steps / snapshot.epochs if snapshot.epochs else 0
        st.plotly_chart(curves(snapshot.steps, snapshot.epochs_done, steps_per_epoch), width="stretch",
                        key=f"live-{run_id}")
    for message in snapshot.messages:
        st.info(widgets.literal(services.public_text(message)))
    if st.button("Stop", key=f"stop-{run_id}", icon=":material/stop_circle:"):
        manager.stop(run_id)
        st.toast("Stopping after the current batch; what was learned is kept.")


def _finished(run: dict[str, Any], messages: list[str]) -> None:
    status = run["status"]
    store = services.run_store()
    epochs = store.metrics(run["id"], "epoch")
    steps = store.metrics(run["id"], "step")
    message = run.get("message") or " ".join(messages)
    if status == "failed":
        st.error(f"The run failed. {widgets.literal(services.public_text(message or ''))}", icon=":material/error:")
        if "digits" in (message or "") and run["config"]["dataset"] != "digits":
            st.caption("Choose the **digits** data set above: it is bundled and works offline.")
    elif message:
        st.info(widgets.literal(services.public_text(message)))
    if epochs:
        steps_per_epoch = max(e["step"] for e in epochs) / len(epochs)
        st.plotly_chart(curves(steps, epochs, steps_per_epoch), width="stretch", key=f"done-{run['id']}")
    test = run.get("test")
    if not test:
        return
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{test['accuracy']:.2%}")
    columns[1].metric("Test loss", f"{test['loss']:.4f}")
    columns[2].metric("Best validation accuracy", f"{run['best_val_acc']:.2%}" if run["best_val_acc"] else "–")
    columns[3].metric("Training time", _duration(run["elapsed"] or 0))
    classes = test["classes"]
    left, right = st.columns(2)
    left.plotly_chart(components.confusion_heatmap(test, "Confusion matrix (test set)"), width="stretch",
                      key=f"confusion-{run['id']}")
    per_class = pd.DataFrame(test["per_class"], index=classes).rename_axis("class").reset_index()
    right.dataframe(per_class, hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "f1")})
    _misclassified(run, test)
    _downloads(run)


def _misclassified(run: dict[str, Any], test: dict[str, Any]) -> None:
    wrong = test.get("misclassified") or []
    if not wrong:
        st.caption("No test image was misclassified.")
        return
    st.markdown(f"**Misclassified test images** (first {len(wrong)}): true → predicted")
    try:
        images = services.test_images(run["config"]["dataset"], wrong)
    except ExplorerError as error:
        st.caption(f"The images cannot be shown: {widgets.literal(services.public_text(str(error)))}")
        return
    columns = st.columns(12)
    for i, ((image, truth), predicted) in enumerate(zip(images, test["predicted"], strict=True)):
        caption = f"{widgets.literal(test['classes'][truth])} → {widgets.literal(test['classes'][predicted])}"
        columns[i % 12].image(image, caption=caption, width=56)


def _downloads(run: dict[str, Any]) -> None:
    store = services.run_store()
    path = store.checkpoint_path(run["id"], "best")
    if not path.exists():
        return
    left, right = st.columns(2)
    left.download_button("Download the best checkpoint (safetensors)", path.read_bytes(),
                         file_name=f"{run['id']}-{run['arch']}.safetensors", key=f"weights-{run['id']}")
    right.download_button("Download its metadata (JSON sidecar)", path.with_suffix(".json").read_bytes(),
                          file_name=f"{run['id']}-{run['arch']}.json", key=f"sidecar-{run['id']}")


def history() -> None:
    """All runs, newest first; pick several to overlay their validation curves."""
    store = services.run_store()
    runs = store.runs()
    st.subheader("History")
    if not runs:
        st.caption("No runs yet. Start one above: LeNet-5 on the bundled digits takes a few seconds.")
        return
    table = pd.DataFrame([{
        "run": r["id"], "model": components.display_name(r["arch"]), "data": services.dataset_label(r["dataset"]),
        "status": r["status"],
        "epochs": r["config"]["epochs"], "best val acc": r["best_val_acc"],
        "test acc": (r["test"] or {}).get("accuracy"), "time (s)": r["elapsed"],
    } for r in runs])
    st.dataframe(table, hide_index=True, column_config={
        "best val acc": st.column_config.NumberColumn(format="%.4f"),
        "test acc": st.column_config.NumberColumn(format="%.4f"),
        "time (s)": st.column_config.NumberColumn(format="%.1f")})
    chosen = st.multiselect("Overlay validation accuracy of", [r["id"] for r in runs],
                            default=[r["id"] for r in runs[:3] if r["best_val_acc"] is not None], key="overlay")
    if chosen:
        figure = go.Figure()
        for run_id in chosen:
            epochs = store.metrics(run_id, "epoch")
            figure.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["val_acc"] for e in epochs],
                                        name=run_id, mode="lines+markers"))
        figure.update_layout(xaxis_title="epoch", yaxis_title="validation accuracy", height=340, margin=dict(t=20))
        st.plotly_chart(figure, width="stretch", key="overlay-chart")
    st.selectbox("Open a run", [None, *[r["id"] for r in runs]], key="open-run", on_change=_open_run,
                 format_func=lambda run_id: "choose a run…" if run_id is None else run_id)


def _open_run() -> None:
    """Follow the run chosen in the history (and put it in the URL)."""
    run_id = st.session_state.get("open-run")
    if run_id:
        st.session_state["run"] = run_id
        widgets.run_url(run_id)
