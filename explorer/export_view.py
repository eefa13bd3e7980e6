"""The exports of the Training page: a finished run as ONNX, a ``torch.export`` program and "as code", and the run
history as CSV.

Each is made when its button is pressed (loading the checkpoint and exporting VGG-16 takes seconds and
hundreds of MB), verified by reloading it (core.export), and kept in the session for the run on screen only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from core import checkpoints, export, export_code
from core.errors import ExplorerError
from core.runs import RunRecord
from explorer import services, widgets

_PREFIX = "export-made-"


@dataclass(frozen=True)
class Made:
    """A file ready to download, or why it could not be made."""

    data: bytes = b""
    file_name: str = ""
    mime: str = "application/octet-stream"
    check: str = ""  # how it was verified, in words
    problem: str = ""
    note: str = ""  # what a user must know of it (the best checkpoint damaged: the last one was exported)


def _stem(sidecar: dict[str, Any]) -> str:
    """The file name stem of a checkpoint's downloads (the same as the checkpoint's own download)."""
    return f"{sidecar.get('run_id')}-{sidecar.get('arch')}-{sidecar.get('which')}"


def make(run_id: str, kind: str) -> Made:
    """The run's preferred checkpoint (best, else last) exported as ``kind``: "onnx", "pt2" or "code"."""
    try:
        model, sidecar, note = checkpoints.load_preferred(services.run_store().checkpoint_dir(run_id))
        note = services.public_text(note)
        stem = _stem(sidecar)
        if kind == "code":
            code = export_code.as_code(model, sidecar, f"{stem}.safetensors")
            return Made(code.encode(), f"{stem}.py", "text/x-python",
                        f"Run it beside {stem}.safetensors (the checkpoint above) with --check: it rebuilds the "
                        "model, loads the weights and compares its outputs with the run's.", note=note)
        made = export.export(model, sidecar, "onnx" if kind == "onnx" else "pt2")
    except ExplorerError as error:
        return Made(problem=services.public_text(str(error)))
    how = "onnxruntime" if kind == "onnx" else "torch.export.load"
    return Made(made.data, f"{stem}{made.suffix}", check=(
        f"Checked: reloaded with {how}, its outputs on a sample batch of {export.SAMPLE_BATCH} differ from the "
        f"model's by at most {made.max_difference:.2g} (tolerance {export.describe(made.tolerance)})."), note=note)


_KINDS = {  # kind: (button label, download label, help)
    "onnx": ("Export as ONNX", "Download ONNX", "For onnxruntime and other runtimes; a dynamic batch dimension."),
    "pt2": ("Export as .pt2", "Download .pt2", "A torch.export program: torch.export.load(file).module() runs it."),
    "code": ("Export as code", "Download .py", "One Python file: the model's source, a loader for the checkpoint "
                                               "and the run's training config."),
}


def panel(run: RunRecord) -> None:
    """Buttons that export the run's checkpoint, and each file made, with how it was checked."""
    run_id = run.id
    folder = services.run_store().checkpoint_dir(run_id)
    if not any(checkpoints.exists(folder, which) for which in ("best", "last")):
        return
    for key in [k for k in st.session_state if str(k).startswith(_PREFIX) and not str(k).endswith(f"-{run_id}")]:
        del st.session_state[key]  # exports of another run: each can hold hundreds of MB
    st.markdown("**Export the model** (its best checkpoint, else its last)")
    for column, (kind, (label, download, help_text)) in zip(st.columns(len(_KINDS)), _KINDS.items(), strict=True):
        key = f"{_PREFIX}{kind}-{run_id}"
        if column.button(label, key=f"export-{kind}-{run_id}", help=help_text):
            with column, st.spinner("Exporting and checking…"):
                st.session_state[key] = make(run_id, kind)
        made: Made | None = st.session_state.get(key)
        if made is None:
            continue
        if made.problem:
            column.error(widgets.literal(made.problem), icon=":material/error:")
            continue
        if made.note:
            column.warning(widgets.literal(made.note), icon=":material/warning:")
        column.download_button(download, made.data, file_name=made.file_name, mime=made.mime, on_click="ignore",
                               key=f"export-download-{kind}-{run_id}", icon=":material/download:")
        column.caption(widgets.literal(made.check))


FINAL = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")  # the last epoch's figures, as the store keeps them


def history_table(runs: list[RunRecord], last_epoch: Callable[[str], dict[str, Any]]) -> pd.DataFrame:
    """One row per run: what it is, its final metrics (the last epoch's, the best validation accuracy, the test
    figures) and every hyperparameter of its config (columns ``config.NAME``)."""
    rows = []
    for run in runs:
        final = last_epoch(run.id)
        test = run.test or {}
        rows.append({"run": run.id, "model": run.arch, "data": run.dataset, "status": run.status,
                     "epochs_done": final.get("epoch"), **{f"final_{name}": final.get(name) for name in FINAL},
                     "best_val_acc": run.best_val_acc, "test_acc": test.get("accuracy"),
                     "test_loss": test.get("loss"), "time_s": run.elapsed,
                     **{f"config.{key}": value for key, value in run.config.items()}})
    return pd.DataFrame(rows)


def history_csv() -> bytes:
    """The run history with hyperparameters and final metrics as CSV (made when its button is pressed)."""
    store = services.run_store()

    def last_epoch(run_id: str) -> dict[str, Any]:
        epochs = store.metrics(run_id, "epoch")
        return epochs[-1] if epochs else {}

    return history_table(store.runs(), last_epoch).to_csv(index=False).encode()


def history_button() -> None:
    """Download the run history as CSV: each run's hyperparameters and final metrics."""
    st.download_button("Download the history (CSV: hyperparameters and final metrics)", history_csv,
                       file_name="runs.csv", mime="text/csv", on_click="ignore", key="history-csv",
                       icon=":material/download:")
