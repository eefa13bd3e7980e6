"""ImageNet-pretrained weights, loaded into our own models.

Where each model's weights come from is its registry entry's ``pretrained`` (a ``PretrainedSource``):
* ResNet-18…152, VGG-16/19, Inception-v3: torchvision's ImageNet-1k weights (its weights API gives the
  file, the categories, the preprocessing and the accuracy).
* Xception: the ImageNet weights timm uses for ``legacy_xception`` (ported from Keras).

Files live in the torch hub cache (``$TORCH_HOME/hub/checkpoints``). An official file keeps its canonical
name (``resnet18-f37072fd.pth``, whose ``f37072fd`` is the start of its SHA-256): it is downloaded, or
uploaded, and kept under that name only when its content has that hash. Any other file a user supplies
(``.safetensors``, or a ``.pth`` read with ``weights_only=True`` — never unsafe unpickling) is checked and
installed under its own name, ``<model>-supplied-<sha256>.safetensors``, with a sidecar saying where it came
from; that provenance is shown wherever the weights are used.

Every file is checked before its tensors are built: its size; for a ``.pth`` (a zip) every record's declared
size against a cap and against the file's size, so a compressed record cannot inflate in memory; then every
tensor against the architecture: its name, shape, a real floating-point type and finite values.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from safetensors.torch import load_file, save_file
from torch import nn

from core import models
from core.errors import ExplorerError, plain, quoted

URL_BASE_VARIABLE = "CNN_EXPLORER_WEIGHTS_URL"  # a folder URL that serves the official file names (a mirror, tests)
MAX_FILE_BYTES = 600 * 1024 * 1024  # above VGG-19's 548 MiB, the largest official file
CHUNK_BYTES = 1024 * 1024
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.pth$")

ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total bytes or None when not announced)


class WeightsError(ExplorerError):
    """Weights that are missing, unreadable, unsafe, or do not fit the architecture."""


class WeightsUnavailableError(WeightsError):
    """Pretrained weights not in the cache and not downloadable (offline)."""


@dataclass(frozen=True)
class Pretrained:
    """Where a model's ImageNet weights come from and how its inputs are prepared."""

    name: str
    url: str
    categories: tuple[str, ...]
    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    top1: float
    source: str
    size_mb: float  # the official file's size in MiB (torchvision's ``_file_size``)
    hash_checked: bool = True  # the hash in the file name is the start of its SHA-256 (torch hub's rule)
    interpolation: str = "bilinear"  # the resize the weights were evaluated with ("bicubic" for EfficientNet)

    @property
    def file_name(self) -> str:
        """The canonical cache file name (e.g. ``resnet18-f37072fd.pth``)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str | None:
        """The published start of the file's SHA-256, when the name carries one we can check."""
        match = _HASH_IN_NAME.search(self.file_name)
        return match.group(1) if match and self.hash_checked else None


@dataclass(frozen=True)
class Installed:
    """Weights on this machine for one model, and where they came from."""

    name: str
    path: Path
    official: bool
    sha256: str | None = None  # known for supplied files (their name carries its start)
    uploaded_as: str | None = None

    @property
    def provenance(self) -> str:
        """One line for the UI: official file or supplied by upload, with its hash."""
        if self.official:
            return f"official file {self.path.name}"
        return f"supplied by upload, SHA-256 {(self.sha256 or '')[:16]}…"  # no file name: a user chose it


def _torchvision_enum(dotted: str) -> Any:
    """The torchvision weights enum member ``"ResNet18_Weights.IMAGENET1K_V1"``."""
    enum_name, _, member = dotted.partition(".")
    return getattr(getattr(torchvision.models, enum_name), member)


def pretrained(name: str) -> Pretrained | None:
    """The pretrained weights of model ``name``, as its registry entry gives them, or None (LeNet-5, the paper's
    AlexNet have none)."""
    source = models.spec(name).pretrained
    if source is None:
        return None
    if source.torchvision_weights:
        weights = _torchvision_enum(source.torchvision_weights)
        transform = weights.transforms()
        return Pretrained(name, weights.url, tuple(weights.meta["categories"]), transform.resize_size[0],
                          transform.crop_size[0], tuple(transform.mean), tuple(transform.std),
                          weights.meta["_metrics"]["ImageNet-1K"]["acc@1"], source.source or "torchvision",
                          float(weights.meta["_file_size"]), source.hash_checked,
                          str(transform.interpolation.value))
    categories = tuple(_torchvision_enum(source.categories_from).meta["categories"]) if source.categories_from else ()
    return Pretrained(name, source.url, categories, source.resize, source.crop, source.mean, source.std, source.top1,
                      source.source, source.size_mb, hash_checked=source.hash_checked)


def names_with_weights() -> list[str]:
    """Registered models that have ImageNet weights."""
    return [name for name in models.names() if pretrained(name) is not None]


def largest_file_mb() -> float:
    """The size of the largest official weights file, in MiB (what an upload must accept)."""
    return max(_require(name).size_mb for name in names_with_weights())


def cache_dir() -> Path:
    """The torch hub checkpoint folder (follows ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_dir_label() -> str:
    """The checkpoint folder as a user writes it (``$TORCH_HOME/hub/checkpoints``), never a server path."""
    if os.environ.get("TORCH_HOME"):
        return "$TORCH_HOME/hub/checkpoints"
    if os.environ.get("XDG_CACHE_HOME"):
        return "$XDG_CACHE_HOME/torch/hub/checkpoints"
    return "~/.cache/torch/hub/checkpoints (or $TORCH_HOME/hub/checkpoints when TORCH_HOME is set)"


def _require(name: str) -> Pretrained:
    info = pretrained(name)
    if info is None:
        raise WeightsError(f"{models.spec(name).display_name} has no ImageNet weights in this app.")
    return info


def expected_file(name: str) -> Path:
    """Where the official weights of ``name`` must be."""
    return cache_dir() / _require(name).file_name


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def installed(name: str) -> Installed | None:
    """The weights of ``name`` on this machine: the official file if present, else the newest supplied one."""
    if pretrained(name) is None:
        return None
    official = expected_file(name)
    if official.is_file():
        return Installed(name, official, official=True)
    supplied = sorted(cache_dir().glob(f"{name}-supplied-*.safetensors"), key=lambda p: p.stat().st_mtime)
    for path in reversed(supplied):
        try:
            facts = json.loads(_sidecar(path).read_text())
        except (OSError, ValueError):
            continue  # no provenance, no use
        if isinstance(facts, dict) and facts.get("model") == name:
            return Installed(name, path, official=False, sha256=str(facts.get("sha256", "")),
                             uploaded_as=str(facts["uploaded_as"]) if facts.get("uploaded_as") else None)
    return None


def is_cached(name: str) -> bool:
    """True if weights of ``name`` (official or supplied) are on this machine: they load offline."""
    return installed(name) is not None


def check_archive(path: Path, max_record_bytes: int = MAX_FILE_BYTES) -> None:
    """Refuse a file too large, or a ``.pth`` zip whose records would inflate beyond the file or a cap.

    ``torch.save`` stores records uncompressed, so their declared sizes add up to less than the file; a
    deflate-compressed record is how a small file becomes gigabytes inside ``torch.load``.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise WeightsError(f"{path.name} is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES / 2**20:.0f} MiB "
                           "limit (the largest official file, VGG-19, is 548 MiB).")
    if not zipfile.is_zipfile(path):
        return  # safetensors, or torch's legacy format: tensors stored raw, bounded by the file's size
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise WeightsError(f"{path.name} is a damaged archive: {error}") from None
    declared = 0
    for record in records:
        if record.file_size > max_record_bytes:
            raise WeightsError(f"{path.name} declares a record of {record.file_size:,} bytes "
                               f"({quoted(record.filename)}), over the {max_record_bytes:,}-byte cap.")
        declared += record.file_size
    if declared > 2 * size + CHUNK_BYTES:
        raise WeightsError(f"{path.name} would inflate from {size:,} to {declared:,} bytes when read: its records "
                           "are compressed, which torch.save never does. Refused before decompressing anything.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a ``.pth`` read with ``weights_only=True``, sizes checked first.

    Anything else — a pickle that would run code, a bomb, a truncated file, junk — is a WeightsError.
    """
    path = Path(path)
    check_archive(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # torch's own text advises weights_only=False: never here
        raise WeightsError(f"{path.name} cannot be read as weights: it holds Python objects other than tensors, "
                           "which could run code, so it is not unpickled. Save a state dict of plain tensors, or "
                           f"a .safetensors file ({_unpickler_detail(error)}).") from None
    except Exception as error:  # noqa: BLE001 (junk through torch.load raises anything)
        raise WeightsError(f"{path.name} cannot be read as weights (safetensors, or a .pth of plain tensors): "
                           f"{type(error).__name__}: {plain(error)}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path.name} does not hold a state dict of tensors.")
    return state


def _unpickler_detail(error: Exception) -> str:
    """The part of torch's refusal that says what the file holds, without its advice to unpickle anyway."""
    text = plain(error, limit=2000)
    detail = text.partition("WeightsUnpickler error:")[2].partition(". ")[0].strip()  # its first sentence: the rest advises
    return f"torch: {plain(detail, limit=120)}" if detail else "refused by torch's safe loader"


def mismatches(model: nn.Module, state: dict[str, torch.Tensor], shown: int = 4) -> str:
    """What keeps ``state`` from loading into ``model`` (missing/unexpected keys, shapes), or "" if nothing.
    At most ``shown`` problems are spelt out, each key name cut to a length (a file's names can be huge)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k, v in expected.items() if k in state and state[k].shape != v.shape]
    count = len(missing) + len(unexpected) + len(shapes)
    if not count:
        return ""
    problems = [f"missing {quoted(k)}" for k in missing[:shown]]
    problems += [f"unexpected {quoted(k)}" for k in unexpected[:shown]]
    problems += [f"{quoted(k)}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                 for k in shapes[:shown]]
    more = f"; and {count - shown:,} more" if count > shown else ""
    return f"{count:,} problem{'s' if count > 1 else ''}: {'; '.join(problems[:shown])}{more}"


def _finite_as(tensor: torch.Tensor, dtype: torch.dtype) -> bool:
    """True if every value of ``tensor`` stays finite once cast to ``dtype`` (the model's): float64 weights of
    1e300 are finite in the file and infinite in float32. Only the extremes are cast (NaN propagates to them)."""
    if tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor.detach())
    return bool(torch.isfinite(torch.stack([low, high]).to(dtype)).all())


def bad_values(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """The first tensor whose type or values cannot be weights (complex, integer, NaN, ±inf), or ""."""
    for key, reference in model.state_dict().items():
        tensor = state.get(key)
        if tensor is None:
            continue
        if tensor.is_complex():
            return f"{key} holds complex numbers ({tensor.dtype})"
        if reference.is_floating_point():
            if not tensor.is_floating_point():
                return f"{key} holds {tensor.dtype} values where floating-point weights belong"
            if not _finite_as(tensor, reference.dtype):
                return f"{key} holds non-finite values (NaN or ±inf) as {reference.dtype} weights"
        elif tensor.is_floating_point():
            return f"{key} holds {tensor.dtype} values where a count belongs"
    return ""


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    """Raise WeightsError saying what does not match (names, shapes, types, finite values), if anything."""
    problems = mismatches(model, state)
    if problems:
        raise WeightsError(f"{quoted(label)} does not fit this architecture ({problems}).")
    values = bad_values(model, state)
    if values:
        raise WeightsError(f"{quoted(label)} cannot be used: {values}.")


def build_pretrained_shell(name: str) -> nn.Module:
    """The model the pretrained weights belong to: the registry entry's shell, else the model at 1000 classes."""
    source = models.spec(name).pretrained
    if source is not None and source.shell is not None:
        return source.shell()
    return models.build(name, num_classes=1000, in_channels=3)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(name: str, url_base: str | None = None) -> str:
    """Where the official file of ``name`` is fetched: its published URL, or the same file name under
    ``url_base`` (or ``$CNN_EXPLORER_WEIGHTS_URL``), a mirror that serves the official names."""
    info = _require(name)
    base = url_base or os.environ.get(URL_BASE_VARIABLE)
    return f"{base.rstrip('/')}/{info.file_name}" if base else info.url


def fetch(name: str, progress: ProgressCallback | None = None, url_base: str | None = None,
             timeout: float = 30.0) -> Installed:
    """Fetch the official file of ``name`` into the cache: streamed to a temporary file beside it, its SHA-256
    checked against the hash in its name and its tensors against the architecture, then renamed into place.

    Any failure (offline, interrupted, wrong hash, wrong content) is a WeightsError and leaves no file behind.
    """
    info = _require(name)
    target = expected_file(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    url = download_url(name, url_base)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{info.file_name}.", suffix=".partial", dir=target.parent)
    temporary = Path(temporary_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            announced = response.headers.get("Content-Length")
            total = int(announced) if announced and announced.isdigit() else None
            if total is not None and total > MAX_FILE_BYTES:
                raise WeightsError(f"{url} announces {total:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit.")
            if progress:
                progress(0, total)
            while chunk := response.read(CHUNK_BYTES):
                received += len(chunk)
                if received > MAX_FILE_BYTES:
                    raise WeightsError(f"{url} sent more than {MAX_FILE_BYTES:,} bytes; stopped.")
                out.write(chunk)
                digest.update(chunk)
                if progress:
                    progress(received, total)
        if total is not None and received != total:
            raise WeightsError(f"The download of {info.file_name} stopped at {received:,} of {total:,} bytes; "
                               "nothing was kept. Try again.")
        prefix = info.sha256_prefix
        if prefix and not digest.hexdigest().startswith(prefix):
            raise WeightsError(f"The file downloaded as {info.file_name} has SHA-256 {digest.hexdigest()[:16]}…, "
                               f"not the published {prefix}…: refused, nothing was kept.")
        check_fits(build_pretrained_shell(name), read_state_dict(temporary), info.file_name)
        temporary.replace(target)
    except WeightsError:
        temporary.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as error:
        temporary.unlink(missing_ok=True)
        raise WeightsUnavailableError(_missing_message(name, f"{url} answered {error.code} {error.reason}")) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:  # offline, cut off
        temporary.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise WeightsUnavailableError(_missing_message(name, f"the download from {url} failed ({reason}); "
                                                             "this machine may be offline")) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Installed(name, target, official=True)


def load_pretrained(name: str, download: bool = True,
                    progress: ProgressCallback | None = None) -> tuple[nn.Module, Pretrained]:
    """Our model with its ImageNet weights: the official file, else a supplied one, else downloaded (if allowed)."""
    info = _require(name)
    found = installed(name)
    if found is None:
        if not download:
            raise WeightsUnavailableError(_missing_message(name, "downloads are off"))
        found = fetch(name, progress)
    model = build_pretrained_shell(name)
    state = read_state_dict(found.path)
    check_fits(model, state, found.path.name)
    model.load_state_dict(state)
    return model.eval(), info


def _missing_message(name: str, why: str) -> str:
    return (f"The ImageNet weights of {models.spec(name).display_name} are not on this machine and {why}. "
            f"Put the file {_require(name).file_name} in {cache_dir_label()}, or upload it (or a .safetensors "
            "file) on this page; it is checked against the architecture before use.")


def _atomic_copy(source: Path, target: Path) -> None:
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        shutil.copyfile(source, temporary)
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


STAGING_STALE_AFTER = 3600.0  # seconds: a staged upload this old belongs to no check in progress


def staging_folder(root: Path, stale_after: float = STAGING_STALE_AFTER) -> Path:
    """``root``, made ready to stage uploads that wait for their check (inside the app's state folder, not the
    system's temporary folder): created if missing, and cleared of what a server that stopped mid-check left
    there more than ``stale_after`` seconds ago."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for entry in root.iterdir():
        try:
            if now - entry.lstat().st_mtime < stale_after:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError:  # removed meanwhile by another session's clean-up
            continue
    return root


def install(name: str, supplied: Path, uploaded_as: str | None = None) -> Installed:
    """Check a user-supplied weights file against ``name`` and store it in the cache.

    A ``.pth`` whose SHA-256 matches the published hash is the official file and takes the canonical name.
    Anything else is stored as ``<name>-supplied-<sha256[:16]>.safetensors`` with a sidecar (its hash and the
    name it was uploaded as), so it can never pass for the official file. Nothing in the cache is touched
    unless the file fits.
    """
    info = _require(name)
    supplied = Path(supplied)
    state = read_state_dict(supplied)
    check_fits(build_pretrained_shell(name), state, uploaded_as or supplied.name)
    digest = sha256_of(supplied)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if supplied.suffix in (".pth", ".pt") and info.sha256_prefix and digest.startswith(info.sha256_prefix):
        _atomic_copy(supplied, expected_file(name))
        return Installed(name, expected_file(name), official=True)
    target = folder / f"{name}-supplied-{digest[:16]}.safetensors"
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=folder)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        save_file({key: tensor.contiguous() for key, tensor in state.items()}, str(temporary))
        _sidecar(target).write_text(json.dumps({"model": name, "sha256": digest, "source": "upload",
                                                "uploaded_as": uploaded_as or supplied.name}))
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Installed(name, target, official=False, sha256=digest, uploaded_as=uploaded_as or supplied.name)
