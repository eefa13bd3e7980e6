"""Services: the server's shared resources, their locks and its file policy.

Plain functions over core that pages and widgets call. They render nothing and raise core's typed
``ExplorerError`` for anything that can fail; widgets turn those into messages. What is cached here
(``st.cache_resource``) is shared by every session and thread, so each such object has one owner here
and every use of it that is not thread-safe happens under that owner's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import streamlit as st
import torch

from core import (
    activity,
    analysis,
    archives,
    attributions,
    checkpoints,
    classifiers,
    data,
    devices,
    digit_input,
    executors,
    explain,
    feature_vis,
    fidelity,
    imaging,
    labels,
    local_data,
    models,
    paths,
    presets,
    structure,
    training,
    transfer,
    weights,
)
from core.errors import ExplorerError
from core.runs import RunRecord, RunStore, StoreUnreadableError, new_id, state_dir
from explorer import ray_process, workers

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
short_authors = labels.short_authors  # "He et al." for a table; the full list stays on the model card
names_with_weights = weights.names_with_weights
Classifier = classifiers.Classifier
Choice = classifiers.Choice
StoreUnreadable = StoreUnreadableError
_LOG = logging.getLogger("cnn_explorer")


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


# Training ----------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def supervisor() -> executors.Executor:
    """What trains the queue: local worker processes (explorer/workers.py), or, when chosen, a Ray executor process
    (explorer/ray_process.py runs core/executors.py's driver outside the web server)."""
    if executors.configured_kind(_secret("executor")) == "ray":
        return ray_process.RayProcess(state_dir(), executors.configured_address(_secret("ray_address")))
    return workers.Supervisor(state_dir(), workers.configured_count(_secret("workers")))


def serve_queue() -> None:
    """Make sure the queue is being trained; an ExplorerError says why it cannot be (Ray unreachable, say)."""
    executor = supervisor()
    executor.ensure()
    problem = getattr(executor, "problem", None)
    if problem:
        raise ExplorerError(f"Queued runs wait: {problem}")


@st.cache_resource(show_spinner=False)
def _queue_served_at_start() -> bool:
    """Start the executor if runs wait in the queue; raises (and so is tried again) while the store is unreadable."""
    if run_store().queued():
        supervisor().ensure()
    return True


def serve_queue_at_start() -> None:
    """Once per server process, from the entry script: runs queued before the server (re)started are trained
    without anyone opening their page. A store or executor that cannot be used now is logged and tried again at
    the next script run; the pages that need the store say why."""
    try:
        _queue_served_at_start()
    except (ExplorerError, OSError) as error:  # OSError: no worker process can be started now
        _LOG.warning("queued runs wait: %s", error)


def _secret(name: str) -> object:
    """A value from ``.streamlit/secrets.toml``, or None when there is no such file or key."""
    try:
        return st.secrets.get(name)
    except Exception:  # noqa: BLE001 (no secrets file, or one that does not parse: the default applies)
        return None


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    """The run store: runs, the training queue, metrics and checkpoints (shared by every session and worker)."""
    return RunStore()


def check_store() -> None:
    """Raise StoreUnreadableError (an ExplorerError) when the run database cannot be read."""
    run_store().check()


def rebuild_store() -> int:
    """Rebuild the run database from the checkpoint sidecars on disk; how many runs were recovered."""
    return run_store().rebuild()


def submit(config: training.TrainConfig, group: str | None = None) -> str:
    """Queue a training run for the workers (starting them if needed); its id."""
    run_id = run_store().create_run(config.validate(), status="queued", group=group)
    supervisor().ensure()
    return run_id


def new_group() -> str:
    """An id for runs started together (a strategy race)."""
    return new_id("group-")


def run(run_id: str) -> RunRecord:
    """One run as the store reads it now (``interrupted`` when its trainer went quiet)."""
    return run_store().run(run_id)


def stop(run_id: str) -> str:
    """Cancel a queued run at once or ask a running one to stop: "cancelled", "stopping" or its status."""
    return run_store().request_stop(run_id)


def group_runs(group: str) -> list[RunRecord]:
    """The runs of a group, in the order they were started."""
    return run_store().runs(group=group)


def stop_group(group: str) -> int:
    """Stop or cancel every active run of a group; how many."""
    return run_store().stop_group(group)


def resume(run_id: str) -> None:
    """Queue a stopped, failed or interrupted run to continue from its last checkpoint."""
    run_store().resume(run_id)
    supervisor().ensure()


def delete_run(run_id: str) -> None:
    """Delete a run that is not running, with its checkpoint files."""
    run_store().delete(run_id)


def checkpoint_downloads(run_id: str) -> dict[checkpoints.Which, checkpoints.Download]:
    """Each saved checkpoint of a run ("best", "last"): its weights and sidecar bytes, checked against their SHA-256
    before they are offered, or why they are not (damaged)."""
    return checkpoints.downloads(run_store().checkpoint_dir(run_id))


def dataset_on_disk(name: str) -> bool:
    """True if the data set can be loaded without a download."""
    try:
        data.load(name, download=False)
        return True
    except ExplorerError:
        return False


LOCAL_DATASETS = tuple(local_data.FOLDERS)  # looked for on this machine before a download
UPLOADABLE_DATASETS = ("mnist", "fashion_mnist")  # their four official files can be uploaded
IDX_UPLOAD_MB = 48  # the largest official file, MNIST's training images un-gzipped, is 44.9 MiB


def dataset_folder(name: str) -> Path:
    """The absolute folder where ``name``'s files are looked for."""
    return local_data.folder(name)


def dataset_missing(name: str) -> list[str]:
    """The files of ``name`` not yet in :func:`dataset_folder`."""
    return local_data.missing(name)


def install_dataset_files(name: str, uploads: list[tuple[str, bytes]]) -> list[str]:
    """Check uploaded official files of ``name`` and install them (IdxFileError for a bad one); the kinds written."""
    return local_data.install(name, uploads)


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
    root = paths.folders_dir()
    root.mkdir(parents=True, exist_ok=True)
    return root


def uploads_root() -> Path:
    """Where uploaded zips are extracted, one folder per content."""
    return state_dir() / "uploads"


def staging_root() -> Path:
    """Where uploaded weights wait while they are checked (up to 549 MB each): inside the state folder."""
    return state_dir() / "staging"


def _places() -> list[tuple[Path, str]]:
    """Server folders and the names messages use for them instead (longest first)."""
    places = [(folders_root(), "server folders"), (uploads_root(), "uploads"), (state_dir().resolve(), "state folder"),
              (state_dir(), "state folder"), (Path(torch.hub.get_dir()), "weights cache")]
    return sorted(places, key=lambda place: -len(str(place[0])))


def public_path(path: Path | str) -> str:
    """A server path as a user may see it: relative to the state folder, the server folders or the weights cache
    (``uploads/3fa4…/cats``), never absolute; just the name when it is anywhere else."""
    path = Path(path)
    for root, label in _places():
        if path == root:
            return label
        if path.is_relative_to(root):
            return f"{label}/{path.relative_to(root).as_posix()}"
    return path.name


def public_text(text: str) -> str:
    """``text`` with every absolute server path it names replaced by :func:`public_path`'s form, except the data
    folder, which the Training page names so that data sets can be put there."""
    shown = {str(data.data_dir()), str(data.data_dir().resolve())}  # where to put data sets: said as it is
    kept = {f"\0{i}\0": path for i, path in enumerate(sorted(shown, key=len, reverse=True))}
    for token, path in kept.items():
        text = text.replace(path, token)
    for root, label in _places():
        text = text.replace(str(root) + os.sep, label + "/").replace(str(root), label)
    for token, path in kept.items():
        text = text.replace(token, path)
    return text


def dataset_label(name: str) -> str:
    """A data set as users see it (``labels.dataset_title``): ``Fashion-MNIST``, a folder by its name, an uploaded
    zip by its file name; never a server path or the hash an upload's folder is named by."""
    return labels.dataset_title(name)


def _keep_upload_name(folder: Path, upload: object) -> None:
    """Write an uploaded zip's own file name (printable characters, at most 80) beside its extracted classes."""
    name = "".join(c for c in str(getattr(upload, "name", "") or "") if c.isprintable())[:80].strip()
    if name and not (folder / labels.UPLOAD_NAME).exists():
        with contextlib.suppress(OSError):
            (folder / labels.UPLOAD_NAME).write_text(name)


MAX_FOLDER_TEXT = 1024  # characters typed into the server-folder box


def folder_dataset(path_text: str) -> str:
    """``folder:PATH`` for a folder under :func:`folders_root`, checked to hold an image data set. NUL bytes,
    over-long names and paths (or links) that lead out of the root are refused."""
    root = folders_root()
    if "\0" in path_text:
        raise ExplorerError("A folder name cannot contain a NUL byte.")
    if len(path_text) > MAX_FOLDER_TEXT or any(len(part.encode()) > 255 for part in Path(path_text).parts):
        raise ExplorerError(f"That folder name is too long (at most {MAX_FOLDER_TEXT} characters, 255 bytes a part).")
    try:
        path = (root / path_text).resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop, an unreadable component
        raise ExplorerError("That folder cannot be opened.") from None
    if not path.is_relative_to(root):
        raise ExplorerError("Folders must be inside the server folders (links that lead out of them are refused).")
    name = data.FOLDER_PREFIX + str(path)
    data.load(name)  # scanned and verified once, then cached
    return name


@dataclasses.dataclass(frozen=True)
class ExtractedZip:
    """An uploaded zip on disk: its data-set name and how many members were skipped."""

    dataset: str
    skipped: int


UPLOADS_MAX_BYTES = paths.uploads_max_bytes()


def zip_dataset(upload: bytes | IO[bytes]) -> ExtractedZip:
    """Extract an uploaded zip (its bytes, or a seekable file such as Streamlit's UploadedFile: no copy is made)
    safely, once per content (two sessions at once both succeed), check its class folders, and keep the uploads
    folder under its cap (least recently used first, never one a run uses)."""
    source = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    source.seek(0)
    hasher = hashlib.sha256()  # chunk by chunk (hashlib.file_digest is Python 3.11+; we support 3.10)
    for chunk in iter(lambda: source.read(1 << 20), b""):
        hasher.update(chunk)
    digest = hasher.hexdigest()[:20]
    source.seek(0)
    target = uploads_root() / digest
    if target.is_dir():
        os.utime(target)  # recently used: pruned last
        root, skipped = archives.class_root(target), 0
    else:
        extracted = archives.extract_zip(source, target)
        root, skipped = extracted.root, extracted.skipped
        prune_uploads(keep={target})
    _keep_upload_name(target, upload)
    name = data.FOLDER_PREFIX + str(root)
    data.load(name)  # scanned and verified once, then cached
    return ExtractedZip(name, skipped)


def prune_uploads(keep: set[Path] = frozenset()) -> list[Path]:  # type: ignore[assignment]
    """Remove extracted uploads beyond the cap, least recently used first; never one a stored run names as its
    data set (it may be training, or be trained again)."""
    used = {Path(run.dataset.removeprefix(data.FOLDER_PREFIX)) for run in run_store().runs(limit=1_000_000)
            if run.dataset.startswith(data.FOLDER_PREFIX)}
    return archives.prune(uploads_root(), UPLOADS_MAX_BYTES, keep=set(keep) | used)


# ImageNet weights: the official files, downloads and uploads -----------------------------------------

WEIGHTS_UPLOAD_MB = math.ceil(weights.largest_file_mb()) + 1  # VGG-19's 548 MiB file fits; server.maxUploadSize ≥ it
IMAGE_UPLOAD_MB = 25  # a 40-megapixel photo (the pixel limit) is about 20 MB as a JPEG
ZIP_UPLOAD_MB = 200

WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt")
weights_info = weights.pretrained
installed_weights = weights.installed
weights_folder = weights.cache_dir_label
_DOWNLOAD_LOCK = threading.Lock()  # one download at a time: a second session waits, then finds the file here


def check_upload_size(size: int, limit_mb: int) -> None:
    """An uploader's own limit, enforced on the server (Streamlit's server enforces only ``server.maxUploadSize``)."""
    if size > limit_mb * 2**20:
        raise ExplorerError(f"The file is {size / 2**20:,.0f} MiB; this upload takes at most {limit_mb} MiB.")


def weights_overview() -> list[dict[str, Any]]:
    """Every model with ImageNet weights: its official file, size, and whether (and how) it is on this machine."""
    rows = []
    for name in weights.names_with_weights():
        info, found = weights.pretrained(name), weights.installed(name)
        if info is None:  # names_with_weights() lists only models that have them
            continue
        rows.append({"model": models.spec(name).display_name, "file": info.file_name, "size MB": round(info.size_mb, 1),
                     "here": "✓ official file" if found and found.official
                     else (f"✓ {found.provenance}" if found else "—"),
                     "top-1 %": info.top1, "from": info.source})
    return rows


def download_weights(name: str, report: Any = None) -> weights.Installed:
    """Download the official ImageNet weights of ``name`` into the cache (``report(done, total)`` as it goes)."""
    with _DOWNLOAD_LOCK:
        found = weights.installed(name)
        installed = found if found is not None and found.official else weights.fetch(name, report)
    classifier.clear()  # a model loaded before from other weights must not stay in the cache
    return installed


def install_weights(name: str, file_name: str, payload: bytes) -> weights.Installed:
    """Check an uploaded weights file against the architecture and put it in the cache; how it was installed."""
    suffix = Path(file_name).suffix.lower()
    if suffix not in WEIGHTS_SUFFIXES:
        raise weights.WeightsError("Weights must be a .safetensors file, or a .pth of plain tensors.")
    with tempfile.TemporaryDirectory(dir=weights.staging_folder(staging_root())) as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(payload)
        installed = weights.install(name, path, uploaded_as=Path(file_name).name[:120])
    classifier.clear()
    return installed


@st.cache_data(show_spinner=False, max_entries=64)  # keyed by model: designs add names without end
def backbone_blocks(arch: str) -> list[str]:
    """The backbone's blocks with weights, in order (what partial fine-tuning unfreezes from the end)."""
    with torch.device("meta"):
        backbone = models.build(arch)
    return transfer.feature_blocks(backbone, models.spec(arch).input_size)


@st.cache_data(show_spinner=False, max_entries=64)  # keyed by model: designs add names without end
def trainable_counts(arch: str, num_classes: int, strategy: transfer.Strategy, unfreeze_last: int) -> tuple[int, int]:
    """(trainable, total) parameters of the transfer model for a strategy, counted on the meta device."""
    with torch.device("meta"):
        model = transfer.build(arch, num_classes)
    trainable = transfer.apply_strategy(model, strategy, unfreeze_last, models.spec(arch).input_size)
    return trainable, sum(p.numel() for p in model.parameters())


def transfer_config(arch: str, dataset: str, strategy: transfer.Strategy, pretrained: bool, unfreeze_last: int, epochs: int,
                    lr: float, batch_size: int, augment: bool) -> training.TrainConfig:
    """The notes' recipe (Adam, no weight decay) for a transfer run, validated."""
    return training.TrainConfig(arch=arch, dataset=dataset, strategy=strategy, pretrained=pretrained,
                              unfreeze_last=unfreeze_last, epochs=epochs, lr=lr, batch_size=batch_size,
                              optimizer="adam", weight_decay=0.0, augment=augment).validate()


def with_strategy(config: training.TrainConfig, strategy: transfer.Strategy) -> training.TrainConfig:
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


def classifier_choices(with_runs: bool = True) -> list[classifiers.Choice]:
    """Classifiers available now: cached ImageNet weights, then (``with_runs``) every run with a checkpoint."""
    return classifiers.choices(run_store() if with_runs else None)


def best_classifier(choices: list[classifiers.Choice]) -> str | None:
    """The choice Classify opens on: the best cached ImageNet model, else the most accurate finished run."""
    return classifiers.best_choice(choices, run_store())


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def classifier(key: str) -> classifiers.Classifier:
    """A loaded classifier on the server's device, shared by all sessions (inference only; never trained here)."""
    return classifiers.load(key, run_store(), device())


# One lock per shared model: every forward pass on it (predict, Grad-CAM, feature maps) holds it, because a hook
# that one session registers for Grad-CAM would otherwise fire inside another session's pass on the same modules.
_MODEL_LOCKS: dict[str, threading.Lock] = {}
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(key: str) -> threading.Lock:
    """The lock of the shared classifier ``key`` (the same lock for as long as the server runs)."""
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(key, threading.Lock())


@contextmanager
def _using_shared_model(model: classifiers.Classifier):
    with model_lock(model.key):
        use_inference_threads(training_now())
        yield


@st.cache_resource(show_spinner=False)
def page_activity() -> activity.PageActivity:
    """The state folder's page-activity marker (core.activity), one per server."""
    return activity.PageActivity(state_dir())


def mark_page_activity() -> None:
    """Tell CPU workers a page is being served (at most one file touch a second): they leave the server its
    core within about a second, and take it again a few seconds after the last page."""
    page_activity().mark()


def settle_training_threads(training: int | None) -> None:
    """Before timing forward passes beside CPU runs that may take every core while no page is served: wait (at
    most ``activity.SETTLE_SECONDS`` after the first page of a busy spell) until they are back on their shared
    threads, so that a figure's conditions (``threads_per_run`` each) are what it was measured under."""
    try:
        executor = supervisor()
    except ExplorerError:
        return
    if training != 0 and (getattr(executor, "max_threads", None) or 0) > executor.threads_per_run:
        page_activity().settle()


def training_now() -> int | None:
    """How many runs are training now: the load the server's own forward passes share the machine with; None
    when the run database cannot be read (ImageNet models still classify then)."""
    try:
        return run_store().training()
    except ExplorerError:
        return None


def use_inference_threads(training: int | None) -> int:
    """Give this thread's forward passes the cores that the workers of ``training`` runs do not hold, at least 1
    (``devices.inference_threads``; an unknown count leaves one run its threads); how many that is."""
    try:
        per_run = supervisor().threads_per_run
    except ExplorerError:  # an executor that cannot be set up (Ray chosen, not installed) trains nothing here
        per_run = 0
    threads = devices.inference_threads((1 if training is None else training) * per_run)
    devices.use_threads(threads)
    return threads


def read_image(model: classifiers.Classifier, name: str, payload: bytes, convention: bool = True) -> imaging.Prepared:
    """Decode an upload and preprocess it the way ``model`` expects (MNIST-style for digit models)."""
    image, steps = imaging.open_image(payload, name)
    if model.digits:
        prepared = digit_input.digit_like_mnist(image, model.mean, model.std, convention)
    else:
        prepared = imaging.prepare(image, model.resize, model.crop, model.mean, model.std, model.channels,
                                   model.interpolation)
    prepared.steps[:0] = steps
    return prepared


def predict(model: classifiers.Classifier, x: torch.Tensor) -> explain.Prediction:
    """Top-k classes of a shared model for one preprocessed image."""
    with _using_shared_model(model):
        return explain.predict(model.model, x, model.classes)


def grad_cam(model: classifiers.Classifier, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM of the top class on a shared model."""
    with _using_shared_model(model):
        return explain.grad_cam(model.model, x, layer)


EXPLANATIONS = attributions.METHODS


def explanation(model: classifiers.Classifier, x: torch.Tensor, method: str, layer: str,
                progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """The heat map of the top class by ``method`` (core.attributions) on a shared model; the slow methods report
    to ``progress`` (a page's progress bar: a rerun raised there stops the work and frees the model)."""
    with _using_shared_model(model):
        return attributions.heat_map(method, model.model, x, layer, progress=progress)


def feature_maps(model: classifiers.Classifier, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Feature maps of a layer of a shared model."""
    with _using_shared_model(model):
        return explain.feature_maps(model.model, x, layer)


def conv_layers(model: classifiers.Classifier) -> list[str]:
    """Names of the model's convolutions, in order."""
    return explain.conv_layers(model.model)


def conv_titles(model: classifiers.Classifier) -> dict[str, str]:
    """Each convolution as a list shows it: ``"conv 1 of 3 · features.0 (6 filters, 5×5)"``."""
    return explain.conv_titles(model.model)


def conv_channels(model: classifiers.Classifier, layer: str) -> int:
    """How many filters (output channels) convolution ``layer`` has."""
    conv = feature_vis.module(model.model, layer)
    return conv.out_channels if isinstance(conv, torch.nn.Conv2d) else 0


def visualise_channel(model: classifiers.Classifier, layer: str, channel: int, size: int, steps: int,
                      progress: Callable[[float], None] | None = None) -> feature_vis.Visualisation:
    """The image ``channel`` of ``layer`` answers to most (core.feature_vis) on a shared model."""
    with _using_shared_model(model):
        return feature_vis.visualise(model.model, layer, channel, size, model.channels, model.mean, model.std,
                                     steps=steps, progress=progress)


COLORMAPS = explain.COLORMAPS
colorize = explain.colorize
plotly_colorscale = explain.plotly_colorscale


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, colormap: str = "turbo") -> torch.Tensor:
    """A heat map in a perceptual colour map blended over an image at opacity ``alpha``."""
    return explain.overlay(image, heat, alpha, colormap)


def stages(model: classifiers.Classifier, x: torch.Tensor, shown: int = 6) -> list[explain.Stage]:
    """One image followed through a shared model stage by stage."""
    with _using_shared_model(model):
        return explain.stages(model.model, x, shown)


def first_conv(model: classifiers.Classifier, x: torch.Tensor) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The first convolution of a shared model on one image: its name, input and output."""
    with _using_shared_model(model):
        return explain.first_conv(model.model, x)


def first_conv_at(model: classifiers.Classifier, x: torch.Tensor, channel: int, row: int, col: int) -> explain.ConvAt:
    """The first convolution of a shared model at one position, recomputed by hand."""
    with _using_shared_model(model):
        return explain.first_conv_at(model.model, x, channel, row, col)


@st.cache_data(show_spinner=False, max_entries=64)  # keyed by model: designs add names without end
def default_cam_layer(key: str) -> str:
    """The last convolution with a spatial map of classifier ``key`` (found once: it depends only on the model
    and its input size, not on the image)."""
    model = classifier(key)
    with _using_shared_model(model):
        return explain.default_cam_layer(model.model, torch.zeros(1, model.channels, model.crop, model.crop))


@st.cache_data(show_spinner=False)
def sample_photo(name: str) -> bytes:
    """A bundled scikit-image photo as PNG bytes (goes through the same checks as an upload)."""
    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(getattr(skimage.data, SAMPLES[name])()).save(buffer, format="PNG")
    return buffer.getvalue()
