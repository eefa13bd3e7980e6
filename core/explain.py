"""What a model sees: top-k predictions with latency, Grad-CAM, and feature maps of any layer.

Each function runs on the device the model lives on (the image is moved there) and returns CPU tensors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core import devices
from core.errors import InvalidArgumentError


@dataclass(frozen=True)
class Prediction:
    """Top-k classes with probabilities, and how long the forward pass took."""

    top: list[tuple[str, float]]
    class_index: int
    latency_ms: float


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _forward_hooked(model: nn.Module, x: torch.Tensor, hooks: list[tuple[nn.Module, Callable]]) -> torch.Tensor:
    """Run ``x`` through ``model`` in eval mode on the model's device with forward ``hooks`` on the given
    modules, and remove the hooks again however the pass ends."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    model.eval()
    try:
        return model(x.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the convolutions, in registration order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


@torch.no_grad()
def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Grad-CAM's default: the last convolution whose output still has a spatial map (more than 1×1)."""
    sizes: dict[str, int] = {}
    _forward_hooked(model, x, [(module, lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[-1] * o.shape[-2]))
                               for name, module in model.named_modules() if isinstance(module, nn.Conv2d)])
    spatial = [name for name in conv_layers(model) if sizes.get(name, 0) > 1]
    return spatial[-1] if spatial else conv_layers(model)[-1]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, classes: list[str] | tuple[str, ...], k: int = 5) -> Prediction:
    """Softmax top-k of one image (eval mode), timed on the model's device (the clock waits for the device)."""
    model.eval()
    device = model_device(model)
    x = x.to(device)
    devices.synchronize(device)
    start = time.perf_counter()
    logits = model(x)
    devices.synchronize(device)
    elapsed = (time.perf_counter() - start) * 1000
    probabilities = logits.float().softmax(1)[0].cpu()
    values, indices = probabilities.topk(min(k, len(classes)))
    return Prediction([(classes[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)],
                      int(indices[0]), elapsed)


def _capture(model: nn.Module, layer: str):
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise InvalidArgumentError(f"The model has no layer {layer!r}.") from None


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str, class_index: int | None = None) -> torch.Tensor:
    """Grad-CAM heat map (H × W of the input, values in [0, 1]) for ``class_index`` (default: the top class).

    Weights each channel of ``layer``'s output by the mean gradient of the class score, keeps the
    positive evidence (ReLU), and upsamples to the input size.
    """
    module = _capture(model, layer)
    store: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        output.register_hook(lambda grad: store.__setitem__("grad", grad))
        store["activation"] = output

    with torch.enable_grad():
        x = x.to(model_device(model)).clone().requires_grad_(True)
        logits = _forward_hooked(model, x, [(module, keep)])
        target = int(logits.argmax(1)) if class_index is None else class_index
        model.zero_grad(set_to_none=True)
        logits[0, target].backward()
    activation, gradient = store["activation"].detach(), store["grad"].detach()
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0].cpu()
    return cam / cam.max() if cam.max() > 0 else cam


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layer: str, limit: int = 32) -> torch.Tensor:
    """The first ``limit`` channels of ``layer``'s output (C × h × w), each scaled to [0, 1]."""
    module = _capture(model, layer)
    store: dict[str, torch.Tensor] = {}
    _forward_hooked(model, x, [(module, lambda _m, _i, output: store.__setitem__("maps", output))])
    maps = store["maps"][0, :limit].float().cpu()
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return (maps - low) / (high - low).clamp(min=1e-8)


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.45) -> torch.Tensor:
    """Blend a heat map (red = strong) onto an H × W × 3 uint8 image; returns uint8."""
    red = torch.stack([heat, heat.pow(2) * 0.4, torch.zeros_like(heat)], dim=-1) * 255
    return (image.float() * (1 - alpha) + red * alpha).round().clamp(0, 255).to(torch.uint8)
