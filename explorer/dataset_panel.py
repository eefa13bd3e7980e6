"""The Training page's word on a downloadable data set, before Start: found (where), or not (where it is looked
for, what is needed), with an uploader for the four official MNIST / Fashion-MNIST files."""

from __future__ import annotations

import streamlit as st

from core.errors import ExplorerError
from explorer import services, upload_budget, widgets


def local_copy(dataset: str) -> None:
    """Say whether ``dataset`` is on this machine and where; offer the official files' upload when it is not."""
    if dataset not in services.LOCAL_DATASETS:
        return
    folder = services.dataset_folder(dataset)
    if services.dataset_on_disk(dataset):
        with st.container(key="train-data-found"):
            st.success(f"{dataset} found in this folder:", icon=":material/check_circle:")
            st.code(str(folder), language=None)
        return
    with st.container(key="train-data-absent"):
        st.info(f"{dataset} is not on this machine. Start will try to download it (internet needed). Offline, "
                "put these files in the folder below, or use the bundled digits data set.",
                icon=":material/cloud_download:")
        st.code(f"{folder}\n\n" + "\n".join(services.dataset_missing(dataset)), language=None)
    if dataset in services.UPLOADABLE_DATASETS:
        _upload(dataset)


def _upload(dataset: str) -> None:
    """The uploader for the four official files; good ones are installed at once, then the page is drawn again."""
    uploads = st.file_uploader("Or upload the four official files (.gz or not)", accept_multiple_files=True,
                               key=f"train-files-{dataset}", max_upload_size=services.IDX_UPLOAD_MB,
                               help="train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                    "t10k-labels-idx1-ubyte: each file is checked before anything is written.")
    if len(uploads or []) > 4:  # each is read into memory: take the four files, not a folder of anything
        st.error("Upload at most the four official files.", icon=":material/error:")
        for upload in uploads or []:
            upload_budget.release(upload)
        return
    files = [upload for upload in uploads or [] if widgets.within_limit(upload, services.IDX_UPLOAD_MB)]
    if not files or len(files) < len(uploads or []):
        return
    done_key = f"train-files-{dataset}-installed"
    batch = sorted((upload.file_id, upload.name) for upload in files)
    if st.session_state.get(done_key) == batch:  # installed already, yet the set is still incomplete
        st.warning("Installed; still missing: " + ", ".join(services.dataset_missing(dataset)),
                   icon=":material/warning:")
        return
    try:
        services.install_dataset_files(dataset, [(upload.name, upload.getvalue()) for upload in files])
    except ExplorerError as error:
        widgets.show_error(error)
        return
    st.session_state[done_key] = batch
    st.rerun()
