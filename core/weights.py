"""ImageNet-pretrained weights, loaded into our own models.

* ResNet-18…152, VGG-16/19, Inception-v3: torchvision's ImageNet-1k weights (its weights API gives the
  file, the categories, the preprocessing and the accuracy).
* Xception: the ImageNet weights timm uses for ``legacy_xception`` (ported from Keras).

Files live in the torch hub cache (``$TORCH_HOME/hub/checkpoints``) under their canonical names. A cached
file loads with no network; online, a missing one is downloaded once; offline, the error names the
file expected and where. A file a user supplies (``.safetensors``, or ``.pth`` read with
``weights_only=True`` — never unsafe unpickling) is checked against the architecture before use.
"""

from __future__ import annotations

import shutil
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from safetensors.torch import load_file
from torch import nn

from core import models
from core.errors import ExplorerError

XCEPTION_URL = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth"


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

    @property
    def file_name(self) -> str:
        """The canonical cache file name (e.g. ``resnet18-f37072fd.pth``)."""
        return self.url.rsplit("/", 1)[-1]


def _torchvision_weights() -> dict[str, Any]:
    w = torchvision.models
    return {
        "vgg16": w.VGG16_Weights.IMAGENET1K_V1, "vgg19": w.VGG19_Weights.IMAGENET1K_V1,
        "inception_v3": w.Inception_V3_Weights.IMAGENET1K_V1,
        "resnet18": w.ResNet18_Weights.IMAGENET1K_V1, "resnet34": w.ResNet34_Weights.IMAGENET1K_V1,
        "resnet50": w.ResNet50_Weights.IMAGENET1K_V1, "resnet101": w.ResNet101_Weights.IMAGENET1K_V1,
        "resnet152": w.ResNet152_Weights.IMAGENET1K_V1,
    }


def pretrained(name: str) -> Pretrained | None:
    """The pretrained weights of model ``name``, or None (LeNet-5, the paper's AlexNet have none)."""
    models.spec(name)
    table = _torchvision_weights()
    if name in table:
        weights = table[name]
        transform = weights.transforms()
        return Pretrained(name, weights.url, tuple(weights.meta["categories"]), transform.resize_size[0],
                          transform.crop_size[0], tuple(transform.mean), tuple(transform.std),
                          weights.meta["_metrics"]["ImageNet-1K"]["acc@1"], "torchvision")
    if name == "xception":
        categories = tuple(table["resnet18"].meta["categories"])  # the same 1000 ImageNet classes
        return Pretrained(name, XCEPTION_URL, categories, 333, 299, (0.5,) * 3, (0.5,) * 3, 78.892, "timm")
    return None


def names_with_weights() -> list[str]:
    """Registered models that have ImageNet weights."""
    return [name for name in models.names() if pretrained(name) is not None]


def cache_dir() -> Path:
    """The torch hub checkpoint folder (follows ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def expected_file(name: str) -> Path:
    """Where the cached weights of ``name`` must be."""
    info = pretrained(name)
    if info is None:
        raise WeightsError(f"{models.spec(name).display_name} has no ImageNet weights in this app.")
    return cache_dir() / info.file_name


def is_cached(name: str) -> bool:
    """True if the weights of ``name`` are in the cache (they load offline)."""
    return pretrained(name) is not None and expected_file(name).is_file()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a ``.pth`` read with ``weights_only=True``.

    Anything else — a pickle that would run code, a truncated file, junk — is a WeightsError.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (junk through torch.load raises anything: struct.error, KeyError…)
        raise WeightsError(f"{path.name} cannot be read as weights (safetensors, or a .pth of plain tensors): "
                           f"{type(error).__name__}: {str(error)[:200]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path.name} does not hold a state dict of tensors.")
    return state


def mismatches(model: nn.Module, state: dict[str, torch.Tensor], shown: int = 4) -> str:
    """What keeps ``state`` from loading into ``model`` (missing/unexpected keys, shapes), or "" if nothing."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if not problems:
        return ""
    more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} problems: {'; '.join(problems[:shown])}{more}"


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    """Raise WeightsError saying what does not match, if anything."""
    problems = mismatches(model, state)
    if problems:
        raise WeightsError(f"{label} does not fit this architecture ({problems}).")


def build_pretrained_shell(name: str) -> nn.Module:
    """The model the pretrained weights belong to (1000 classes; Inception maps ImageNet inputs to [-1, 1])."""
    model = models.build(name, num_classes=1000, in_channels=3)
    if name == "inception_v3":
        model.transform_input = True  # Google's weights expect [-1, 1] inputs, as torchvision sets up
    return model


def load_pretrained(name: str, download: bool = True, progress: bool = True) -> tuple[nn.Module, Pretrained]:
    """Our model with its ImageNet weights: from the cache, else downloaded once (if allowed)."""
    info = pretrained(name)
    path = expected_file(name)
    if not path.is_file():
        if not download:
            raise WeightsUnavailableError(_missing_message(name, path, "downloads are off"))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            torch.hub.download_url_to_file(info.url, str(partial), progress=progress)
            partial.replace(path)
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            partial.unlink(missing_ok=True)
            raise WeightsUnavailableError(_missing_message(name, path, f"the download failed: {error}")) from None
    model = build_pretrained_shell(name)
    state = read_state_dict(path)
    check_fits(model, state, path.name)
    model.load_state_dict(state)
    return model.eval(), info


def _missing_message(name: str, path: Path, why: str) -> str:
    return (f"The ImageNet weights of {models.spec(name).display_name} are not on this machine and {why}. "
            f"Expected file: {path.name} in {path.parent}. Put it there, or supply it as a .safetensors or "
            ".pth file; it is checked against the architecture before use.")


def install(name: str, supplied: Path) -> Path:
    """Check a user-supplied weights file against ``name`` and store it in the cache under its canonical name.

    A .pth is copied as is; a .safetensors file is converted (the cache holds what torchvision expects).
    Returns the cache path. Nothing in the cache is touched unless the file fits.
    """
    target = expected_file(name)
    state = read_state_dict(supplied)
    check_fits(build_pretrained_shell(name), state, Path(supplied).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if Path(supplied).suffix == ".safetensors":
        torch.save(state, partial)
    else:
        shutil.copyfile(supplied, partial)
    partial.replace(target)
    return target
