"""Components of the Training page: the live view of a run, its results, and the history of runs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core import labels, transfer
from core.errors import ExplorerError
from core.runs import RunRecord, Status
from explorer import axes, chart_downloads, components, export_view, insight_view, live_curves, presenter, services, widgets

STEP_POINTS = 2000  # the live curve keeps at most this many per-batch points
DRAWN_POINTS = 400  # per-batch points drawn per curve
# The live view polls the store every LIVE_EVERY seconds and redraws its curves' image every CURVES_EVERY (and at
# each epoch's end). A poll costs the server a small read of the store, but a browser tab ~80 ms of CPU, whatever
# it draws (Streamlit redraws the page's elements): where the browser shares the machine with the run, as on a
# laptop demo, that is what watching costs (benchmarks/watching.py). Measured with three tabs on a 2-core
# machine: a Plotly chart every 10 s and the progress every 2 s, 26 % of a core; this, 14 %.
LIVE_EVERY = 3.0
CURVES_EVERY = 6.0


def duration(seconds: float) -> str:
    """Seconds as "2 min 05 s" ("…" when not known)."""
    if not math.isfinite(seconds):
        return "…"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _rate_axis(figure: go.Figure, rates: list[float]) -> None:
    """A constant rate is said in words (a flat line on an axis labelled "0" reads as zero); one that varies
    gets a log axis labelled at its decades (or 1, 2, 5 within one), where schedules over decades stay readable."""
    finite = [r for r in rates if math.isfinite(r)]
    if not finite:
        return
    if max(finite) == min(finite):
        figure.update_yaxes(showticklabels=False, row=1, col=3)
        figure.add_annotation(text=f"constant {finite[0]:g}", xref="x3 domain", yref="y3 domain", x=0.5, y=0.6,
                              showarrow=False, font=dict(size=16))
    elif min(finite) > 0:
        figure.update_yaxes(axes.plotly_log(min(finite), max(finite)), row=1, col=3)


def _value_axes(figure: go.Figure, batch_x: list[float], steps: list[dict[str, float]],
                epochs: list[dict[str, float]]) -> None:
    """Loss and accuracy axes zoomed to the epochs and the batches after the first epoch (``live_curves``'s
    rule: the first batches' 20 % must not flatten 97–99 % into one line), ticks at round values."""
    for column, keys in ((1, ("train_loss", "val_loss")), (2, ("train_acc", "val_acc"))):
        batch = [(x, s[keys[0]]) for x, s in zip(batch_x, steps, strict=True)]
        epoch = [(float(e["epoch"]), e[key]) for e in epochs for key in keys]
        low, high = live_curves.value_range(batch, epoch, accuracy=column == 2)
        figure.update_yaxes(axes.plotly_linear(low, high), row=1, col=column)
    xs = [x for x in batch_x + [float(e["epoch"]) for e in epochs] if math.isfinite(x)]
    if xs:
        low, high = min(0.0, *xs), max(xs)
        figure.update_xaxes(axes.plotly_linear(low, high + 0.02 * (high - low or 1), epochs=high - low >= 2))


def thinned(steps: list[dict[str, float]]) -> list[dict[str, float]]:
    """Every k-th batch point (and the latest): what a browser draws stays small."""
    if len(steps) <= DRAWN_POINTS:
        return steps
    stride = -(-len(steps) // DRAWN_POINTS)
    return steps[::-1][::stride][::-1]


def curves(steps: list[dict[str, float]], epochs: list[dict[str, float]], steps_per_epoch: float) -> go.Figure:
    """Loss, accuracy and learning rate: per batch (train) and per epoch (train and validation); interactive,
    for an ended run (the live view draws the same curves as an image: ``live_curves``)."""
    figure = make_subplots(rows=1, cols=3, subplot_titles=("Loss", "Accuracy", "Learning rate"))
    steps = thinned(steps)
    batch_x = [s["step"] / steps_per_epoch for s in steps] if steps_per_epoch else [float(s["step"]) for s in steps]
    if steps:
        batch_line = dict(color=live_curves.BATCH, width=1.6)
        figure.add_trace(go.Scatter(x=batch_x, y=[s["train_loss"] for s in steps], name="train (batches)",
                                    line=batch_line), 1, 1)
        figure.add_trace(go.Scatter(x=batch_x, y=[s["train_acc"] for s in steps], name="train (batches)",
                                    line=batch_line, showlegend=False), 1, 2)
        figure.add_trace(go.Scatter(x=batch_x, y=[s["lr"] for s in steps], name="learning rate",
                                    line=dict(color=live_curves.RATE, width=2)), 1, 3)
        _rate_axis(figure, [s["lr"] for s in steps])
    if epochs:
        x = [e["epoch"] for e in epochs]
        for key, name, colour, column in [
                ("train_loss", "train", live_curves.TRAIN, 1), ("val_loss", "validation", live_curves.VALIDATION, 1),
                ("train_acc", "train", live_curves.TRAIN, 2), ("val_acc", "validation", live_curves.VALIDATION, 2)]:
            figure.add_trace(go.Scatter(x=x, y=[e[key] for e in epochs], name=f"{name} (epochs)", mode="lines+markers",
                                        line=dict(color=colour, width=2.5), marker=dict(size=8),
                                        showlegend=column == 1), 1, column)
    _value_axes(figure, batch_x, steps, epochs)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(margin=dict(t=40, b=10, r=30), legend=dict(orientation="h", y=-0.3))  # room for the last tick
    return presenter.figure(figure, height=360)


def follow(run_id: str, replay: Callable[[RunRecord], bool] | None = None) -> None:
    """The followed run: live while it is queued or running (polling the store), then its results, or what
    ``replay(run)`` draws instead of them when it returns True (``explorer.replay.view``).

    Watching must not slow the run: the header and the buttons are drawn once per change of status, and
    the polled fragment draws only what moves (the progress line, and the curves as one image)."""
    run = widgets.attempt(services.run, run_id)
    if run is None:
        return
    _header(run)
    if run.has_ended:
        if not (replay and replay(run)):
            _finished(run)
        if run.status == "interrupted":  # a trainer that only paused (a gap in its heartbeats) may come back
            _redraw_when_status_changes(run_id, run.status)
        return
    if run.status == "queued":
        widgets.attempt(services.serve_queue)  # e.g. runs queued before the server restarted
    _controls(run)
    drawn = _phase(run)

    @st.fragment(run_every=LIVE_EVERY)
    def live() -> None:
        now = widgets.attempt(services.run, run_id)
        if now is None:
            return
        if _phase(now) != drawn:
            st.rerun()  # started, stopping or ended: redraw the page once
        _progress(now)
        image = _live_image(now)
        if image:
            st.image(image, width="stretch", alt=live_curves.ALT)

    live()


def _redraw_when_status_changes(run_id: str, status: Status) -> None:
    """Poll the store while the page shows ``status``; redraw the page once the run has another."""

    @st.fragment(run_every=LIVE_EVERY)
    def watch() -> None:
        try:
            now = services.run(run_id).status
        except ExplorerError:  # a busy store: look again at the next poll
            return
        if now != status:
            st.rerun()

    watch()


def _phase(run: RunRecord) -> tuple[Status, bool, bool]:
    """What the page draws of an active run outside its polled fragment: when it changes, the page redraws."""
    return run.status, run.stop_requested, bool(run.device)


def _header(run: RunRecord) -> None:
    config = run.config
    literal = widgets.literal  # a rebuilt run's fields come from sidecars on disk, which anyone with the folder edits
    st.subheader(f"Run {literal(run.id)}")
    st.caption(f"{components.display_name(config['arch'])} on {literal(services.dataset_label(config['dataset']))} · "
               f"{literal(config['optimizer'])} lr {literal(config['lr'])} · batch {literal(config['batch_size'])} · "
               f"{literal(config['epochs'])} epochs · {literal(run.device or 'device pending')}")
    random_weights_warning(note(config))


def note(config: dict[str, Any]) -> str:
    """The random-weights label of a transfer run that started without its ImageNet file, else ""."""
    return transfer.random_weights_note(config["arch"]) if transfer.random_start(config) else ""


def random_weights_warning(text: str) -> None:
    """A transfer result on random weights says so, why, and how to get the file (nothing for an empty text)."""
    if text:
        st.warning(widgets.literal(text[:1].upper() + text[1:]), icon=":material/casino:")


def _live_image(run: RunRecord) -> str | None:
    """The live curves as an SVG: drawn anew when ``CURVES_EVERY`` has passed since the last drawing, or when an
    epoch has ended since; in between, the same image again."""
    drawn = st.session_state.get(f"curves-image-{run.id}")
    progress = run.progress or {}
    scale = live_curves.PRESENTER_SCALE if presenter.active() else 1.0
    if (drawn and time.monotonic() - drawn["at"] < CURVES_EVERY and drawn["epoch"] == progress.get("epoch")
            and drawn.get("scale") == scale):
        return str(drawn["svg"])
    seen = _curves_so_far(run.id)
    if not (seen["steps"] or seen["epochs"]):
        return None
    epochs = progress.get("epochs") or 0
    steps_per_epoch = progress["total_steps"] / epochs if epochs and progress.get("total_steps") else 0
    image = live_curves.svg(thinned(seen["steps"]), seen["epochs"], steps_per_epoch, scale)
    st.session_state[f"curves-image-{run.id}"] = {"svg": image, "at": time.monotonic(),
                                                  "epoch": progress.get("epoch"), "scale": scale}
    return image


def _curves_so_far(run_id: str) -> dict[str, Any]:
    """This session's copy of a run's curves, topped up with only the rows logged since the last poll."""
    seen = st.session_state.setdefault(f"curves-{run_id}", {"steps": [], "epochs": []})
    store = services.run_store()
    last_step = seen["steps"][-1]["step"] if seen["steps"] else -1
    last_epoch = seen["epochs"][-1]["step"] if seen["epochs"] else -1
    seen["steps"] = (seen["steps"] + store.metrics(run_id, "step", after_step=last_step))[-STEP_POINTS:]
    seen["epochs"] = seen["epochs"] + store.metrics(run_id, "epoch", after_step=last_epoch)
    return seen


def _controls(run: RunRecord) -> None:
    """Cancel (queued) or Stop (running) an active run, or say that it is stopping."""
    run_id = run.id
    if run.status == "queued":
        if st.button("Cancel", key=f"cancel-{run_id}", icon=":material/cancel:"):
            widgets.attempt(services.stop, run_id)
            st.rerun()
    elif run.stop_requested:
        st.caption("Stopping after the current batch; its checkpoint is saved.")
    elif st.button("Stop", key=f"stop-{run_id}", icon=":material/stop_circle:"):
        widgets.attempt(services.stop, run_id)
        st.rerun()  # redrawn with the stopping caption


def _progress(run: RunRecord) -> None:
    """The progress line and messages of an active run (its place in the queue while it waits)."""
    progress = run.progress or {}
    if run.status == "queued":
        position = services.run_store().position(run.id)
        st.info(f"Queued: place {position} — the workers are busy with other runs." if position and position > 1
                else "Starting: a worker is taking this run…", icon=":material/schedule:")
        return
    if progress:
        done = progress["step"] / progress["total_steps"] if progress.get("total_steps") else 0.0
        st.progress(min(done, 1.0), text=f"Epoch {progress['epoch']}/{progress['epochs']} · {done:.0%} · "
                    f"{progress['images_per_second']:,.0f} images/s · {duration(progress['elapsed'])} elapsed · "
                    f"ETA {duration(progress['eta'])}")
        for message in progress.get("messages") or []:
            st.info(widgets.literal(services.public_text(message)))
    else:
        st.info("Loading the data and building the model…", icon=":material/hourglass_top:")


def _finished(run: RunRecord) -> None:
    """Messages, Resume / Delete, the curves, the test figures and the checkpoints of an ended run."""
    status = run.status
    store = services.run_store()
    epochs = store.metrics(run.id, "epoch")
    steps = store.metrics(run.id, "step")
    message = run.message
    if status == "failed":
        st.error(f"The run failed. {widgets.literal(services.public_text(message or ''))}", icon=":material/error:")
        if "digits" in (message or "") and run.config["dataset"] != "digits":
            st.caption("Choose the **digits** data set above: it is bundled and works offline.")
    elif status == "interrupted":
        st.warning(widgets.literal(services.public_text(message or "Interrupted.")), icon=":material/heart_broken:")
    elif message:
        st.info(widgets.literal(services.public_text(message)))
    _actions(run)
    if epochs:
        steps_per_epoch = max(e["step"] for e in epochs) / len(epochs)
        st.plotly_chart(curves(steps, epochs, steps_per_epoch),
                        config=chart_downloads.config(), width="stretch", key=f"done-{run.id}")
    show_test_figures(run)
    insight_view.panel(run)
    downloads(run)
    export_view.panel(run)


def show_test_figures(run: RunRecord) -> None:
    """The test figures of an ended run: accuracy, loss, the confusion matrix, per class, the misclassified."""
    test = run.test
    if not test:
        return
    columns = [*st.columns(2), *st.columns(2)] if presenter.active() else st.columns(4)  # whole labels at 1024 px
    columns[0].metric("Test accuracy", f"{test['accuracy']:.2%}")
    columns[1].metric("Test loss", f"{test['loss']:.4f}")
    best = run.best_val_acc
    columns[2].metric("Best validation accuracy", f"{best:.2%}" if best is not None and math.isfinite(best) else "–")
    columns[3].metric("Training time", duration(run.elapsed or 0))
    if test.get("checkpoint"):
        where = f"epoch {test.get('epoch')}, step {test.get('step')}"
        kept = "saved, downloadable below" if test.get("saved") else "not saved"
        st.caption(widgets.literal(f"Test figures of the {test['checkpoint']} checkpoint ({where}; {kept})."))
    classes = test["classes"]
    title = "Confusion matrix (test set)"
    if presenter.active():  # cells large enough to read from the back of the room; the table below it
        st.plotly_chart(presenter.figure(components.confusion_heatmap(test, title, scale=False,
                                                                      cell=components.CELL_PX)),
                        config=chart_downloads.config(), width="content", key=f"confusion-{run.id}",
                        on_select="rerun", selection_mode="points")
        right = st.container()
    else:
        left, right = st.columns(2)
        left.plotly_chart(components.confusion_heatmap(test, title),
                          config=chart_downloads.config(), width="stretch", key=f"confusion-{run.id}",
                          on_select="rerun", selection_mode="points")
    per_class = pd.DataFrame(test["per_class"], index=classes).rename_axis("class").reset_index()
    right.dataframe(per_class, hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "f1")})
    _misclassified(run, test)


def _misclassified(run: RunRecord, test: dict[str, Any]) -> None:
    wrong = test.get("misclassified") or []
    if not wrong:
        st.caption("No test image was misclassified.")
        return
    st.markdown(f"**Misclassified test images** (first {len(wrong)}): true → predicted")
    try:
        images = services.test_images(run.config["dataset"], wrong)
    except ExplorerError as error:
        st.caption(f"The images cannot be shown: {widgets.literal(services.public_text(str(error)))}")
        return
    names = test["classes"]
    components.image_grid([(image, f"{names[truth]} → {names[predicted]}")  # escaped by image_grid
                           for (image, truth), predicted in zip(images, test["predicted"], strict=True)],
                          key=f"misclassified-{run.id}")


def _actions(run: RunRecord) -> None:
    """Resume (a stopped, failed or interrupted run) and delete (with its files, after a confirmation)."""
    run_id = run.id
    left, right, _ = st.columns(3)  # wide enough for "Delete" and its menu arrow at 1024 px
    if run.is_resumable and left.button(
            "Resume", key=f"resume-{run_id}", icon=":material/play_circle:",
            help="Continue from the last checkpoint (or from the start if none was saved)."):
        try:
            services.resume(run_id)
        except ExplorerError as error:
            widgets.show_error(error)
        else:
            st.rerun()
    with right.popover("Delete", icon=":material/delete:"):
        st.markdown(f"Delete run {widgets.literal(run_id)}, its curves and its checkpoint files? This cannot be "
                    "undone.")
        if st.button("Delete this run", key=f"delete-{run_id}", type="primary"):
            try:
                services.delete_run(run_id)
            except ExplorerError as error:
                widgets.show_error(error)
            else:
                for key in ("run", f"curves-{run_id}", f"curves-image-{run_id}"):
                    st.session_state.pop(key, None)
                widgets.run_url(None)
                st.rerun()


def downloads(run: RunRecord) -> None:
    """Every saved checkpoint of the run, whatever its status, with its JSON sidecar; a damaged one is not offered
    (its bytes no longer match the SHA-256 recorded when it was saved) and the page says so."""
    files = widgets.attempt(services.checkpoint_downloads, run.id)
    if not files:
        st.caption("No checkpoint was saved for this run.")
        return
    columns = st.columns(len(files))  # short labels, one column per checkpoint: no label is cut at 1024 px
    labels = {"best": "Best checkpoint", "last": "Last checkpoint"}
    helps = {"best": "The weights with the best validation accuracy (safetensors).",
             "last": "The weights at the end of the last epoch (safetensors)."}
    for column, (which, offered) in zip(columns, sorted(files.items()), strict=True):
        if offered.problem:
            column.warning(widgets.literal(f"The {which} checkpoint is damaged and is not offered for download: "
                                           f"{offered.problem}"), icon=":material/warning:")
            continue
        stem = f"{run.id}-{run.arch}-{which}"
        column.download_button(labels[which], offered.weights, file_name=f"{stem}.safetensors", help=helps[which],
                               key=f"weights-{which}-{run.id}", icon=":material/download:")
        column.download_button("Its sidecar (JSON)", offered.sidecar, file_name=f"{stem}.json",
                               help="What the weights are: model, classes, preprocessing, figures.",
                               key=f"sidecar-{which}-{run.id}")


def history() -> None:
    """All runs, newest first; pick several to overlay their validation curves."""
    store = services.run_store()
    runs = store.runs()
    st.subheader("History")
    if not runs:
        st.caption("No runs yet. Start one above: LeNet-5 on the bundled digits takes a few seconds.")
        return
    table = pd.DataFrame([{
        "run": r.id, "model": components.display_name(r.arch), "data": services.dataset_label(r.dataset),
        "strategy": labels.strategy_title(r.strategy), "weights": transfer.start_label(r.config), "status": r.status,
        "epochs": r.config["epochs"], "best val acc": r.best_val_acc, "test acc": r.test_accuracy,
        "time (s)": r.elapsed,
    } for r in runs])
    for column in ("best val acc", "test acc", "time (s)"):  # a figure not there yet is blank, never "None"
        table[column] = pd.to_numeric(table[column], errors="coerce")
    st.dataframe(table, hide_index=True, column_config={
        "best val acc": st.column_config.NumberColumn(format="%.4f"),
        "test acc": st.column_config.NumberColumn(format="%.4f"),
        "time (s)": st.column_config.NumberColumn(format="%.1f")})
    export_view.history_button()
    for text in dict.fromkeys(note(r.config) for r in runs if r.config):
        random_weights_warning(text)
    # While a run trains, the overlay waits to be asked for: its chart costs each opening tab ~0.8 s of CPU,
    # taken from the run where the browser shares the machine (benchmarks/watching.py).
    training = any(r.is_active for r in runs)
    named = {r.id: run_label(r) for r in runs}
    chosen = st.multiselect("Overlay validation accuracy of", [r.id for r in runs], key="overlay",
                            format_func=lambda run_id: named.get(run_id, run_id),
                            default=[] if training else [r.id for r in runs[:3] if r.best_val_acc is not None],
                            placeholder="choose runs to compare" if training else "choose runs")
    if chosen:
        figure, last = go.Figure(), 1
        for run_id in chosen:
            epochs = store.metrics(run_id, "epoch")
            figure.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["val_acc"] for e in epochs],
                                        name=widgets.chart_literal(named[run_id]), mode="lines+markers"))
            last = max([last, *(int(e["epoch"]) for e in epochs)])
        figure.update_layout(yaxis_title="validation accuracy", margin=dict(t=20), legend=dict(orientation="h", y=-0.3))
        figure.update_xaxes(axes.plotly_epochs(last))
        st.plotly_chart(presenter.figure(figure, height=340),
                        config=chart_downloads.config(), width="stretch", key="overlay-chart")
    st.selectbox("Open a run", [None, *[r.id for r in runs]], key="open-run", on_change=_open_run,
                 format_func=lambda run_id: "choose a run…" if run_id is None else named.get(run_id, run_id))


def run_label(run: RunRecord) -> str:
    """A run as a list names it: "LeNet-5 on Digits · 20261204-185556-d5d06c" (the id tells two runs apart)."""
    how = f" · {labels.strategy_title(run.strategy).lower()}" if run.strategy else ""
    return f"{components.display_name(run.arch)} on {services.dataset_label(run.dataset)}{how} · {run.id}"


def _open_run() -> None:
    """Follow the run chosen in the history (and put it in the URL)."""
    run_id = st.session_state.get("open-run")
    if run_id:
        st.session_state["run"] = run_id
        widgets.run_url(run_id)
