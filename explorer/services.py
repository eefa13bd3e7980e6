"""Services: the server's shared resources, their locks and its file policy.

Plain functions over core that pages and widgets call. They render nothing and raise core's typed
``ExplorerError`` for anything that can fail; widgets turn those into messages. What is cached here
(``st.cache_resource``) is shared by every session and thread, so each such object has one owner here
and every use of it that is not thread-safe happens under that owner's lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
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
    explain,
    fidelity,
    imaging,
    latency,
    models,
    presets,
    structure,
    training,
    transfer,
    weights,
)
from core.errors import ExplorerError
from core.jobs import JobManager
from core.runs import RunStore, state_dir

# What pages may name without importing core (they reach core only through explorer/).
model_names = models.names
model_spec = models.spec
input_range = models.input_size_range
ModelSummary = analysis.ModelSummary
TrainConfig = training.TrainConfig
TRAINING_PRESETS = training.PRESETS
OPTIMIZERS = training.OPTIMIZERS
SCHEDULES = training.SCHEDULES
training_preset = training.preset
IN_MEMORY_DATASETS = data.IN_MEMORY
STRATEGIES = transfer.STRATEGIES
IMAGE_EXTENSIONS = imaging.EXTENSIONS
names_with_weights = weights.names_with_weights
Classifier = classifiers.Classifier
Choice = classifiers.Choice


# Device ------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    """The device this server computes on (CUDA, then MPS, then CPU); shared by all sessions."""
    return devices.pick_device()


def device_name() -> str:
    """Human-readable name of :func:`device`."""
    return devices.describe(device())


def available_devices() -> list[str]:
    """Device types usable here, best first."""
    return devices.available()


# Architectures -----------------------------------------------------------------------------------


def summary(name: str, input_size: int | None = None, num_classes: int | None = None,
            in_channels: int | None = None) -> analysis.ModelSummary:
    """The layer analysis (cached in core)."""
    return analysis.summarize(name, input_size, num_classes, in_channels)


def fidelity_rows(name: str) -> list[fidelity.FidelityRow]:
    """The course notes' figures beside the live ones."""
    return fidelity.compare(name)


def topology(name: str, opened: tuple[str, ...] = ()) -> structure.Topology:
    """The model's dataflow graph (cached in core), with the blocks in ``opened`` drawn layer by layer."""
    return structure.topology(name, frozenset(opened))


def topology_dot(graph: structure.Topology, font_size: int = 11) -> str:
    """Graphviz DOT of a topology."""
    return structure.topology_dot(graph, font_size)


def model_source(name: str) -> str:
    """Source code of the core module defining the model."""
    return structure.source(name)


def traits(name: str) -> structure.Traits:
    """Kernel sizes, skip connections, normalisation, dropout."""
    return structure.traits(name)


@st.cache_data(show_spinner=False, max_entries=256)
def measure_latency(name: str, batch_size: int, device_type: str) -> dict[str, Any]:
    """Forward latency of ``name`` at ``batch_size`` on ``device_type``; cached per server."""
    result = latency.measure(name, batch_size, torch.device(device_type), repeats=3, warmup=1)
    return {"model": name, "batch": batch_size, "device": device_type,
            "median ms": round(result.median_ms, 2), "images/s": round(result.images_per_second, 1)}


# Training ----------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The one job manager of this server, shared by every browser session and tab."""
    store = RunStore()
    store.mark_interrupted()  # runs a previous server left active can no longer finish
    return JobManager(store)


def run_store() -> RunStore:
    """The run store the job manager writes to."""
    return job_manager().store


def submit(config: training.TrainConfig) -> str:
    """Queue a training run; its id."""
    return job_manager().submit(config)


def dataset_on_disk(name: str) -> bool:
    """True if the data set can be loaded without a download."""
    try:
        data.load(name, download=False)
        return True
    except ExplorerError:
        return False


def load_dataset(name: str) -> data.InMemoryData | data.FolderData:
    """A data set by name (cached in core)."""
    return data.load(name)


def test_images(dataset: str, indices: list[int]) -> list[tuple[Any, int]]:
    """(image as an H × W or H × W × 3 uint8 array, true label) of test-split images, for a grid."""
    test = data.load(dataset).test
    return [(test.image(i).permute(1, 2, 0).squeeze(-1).numpy(), int(test.labels[i])) for i in indices]


# Transfer learning: the file policy ---------------------------------------------------------------


def folders_root() -> Path:
    """The only place folder paths may point into (``$CNN_EXPLORER_FOLDERS``, else ``<state>/folders``)."""
    root = Path(os.environ.get("CNN_EXPLORER_FOLDERS", state_dir() / "folders")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def folder_dataset(path_text: str) -> str:
    """``folder:PATH`` for a folder under :func:`folders_root`, checked to hold an image data set."""
    root = folders_root()
    path = (root / path_text).resolve()
    if not path.is_relative_to(root):
        raise ExplorerError(f"Folders must be inside {root}.")
    data.image_folder(path)
    return data.FOLDER_PREFIX + str(path)


@dataclasses.dataclass(frozen=True)
class ExtractedZip:
    """An uploaded zip on disk: its data-set name and how many members were skipped."""

    dataset: str
    skipped: int


def zip_dataset(payload: bytes) -> ExtractedZip:
    """Extract an uploaded zip safely (once per content) and check its class folders."""
    digest = hashlib.sha1(payload).hexdigest()[:16]
    target = state_dir() / "uploads" / digest
    skipped = 0
    if not target.exists():
        partial = target.with_name(digest + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        extracted = archives.extract_zip(io.BytesIO(payload), partial)
        partial.replace(target)
        skipped = extracted.skipped
    root = archives.class_root(target)
    data.image_folder(root)
    return ExtractedZip(data.FOLDER_PREFIX + str(root), skipped)


def weights_status(name: str) -> tuple[bool, str]:
    """(cached?, the file expected) for a model's ImageNet weights."""
    return weights.is_cached(name), str(weights.expected_file(name))


def install_weights(name: str, file_name: str, payload: bytes) -> Path:
    """Check an uploaded weights file against the architecture and put it in the cache; where it went."""
    suffix = Path(file_name).suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt"):
        raise weights.WeightsError("Weights must be a .safetensors file, or a .pth of plain tensors.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(payload)
        return weights.install(name, path)


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
                    lr: float, batch_size: int, augment: bool) -> training.TrainConfig:
    """The notes' recipe (Adam, no weight decay) for a transfer run, validated."""
    return training.TrainConfig(arch=arch, dataset=dataset, strategy=strategy, pretrained=pretrained,
                              unfreeze_last=unfreeze_last, epochs=epochs, lr=lr, batch_size=batch_size,
                              optimizer="adam", weight_decay=0.0, augment=augment).validate()


def with_strategy(config: training.TrainConfig, strategy: str) -> training.TrainConfig:
    """The same run with another strategy and that strategy's learning rate from the notes."""
    return dataclasses.replace(config, strategy=strategy, lr=transfer.STRATEGIES[strategy])


def health(dataset: data.InMemoryData | data.FolderData) -> data.Health:
    """Class balance, image sizes and problems of a data set."""
    return data.health(dataset)


def augmentation_preview(images: torch.Tensor, flip: bool, seed: int = 0) -> torch.Tensor:
    """The training augmentation applied to ``images``."""
    return training.augmentation_preview(images, flip=flip, seed=seed)


def is_preset_downloaded(name: str) -> bool:
    """True if a transfer preset is already on this machine."""
    return presets.is_downloaded(name)


def fetch_preset(name: str, report: Any = None) -> str:
    """A transfer preset's data-set name, downloading it first if needed (``report(done, total)``)."""
    return presets.fetch(name, report)


TRANSFER_PRESETS = presets.PRESETS


# Classify: shared models and their locks ----------------------------------------------------------

SAMPLES = {"cat (Chelsea)": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket"}


def classifier_choices() -> list[classifiers.Choice]:
    """Classifiers available now (cached ImageNet weights, finished runs)."""
    return classifiers.choices(run_store())


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def classifier(key: str) -> classifiers.Classifier:
    """A loaded classifier on the server's device, shared by all sessions (inference only; never trained here)."""
    return classifiers.load(key, run_store(), device())


_MODEL_LOCK = threading.Lock()  # every forward pass on a shared model: hooks and grad mode are per model


@contextmanager
def _using_shared_model():
    with _MODEL_LOCK:
        yield


def read_image(model: classifiers.Classifier, name: str, payload: bytes, convention: bool = True) -> imaging.Prepared:
    """Decode an upload and preprocess it the way ``model`` expects (MNIST-style for digit models)."""
    image, steps = imaging.open_image(payload, name)
    if model.digits:
        prepared = imaging.digit_like_mnist(image, model.mean, model.std, convention)
    else:
        prepared = imaging.prepare(image, model.resize, model.crop, model.mean, model.std, model.channels)
    prepared.steps[:0] = steps
    return prepared


def predict(model: classifiers.Classifier, x: torch.Tensor) -> explain.Prediction:
    """Top-k classes of a shared model for one preprocessed image."""
    with _using_shared_model():
        return explain.predict(model.model, x, model.classes)


def grad_cam(model: classifiers.Classifier, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM of the top class on a shared model."""
    with _using_shared_model():
        return explain.grad_cam(model.model, x, layer)


def feature_maps(model: classifiers.Classifier, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Feature maps of a layer of a shared model."""
    with _using_shared_model():
        return explain.feature_maps(model.model, x, layer)


def conv_layers(model: classifiers.Classifier) -> list[str]:
    """Names of the model's convolutions, in order."""
    return explain.conv_layers(model.model)


COLORMAPS = explain.COLORMAPS
colorize = explain.colorize
plotly_colorscale = explain.plotly_colorscale


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, colormap: str = "turbo") -> torch.Tensor:
    """A heat map in a perceptual colour map blended over an image at opacity ``alpha``."""
    return explain.overlay(image, heat, alpha, colormap)


def stages(model: classifiers.Classifier, x: torch.Tensor, shown: int = 6) -> list[explain.Stage]:
    """One image followed through a shared model stage by stage."""
    with _using_shared_model():
        return explain.stages(model.model, x, shown)


def first_conv(model: classifiers.Classifier, x: torch.Tensor) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The first convolution of a shared model on one image: its name, input and output."""
    with _using_shared_model():
        return explain.first_conv(model.model, x)


def first_conv_at(model: classifiers.Classifier, x: torch.Tensor, channel: int, row: int, col: int) -> explain.ConvAt:
    """The first convolution of a shared model at one position, recomputed by hand."""
    with _using_shared_model():
        return explain.first_conv_at(model.model, x, channel, row, col)


@st.cache_data(show_spinner=False)
def default_cam_layer(key: str) -> str:
    """The last convolution with a spatial map of classifier ``key`` (found once: it depends only on the model
    and its input size, not on the image)."""
    model = classifier(key)
    with _using_shared_model():
        return explain.default_cam_layer(model.model, torch.zeros(1, model.channels, model.crop, model.crop))


@st.cache_data(show_spinner=False)
def sample_photo(name: str) -> bytes:
    """A bundled scikit-image photo as PNG bytes (goes through the same checks as an upload)."""
    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(getattr(skimage.data, SAMPLES[name])()).save(buffer, format="PNG")
    return buffer.getvalue()
