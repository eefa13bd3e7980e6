"""The ImageNet weights panel, on Classify and on Transfer: get a model's official weights in one click.

Every model's official file with its size and whether it is on this machine; online, a download with a
progress bar; offline, the exact file name and folder to put it in, and an upload that takes full-size files.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import components, services, widgets


def overview(key: str = "weights") -> None:
    """One row per model with ImageNet weights: its official file, size, and whether it is here."""
    rows = services.weights_overview()
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=components.table_height(len(rows)),
                 key=f"{key}-table",
                 column_config={
                     "file": st.column_config.TextColumn(help="The official file's name: offline, put it in the "
                                                                  "folder named below"),
                     "size MB": st.column_config.NumberColumn(format="%.1f", help="The official file's size"),
                     "here": st.column_config.TextColumn(help="Whether this machine has the weights: the official "
                                                              "file, or how they were installed"),
                     "top-1 %": st.column_config.NumberColumn(format="%.1f",
                                                              help="ImageNet top-1 accuracy of these weights"),
                     "from": st.column_config.TextColumn(help="Who publishes the file"),
                 })


def provenance(name: str) -> str:
    """Where the weights of ``name`` on this machine came from ("" if none); the app's own words and a hash,
    never a name a user chose."""
    found = services.installed_weights(name)
    return found.provenance if found is not None else ""


def panel(name: str, key: str = "weights") -> bool:
    """The state of ``name``'s ImageNet weights and, when missing, how to get them; True once just installed."""
    info = services.weights_info(name)
    if info is None:
        st.caption(f"{components.display_name(name)} has no ImageNet weights in this app.")
        return False
    found = services.installed_weights(name)
    title = components.display_name(name)
    if found is not None:
        icon = ":material/check_circle:" if found.official else ":material/upload_file:"
        st.success(f"{title}: ImageNet weights on this machine ({provenance(name)}).", icon=icon)
        return False
    st.warning(f"The ImageNet weights of {title} are not on this machine: `{info.file_name}`, "
               f"{info.size_mb:,.1f} MB, from {info.source}.", icon=":material/download:")
    online, offline = st.columns(2)
    with online:
        st.markdown("**Online**: one click downloads the official file, checks it and keeps it for every session.")
        if st.button(f"Download {title} ({info.size_mb:,.0f} MB)", type="primary", key=f"{key}-download-{name}"):
            bar = st.progress(0.0, text="Connecting…")

            def report(done: int, total: int | None) -> None:
                share = min(done / total, 1.0) if total else 0.0
                of = f" of {total / 2**20:,.1f}" if total else ""
                bar.progress(share, text=f"Downloading {info.file_name}: {done / 2**20:,.1f}{of} MiB")

            try:
                installed = widgets.attempt(services.download_weights, name, report)
            finally:
                bar.empty()
            if installed is not None:
                st.toast(f"{title}: ImageNet weights downloaded and checked.", icon=":material/check_circle:")
                return True
    with offline:
        st.markdown(f"**Offline**: put the file in the torch hub cache, as `{info.file_name}` in "
                    f"`{services.weights_folder()}`, then reload the page. It comes from:")
        st.code(info.url, language="text", wrap_lines=True)
        upload = st.file_uploader(
            "…or upload it here (.pth or .safetensors)", type=[s.lstrip(".") for s in services.WEIGHTS_SUFFIXES],
            key=f"{key}-upload-{name}", max_upload_size=services.WEIGHTS_UPLOAD_MB,
            help=f"Up to {services.WEIGHTS_UPLOAD_MB} MB, enough for VGG-19's official file. The file is checked "
                 "against the architecture; unless it is byte for byte the official file, it is kept under its "
                 "own name and shown as supplied by upload.")
        if upload is not None and widgets.within_limit(upload, services.WEIGHTS_UPLOAD_MB):
            installed = widgets.attempt(services.install_weights, name, upload.name, upload.getvalue())
            if installed is not None:
                st.toast(f"{title}: {installed.provenance}.", icon=":material/check_circle:")
                return True
    return False


def chooser(key: str = "weights", default: str = "resnet18") -> bool:
    """Pick any model with ImageNet weights and get them (Classify's panel); True once something was installed."""
    overview(key)
    names = services.names_with_weights()
    name = st.selectbox("Get the ImageNet weights of", names, index=names.index(default) if default in names else 0,
                        format_func=components.display_name, key=f"{key}-model",
                        help="ResNet-18 is the smallest (45 MB) and quickest on a CPU; Xception is the most accurate.")
    return panel(name, key) if name is not None else False  # None only without options
