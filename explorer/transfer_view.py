"""Components of the Transfer-learning page: data-set health, augmentation preview, strategy race."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import data, labels, transfer
from core.errors import quoted
from explorer import axes, chart_downloads, components, opened_models, services, training_view, widgets

PREVIEW = 8


def _grid(images, captions: list[str] | None = None) -> None:
    columns = st.columns(PREVIEW)
    for i, image in enumerate(images):
        columns[i % PREVIEW].image(image.permute(1, 2, 0).squeeze(-1).numpy(),
                                   caption=widgets.literal(captions[i]) if captions else None, width="stretch")


def health_panel(dataset: data.InMemoryData | data.FolderData) -> None:
    """Images per class and split, image sizes, a sample grid, duplicates across splits."""
    report = services.health(dataset)
    with st.expander(f"Data set health — {len(dataset.classes)} classes, "
                     f"{len(dataset.train) + len(dataset.val) + len(dataset.test):,} images", expanded=True):
        counts = pd.DataFrame([{"class": widgets.chart_literal(name), "split": split, "images": n}
                               for name, splits in report.per_class.items() for split, n in splits.items()])
        left, right = st.columns([2, 1])
        left.plotly_chart(px.bar(counts, x="class", y="images", color="split", barmode="stack", height=280),
                          config=chart_downloads.config(), width="stretch", key="health-counts")
        sizes = sorted(report.sizes.items(), key=lambda item: -item[1])
        right.markdown("**Image sizes**  \n" + "  \n".join(f"{size}: {n:,}" for size, n in sizes[:6])
                       + (f"  \n… and {len(sizes) - 6} more" if len(sizes) > 6 else ""))
        right.markdown(f"**Skipped files:** {report.skipped} (hidden or not images)")
        if report.split:
            st.caption(widgets.literal(report.split))
        if report.rejected:
            st.warning(f"{labels.plural(len(report.rejected), 'image file')} failed the check and are left out of "
                       "every split (training, validation, test and this preview):", icon=":material/warning:")
            st.dataframe(pd.DataFrame(report.rejected, columns=["file", "problem"]), hide_index=True,
                         key="health-rejected")  # cells are plain text: names show as they are
        if report.duplicates:
            st.warning(f"{report.duplicates} validation or test images are identical to training images: "
                       "accuracy on them overstates what the model learned.")
        else:
            st.caption("No validation or test image duplicates a training image.")
        smallest = min(min(splits.values()) for splits in report.per_class.values())
        if smallest < 5:
            st.warning(f"Some class has only {smallest} images in a split: results will be noisy.")
        picks = list(range(min(PREVIEW, len(dataset.train))))
        _grid([dataset.train.image(i) for i in picks],
              [dataset.classes[int(dataset.train.labels[i])] for i in picks])


def augmentation_preview(dataset: data.InMemoryData | data.FolderData) -> None:
    """The first training images as the model will see them with augmentation on."""
    picks = list(range(min(PREVIEW, len(dataset.train))))
    import torch

    originals = torch.stack([dataset.train.image(i) for i in picks])
    seed = st.session_state.get("preview-seed", 0)
    st.markdown("**What the model sees with augmentation** (random shifts and mirror images; new ones each epoch)")
    _grid(services.augmentation_preview(originals, flip=True, seed=seed))
    if st.button("Another draw", key="preview-again"):
        st.session_state["preview-seed"] = seed + 1
        st.rerun()


def race(group: str) -> None:
    """A strategy race (a group of runs on the same split): progress, overlaid curves, accuracy and time per
    epoch; it can be stopped as one. Polls the store while any of its runs is queued or running."""
    runs = widgets.attempt(services.group_runs, group)
    if not runs:
        st.warning(f"The link names a strategy race {widgets.literal(quoted(group))} that is not in this app's run "
                   "store.")
        return
    active = any(run.is_active for run in runs)

    @st.fragment(run_every=1.0 if active else None)
    def panel() -> None:
        runs = widgets.attempt(services.group_runs, group) or []
        running = [run for run in runs if run.is_active]
        st.subheader("Strategy race")
        st.caption(f"Race {widgets.literal(group)}: {len(runs)} runs, {len(running)} still queued or running.")
        if running and st.button("Stop the race", key=f"stop-{group}", icon=":material/stop_circle:"):
            widgets.attempt(services.stop_group, group)
            st.toast("Stopping every run of the race after its current batch; queued ones are cancelled.")
        store = services.run_store()
        figure = go.Figure()
        rows, last = [], 1
        for run in runs:
            epochs = store.metrics(run.id, "epoch")
            name = labels.strategy_title(run.strategy)
            figure.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["val_acc"] for e in epochs],
                                        name=widgets.chart_literal(name), mode="lines+markers"))
            last = max([last, *(int(e["epoch"]) for e in epochs)])
            per_epoch = (epochs[-1]["elapsed"] / len(epochs)) if epochs else None
            rows.append({"strategy": name, "weights": transfer.start_label(run.config), "status": run.status,
                         "epochs": len(epochs), "best val acc": run.best_val_acc, "test acc": run.test_accuracy,
                         "s / epoch": per_epoch, "run": run.id})
        table = pd.DataFrame(rows)
        for figure_name in ("best val acc", "test acc", "s / epoch"):  # not there yet: blank, never "None"
            table[figure_name] = pd.to_numeric(table[figure_name], errors="coerce")
        st.dataframe(table, hide_index=True, column_config={
            "best val acc": st.column_config.NumberColumn(format="%.4f"),
            "test acc": st.column_config.NumberColumn(format="%.4f"),
            "s / epoch": st.column_config.NumberColumn(format="%.2f")})
        for text in dict.fromkeys(training_view.note(run.config) for run in runs):
            training_view.random_weights_warning(text)
        figure.update_layout(yaxis_title="validation accuracy", height=340, margin=dict(t=20))
        figure.update_xaxes(axes.plotly_epochs(last))
        st.plotly_chart(figure, config=chart_downloads.config(), width="stretch", key="race-curves")
        finished = [(run, test) for run in runs if (test := run.test)]
        if finished:
            columns = st.columns(len(finished))
            for column, (run, test) in zip(columns, finished, strict=True):
                title = widgets.chart_literal(labels.strategy_title(run.strategy))
                heatmap = components.confusion_heatmap(test, title, 300, scale=False)
                column.plotly_chart(heatmap,
                                    config=chart_downloads.config(), width="stretch", key=f"race-confusion-{run.id}")
        if active and not running:
            st.rerun()

    panel()


SOURCES = ("Generated shapes (works offline)", "A preset (downloaded once)", "Upload a zip of class folders",
           "A folder on the server")
SHOWN_DATA = "The data set of the runs below"  # a source offered after a refresh of a race or a run


def restore(group: str | None, run_id: str | None) -> str | None:
    """After a refresh (or a link) to a race or a transfer run, the form shows that race's or run's settings and
    data set, not the page's defaults: once per race or run in a session, before the widgets are drawn. Returns
    the data set of what is shown (None: no race or run, or not a transfer one)."""
    shown = group or run_id
    if not shown:
        return None
    memory = st.session_state.get("transfer-restored")
    if memory and memory[0] == shown:
        return memory[1]
    if group:
        runs = widgets.attempt(services.group_runs, group) or []
    else:
        runs = [run] if (run := widgets.attempt(services.run, run_id)) else []
    configs = [run.config for run in runs if run.strategy]
    dataset = configs[0]["dataset"] if configs else None
    remember(shown, dataset)
    if configs:
        _fill_form(configs)
    return dataset


def remember(shown: str, dataset: str | None) -> None:
    """Mark the race or run ``shown`` as restored, or as started in this session (the form is the user's), with
    the data set the page offers as "the data set of the runs below" (None: none)."""
    st.session_state["transfer-restored"] = (shown, dataset)


def _fill_form(configs: list[dict]) -> None:
    """Set the page's widgets to the settings of these runs (a race: one per strategy)."""
    first, state = configs[0], st.session_state
    opened_models.reopen(first["arch"])  # a torchvision CNN: a refreshed page has forgotten the opened models
    if first["arch"] in opened_models.backbones():
        state["transfer-arch"] = first["arch"]
    state["transfer-source"] = SOURCES[0] if first["dataset"] == "shapes" else SHOWN_DATA
    state["transfer-epochs"] = min(max(int(first["epochs"]), 1), 200)
    state["transfer-batch"] = min(max(int(first["batch_size"]), 1), 512)
    state["transfer-augment"] = bool(first["augment"])
    for config in configs:
        state[f"transfer-lr-{config['strategy']}"] = min(max(float(config["lr"]), 1e-7), 1.0)
        if config["strategy"] == "partial" and state.get("transfer-arch") == config["arch"]:
            state["transfer-unfreeze"] = int(config["unfreeze_last"])
    if len(configs) == 1:
        state["transfer-strategy"] = first["strategy"]
