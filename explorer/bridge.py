"""The one bridge between Streamlit state and core.

Pages never call core directly for anything that can fail or is slow: they call
these functions, which turn core's typed errors into messages on the page and
keep per-session choices (the selected model) in ``st.session_state`` and the URL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from core import (
    analysis,
    archives,
    classifiers,
    data,
    devices,
    engine,
    explain,
    fidelity,
    latency,
    models,
    presets,
    structure,
    transfer,
    weights,
)
from core.errors import ExplorerError
from core.jobs import JobManager
from core.runs import RunStore, state_dir

MODEL_PARAM = "model"
RUN_PARAM = "run"


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    """The device this server computes on (CUDA, then MPS, then CPU); shared by all sessions."""
    return devices.pick_device()


def device_name() -> str:
    """Human-readable name of :func:`device`."""
    return devices.describe(device())


def show_error(error: Exception) -> None:
    """A clear message on the page for a core error; never a traceback."""
    st.error(str(error), icon=":material/error:")


def summary(name: str, input_size: int | None = None, num_classes: int | None = None,
            in_channels: int | None = None) -> analysis.ModelSummary | None:
    """The layer analysis (cached in core), or None after showing why it cannot be made."""
    try:
        return analysis.summarize(name, input_size, num_classes, in_channels)
    except ExplorerError as error:
        show_error(error)
        return None


def fidelity_rows(name: str) -> list[fidelity.FidelityRow]:
    """The course notes' figures beside the live ones."""
    return fidelity.compare(name)


def blocks_diagram(name: str) -> str:
    """Graphviz DOT of the model's blocks."""
    return structure.diagram(name)


def model_source(name: str) -> str:
    """Source code of the core module defining the model."""
    return structure.source(name)


def traits(name: str) -> structure.Traits:
    """Kernel sizes, skip connections, normalisation, dropout."""
    return structure.traits(name)


def input_range(name: str) -> tuple[int, int | None]:
    """Smallest and largest accepted input size."""
    return models.input_size_range(name)


def url_model(default: str) -> str:
    """The model named in the URL (``?model=``), or ``default`` with a warning if it is unknown."""
    requested = st.query_params.get(MODEL_PARAM)
    if requested is None:
        return default
    try:
        return models.spec(requested).name
    except ExplorerError as error:
        st.warning(f"The link asks for a model this app does not have. {error} Showing {default}.")
        return default


def set_url_model(name: str) -> None:
    """Write the selected model into the URL, so the page can be linked from a slide."""
    st.query_params[MODEL_PARAM] = name


@st.cache_data(show_spinner=False, max_entries=256)
def measure_latency(name: str, batch_size: int, device_type: str) -> dict[str, Any]:
    """Forward latency of ``name`` at ``batch_size`` on ``device_type``; cached per server."""
    result = latency.measure(name, batch_size, torch.device(device_type), repeats=3, warmup=1)
    return {"model": name, "batch": batch_size, "device": device_type,
            "median ms": round(result.median_ms, 2), "images/s": round(result.images_per_second, 1)}


# Training ---------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The one job manager of this server, shared by every browser session and tab."""
    store = RunStore()
    store.mark_interrupted()  # runs a previous server left active can no longer finish
    return JobManager(store)


def run_store() -> RunStore:
    """The run store the job manager writes to."""
    return job_manager().store


def submit(config: engine.TrainConfig) -> str | None:
    """Queue a training run; None after showing why the config is invalid."""
    try:
        return job_manager().submit(config)
    except ExplorerError as error:
        show_error(error)
        return None


def dataset_on_disk(name: str) -> bool:
    """True if the data set can be loaded without a download."""
    try:
        data.load(name, download=False)
        return True
    except ExplorerError:
        return False


def test_images(dataset: str, indices: list[int]) -> list[tuple[Any, int]]:
    """(image as an H × W or H × W × 3 uint8 array, true label) of test-split images, for a grid."""
    test = data.load(dataset).test
    return [(test.image(i).permute(1, 2, 0).squeeze(-1).numpy(), int(test.labels[i])) for i in indices]


def available_devices() -> list[str]:
    """Device types usable here, best first."""
    return devices.available()


def run_url(run_id: str | None) -> None:
    """Keep the followed run in the URL, so a refresh or a second tab reattaches to it."""
    if run_id:
        st.query_params[RUN_PARAM] = run_id
    elif RUN_PARAM in st.query_params:
        del st.query_params[RUN_PARAM]


def url_run() -> str | None:
    """The run named in the URL, if it exists."""
    run_id = st.query_params.get(RUN_PARAM)
    if not run_id:
        return None
    try:
        run_store().run(run_id)
        return run_id
    except ExplorerError:
        st.warning(f"The link names run {run_id!r}, which is not in this app's run store.")
        return None


# Transfer learning ------------------------------------------------------------------------------


def folders_root() -> Path:
    """The only place folder paths may point into (``$CNN_EXPLORER_FOLDERS``, else ``<state>/folders``)."""
    root = Path(os.environ.get("CNN_EXPLORER_FOLDERS", state_dir() / "folders")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def folder_dataset(path_text: str) -> str | None:
    """``folder:PATH`` for a folder under :func:`folders_root`, or None after saying why not."""
    root = folders_root()
    path = (root / path_text).resolve()
    if not path.is_relative_to(root):
        st.error(f"Folders must be inside {root}.")
        return None
    try:
        data.image_folder(path)
    except ExplorerError as error:
        show_error(error)
        return None
    return data.FOLDER_PREFIX + str(path)


def zip_dataset(name: str, payload: bytes) -> str | None:
    """Extract an uploaded zip safely (once per content); ``folder:PATH`` of its classes, or None with a message."""
    digest = hashlib.sha1(payload).hexdigest()[:16]
    target = state_dir() / "uploads" / digest
    try:
        if not target.exists():
            partial = target.with_name(digest + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            extracted = archives.extract_zip(io.BytesIO(payload), partial)
            partial.replace(target)
            if extracted.skipped:
                st.caption(f"{name}: {extracted.skipped} hidden, __MACOSX or non-image files were skipped.")
        root = archives.class_root(target)
        data.image_folder(root)
        return data.FOLDER_PREFIX + str(root)
    except ExplorerError as error:
        show_error(error)
        return None


def load_dataset(name: str) -> data.InMemoryData | data.FolderData | None:
    """A data set by name (cached in core), or None after showing why it cannot be loaded."""
    try:
        return data.load(name)
    except ExplorerError as error:
        show_error(error)
        return None


def weights_status(name: str) -> tuple[bool, str]:
    """(cached?, the file expected) for a model's ImageNet weights."""
    return weights.is_cached(name), str(weights.expected_file(name))


def install_weights(name: str, file_name: str, payload: bytes) -> bool:
    """Check an uploaded weights file against the architecture and put it in the cache; say how it went."""
    suffix = Path(file_name).suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt"):
        st.error("Weights must be a .safetensors file, or a .pth of plain tensors.")
        return False
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(payload)
        try:
            installed = weights.install(name, path)
        except ExplorerError as error:
            show_error(error)
            return False
    st.success(f"Checked and installed as {installed}.")
    return True


@st.cache_data(show_spinner=False)
def backbone_blocks(arch: str) -> list[str]:
    """The backbone's blocks with weights, in order (what partial fine-tuning unfreezes from the end)."""
    with torch.device("meta"):
        backbone = models.build(arch)
    return transfer.feature_blocks(backbone, models.spec(arch).input_size)


@st.cache_data(show_spinner=False)
def trainable_counts(arch: str, num_classes: int, strategy: str, unfreeze_last: int) -> tuple[int, int]:
    """(trainable, total) parameters of the transfer model for a strategy, counted on the meta device."""
    with torch.device("meta"):
        model = transfer.build(arch, num_classes)
    trainable = transfer.apply_strategy(model, strategy, unfreeze_last, models.spec(arch).input_size)
    return trainable, sum(p.numel() for p in model.parameters())


def transfer_config(arch: str, dataset: str, strategy: str, pretrained: bool, unfreeze_last: int, epochs: int,
                    lr: float, batch_size: int, augment: bool) -> engine.TrainConfig | None:
    """The notes' recipe (Adam, no weight decay) for a transfer run; None after saying what is wrong."""
    try:
        return engine.TrainConfig(arch=arch, dataset=dataset, strategy=strategy, pretrained=pretrained,
                                  unfreeze_last=unfreeze_last, epochs=epochs, lr=lr, batch_size=batch_size,
                                  optimizer="adam", weight_decay=0.0, augment=augment).validate()
    except ExplorerError as error:
        show_error(error)
        return None


def with_strategy(config: engine.TrainConfig, strategy: str) -> engine.TrainConfig:
    """The same run with another strategy and that strategy's learning rate from the notes."""
    return dataclasses.replace(config, strategy=strategy, lr=transfer.STRATEGIES[strategy])


# Classify ---------------------------------------------------------------------------------------

SAMPLES = {"cat (Chelsea)": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket"}


def classifier_choices() -> list[classifiers.Choice]:
    """Classifiers available now (cached ImageNet weights, finished runs)."""
    return classifiers.choices(run_store())


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def classifier(key: str) -> classifiers.Classifier:
    """A loaded classifier on the server's device, shared by all sessions (inference only; never trained here)."""
    return classifiers.load(key, run_store(), device())


_EXPLAIN_LOCK = threading.Lock()  # Grad-CAM and feature maps hook shared models: one at a time


def grad_cam(model: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM of the top class on a shared model."""
    with _EXPLAIN_LOCK:
        return explain.grad_cam(model, x, layer)


@st.cache_data(show_spinner=False)
def default_cam_layer(key: str) -> str:
    """The last convolution with a spatial map of classifier ``key`` (found once: it depends only on the model
    and its input size, not on the image)."""
    model = classifier(key)
    with _EXPLAIN_LOCK:
        return explain.default_cam_layer(model.model, torch.zeros(1, model.channels, model.crop, model.crop))


def feature_maps(model: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Feature maps of a layer of a shared model."""
    with _EXPLAIN_LOCK:
        return explain.feature_maps(model, x, layer)


@st.cache_data(show_spinner=False)
def sample_photo(name: str) -> bytes:
    """A bundled scikit-image photo as PNG bytes (goes through the same checks as an upload)."""
    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(getattr(skimage.data, SAMPLES[name])()).save(buffer, format="PNG")
    return buffer.getvalue()


def preset_picker() -> str | None:
    """Choose a downloadable preset; download it (with a progress bar) on request; its data-set name or None."""
    name = st.selectbox("Preset", list(presets.PRESETS), format_func=lambda n: presets.PRESETS[n].title,
                        key="transfer-preset")
    st.caption(presets.PRESETS[name].description)
    if presets.is_downloaded(name):
        return presets.fetch(name)
    if not st.button(f"Download {presets.PRESETS[name].title}", key=f"download-{name}"):
        st.caption("Not on this machine yet: it is downloaded once (internet needed), then works offline.")
        return None
    bar = st.progress(0.0, text="Downloading…")

    def report(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=f"Downloading… {done / 2**20:,.1f} MiB")

    try:
        return presets.fetch(name, report)
    except ExplorerError as error:
        show_error(error)
        return None
    finally:
        bar.empty()
