"""Widgets: small pieces of UI that render one thing and own their session-state keys.

The edge where core's typed errors become messages on the page (never a traceback), and where the
per-session choices that a slide can link to (the model, the followed run) live in the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from core.errors import ExplorerError
from explorer import services

MODEL_PARAM = "model"
RUN_PARAM = "run"
GROUP_PARAM = "group"
T = TypeVar("T")


def show_error(error: Exception) -> None:
    """A clear message on the page for a core error; never a traceback."""
    st.error(str(error), icon=":material/error:")


def attempt(action: Callable[..., T], *args: object, **kwargs: object) -> T | None:
    """``action(*args, **kwargs)``, or None after showing why it could not be done."""
    try:
        return action(*args, **kwargs)
    except ExplorerError as error:
        show_error(error)
        return None


def store_ok(key: str = "store") -> bool:
    """True if the run database can be read; else its message, with a button that rebuilds it, and False."""
    rebuilt = st.session_state.pop(f"{key}-rebuilt", None)
    if rebuilt is not None:
        st.success(f"Run database rebuilt: {rebuilt} runs recovered from their checkpoints.",
                   icon=":material/check_circle:")
    try:
        services.check_store()
        return True
    except ExplorerError as error:
        show_error(error)
        if not isinstance(error, services.StoreUnreadable):
            return False
    if st.button("Rebuild the run database from the checkpoints", key=f"{key}-rebuild", icon=":material/build:"):
        count = attempt(services.rebuild_store)
        if count is not None:
            st.session_state[f"{key}-rebuilt"] = count
            st.rerun()
    return False


def url_model(default: str) -> str:
    """The model named in the URL (``?model=``), or ``default`` with a warning if it is unknown."""
    requested = st.query_params.get(MODEL_PARAM)
    if requested is None:
        return default
    try:
        return services.model_spec(requested).name
    except ExplorerError as error:
        st.warning(f"The link asks for a model this app does not have. {error} Showing {default}.")
        return default


def set_url_model(name: str) -> None:
    """Write the selected model into the URL, so the page can be linked from a slide."""
    st.query_params[MODEL_PARAM] = name


def run_url(run_id: str | None) -> None:
    """Keep the followed run in the URL, so a refresh or a second tab reattaches to it."""
    if run_id:
        st.query_params[RUN_PARAM] = run_id
    elif RUN_PARAM in st.query_params:
        del st.query_params[RUN_PARAM]


def group_url(group: str | None) -> None:
    """Keep the followed group of runs (a strategy race) in the URL, so a refresh reattaches to it."""
    if group:
        st.query_params[GROUP_PARAM] = group
    elif GROUP_PARAM in st.query_params:
        del st.query_params[GROUP_PARAM]


def url_group() -> str | None:
    """The group of runs named in the URL (checked by whoever shows it)."""
    return st.query_params.get(GROUP_PARAM) or None


def url_run() -> str | None:
    """The run named in the URL, if it exists."""
    run_id = st.query_params.get(RUN_PARAM)
    if not run_id:
        return None
    try:
        services.run_store().run(run_id)
        return run_id
    except ExplorerError:
        st.warning(f"The link names run {run_id!r}, which is not in this app's run store.")
        return None


def zip_dataset(name: str, payload: bytes) -> str | None:
    """An uploaded zip as a data-set name, saying what was skipped; None after saying why it was refused."""
    extracted = attempt(services.zip_dataset, payload)
    if extracted is None:
        return None
    if extracted.skipped:
        st.caption(f"{name}: {extracted.skipped} hidden, __MACOSX or non-image files were skipped.")
    return extracted.dataset


def install_weights(name: str, file_name: str, payload: bytes) -> bool:
    """Check and install an uploaded weights file; say how it went."""
    installed = attempt(services.install_weights, name, file_name, payload)
    if installed is None:
        return False
    st.success(f"Checked and installed as {installed}.")
    return True


def preset_picker() -> str | None:
    """Choose a downloadable preset; download it (with a progress bar) on request; its data-set name or None."""
    presets = services.TRANSFER_PRESETS
    name = st.selectbox("Preset", list(presets), format_func=lambda n: presets[n].title, key="transfer-preset")
    st.caption(presets[name].description)
    if services.is_preset_downloaded(name):
        return attempt(services.fetch_preset, name)
    if not st.button(f"Download {presets[name].title}", key=f"download-{name}"):
        st.caption("Not on this machine yet: it is downloaded once (internet needed), then works offline.")
        return None
    bar = st.progress(0.0, text="Downloading…")

    def report(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=f"Downloading… {done / 2**20:,.1f} MiB")

    try:
        return attempt(services.fetch_preset, name, report)
    finally:
        bar.empty()
