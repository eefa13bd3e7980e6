"""More ways to explain a prediction, beside Grad-CAM (``core.explain``): two more class activation maps
(Grad-CAM++, Score-CAM) at a layer, and four maps of the input's pixels (vanilla saliency, SmoothGrad, integrated
gradients, occlusion).

Written in plain PyTorch from the papers; the tests check each against its reference implementation
(pytorch-grad-cam, Captum) on the same model, input, layer and class. The slow methods take a ``progress``
callback (a fraction in [0, 1], called before every batch and once at the end) and a ``cancel`` event, checked
before every batch, that stops them with :class:`CancelledError`. Their work is bounded: a few hundred forward
passes at most.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import CancelledError, InvalidArgumentError
from core.explain import (
    _capture,
    _forward_hooked,
    activation_and_gradient,
    grad_cam,
    model_device,
    scaled_cam,
    target_class,
)

Progress = Callable[[float], None]

SCORE_CAM_CHANNELS = 128  # Score-CAM masks the input with at most this many channels (the most active ones)
SMOOTHGRAD_SAMPLES = 25  # noisy copies of the image
SMOOTHGRAD_NOISE = 0.15  # the noise's standard deviation as a share of the input's range (Smilkov et al., 2017)
IG_STEPS = 32  # points on the path from the baseline to the image (Gauss–Legendre, as Captum by default)
OCCLUSION_POSITIONS = 14  # window positions per side at most: 14 × 14 = 196 forward passes
BATCH = 16  # images per forward pass in the slow methods
GRADIENT_BATCH = 8  # images per forward and backward pass: the backward keeps every activation of the batch


@dataclass(frozen=True)
class Method:
    """One way to explain a prediction, as a page offers it."""

    name: str
    uses_layer: bool  # a class activation map at a chosen layer; otherwise a map of the input's pixels
    slow: bool  # many forward passes: takes ``progress`` and ``cancel``
    summary: str  # what the map shows, in one sentence


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("Grad-CAM", True, False, "The layer's channels weighted by the mean gradient of the class score."),
    Method("Grad-CAM++", True, False, "Grad-CAM with each position's gradient weighted by its share of the "
                                      "evidence (Chattopadhay et al., 2018): several objects stand out better."),
    Method("Score-CAM", True, True, "No gradients: each channel's map masks the image, and the class score of "
                                    "the masked image weights that channel (Wang et al., 2020)."),
    Method("Saliency", False, False, "How strongly the class score changes with each pixel: the absolute "
                                     "gradient (Simonyan et al., 2014)."),
    Method("SmoothGrad", False, True, f"Saliency averaged over {SMOOTHGRAD_SAMPLES} noisy copies of the image, "
                                      "which removes most of its speckle (Smilkov et al., 2017)."),
    Method("Integrated gradients", False, True, f"Gradients summed along {IG_STEPS} steps from a blank image "
                                                "to this one, times the pixel's change (Sundararajan et al., "
                                                "2017)."),
    Method("Occlusion", False, True, "How much the class score drops when a grey square hides each place "
                                     "(Zeiler and Fergus, 2014)."),
)}


def _step(done: int, total: int, progress: Progress | None, cancel: threading.Event | None) -> None:
    """Report ``done`` of ``total`` and stop if cancelled."""
    if cancel is not None and cancel.is_set():
        raise CancelledError("The explanation was cancelled.")
    if progress is not None:
        progress(min(1.0, done / max(total, 1)))


def grad_cam_plus_plus(model: nn.Module, x: torch.Tensor, layer: str, class_index: int | None = None) -> torch.Tensor:
    """Grad-CAM++ heat map (H × W of the input, in [0, 1]) of ``class_index`` (default: the top class) at
    ``layer``: each channel weighted by its positive gradients, each weighted by α = g² / (2g² + Σ A · g³)."""
    activation, gradient = activation_and_gradient(model, x, layer, class_index)
    squared = gradient ** 2
    alpha = squared / (2 * squared + activation.sum(dim=(2, 3), keepdim=True) * squared * gradient + 1e-6)
    alpha = torch.where(gradient != 0, alpha, torch.zeros_like(alpha))
    weights = (F.relu(gradient) * alpha).sum(dim=(2, 3), keepdim=True)
    return scaled_cam((weights * activation).sum(1)[0], x.shape[-2:])


@torch.no_grad()
def score_cam(model: nn.Module, x: torch.Tensor, layer: str, class_index: int | None = None,
              channels: int = SCORE_CAM_CHANNELS, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> torch.Tensor:
    """Score-CAM heat map (H × W, in [0, 1]): each of ``layer``'s channels, upsampled and scaled to [0, 1], masks
    the image; the softmax over channels of the masked images' class scores weights the channels' maps.

    Only the ``channels`` most active channels (by mean activation) are tried; the softmax over the others would
    only rescale the map (a channel that is left out contributes little: its activation is small).
    """
    module = _capture(model, layer)
    store: dict[str, torch.Tensor] = {}
    x = x.to(model_device(model))
    logits = _forward_hooked(model, x, [(module, lambda _m, _i, output: store.__setitem__("maps", output))])
    target = target_class(logits, class_index)
    maps = store["maps"][0].clone()  # C × h × w
    if len(maps) > channels:
        maps = maps[maps.mean(dim=(1, 2)).topk(channels).indices]
    masks = F.interpolate(maps[None], size=x.shape[-2:], mode="bilinear", align_corners=True)[0]
    low, high = masks.amin(dim=(1, 2), keepdim=True), masks.amax(dim=(1, 2), keepdim=True)
    masks = (masks - low) / (high - low + 1e-8)
    scores = []
    for start in range(0, len(masks), BATCH):
        _step(start, len(masks), progress, cancel)
        scores.append(model(x * masks[start:start + BATCH, None])[:, target])
    _step(1, 1, progress, cancel)
    weights = torch.cat(scores).softmax(0)
    return scaled_cam((weights[:, None, None] * maps).sum(0), x.shape[-2:])


def _input_gradient(model: nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
    """The gradient of each image's class score with respect to that image (N × C × H × W)."""
    with torch.enable_grad():
        inputs = inputs.detach().requires_grad_(True)
        return torch.autograd.grad(model(inputs)[:, target].sum(), inputs)[0].detach()


def _prepared(model: nn.Module, x: torch.Tensor, class_index: int | None) -> tuple[torch.Tensor, int]:
    """The image on the model's device, in eval mode, and the class to explain."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise InvalidArgumentError(f"Explain one image at a time (1 × C × H × W), got {tuple(x.shape)}.")
    model.eval()
    x = x.to(model_device(model))
    with torch.no_grad():
        return x, target_class(model(x), class_index)


def saliency(model: nn.Module, x: torch.Tensor, class_index: int | None = None) -> torch.Tensor:
    """Vanilla saliency (C × H × W): the absolute gradient of the class score with respect to each input value."""
    x, target = _prepared(model, x, class_index)
    return _input_gradient(model, x, target)[0].abs().cpu()


def smooth_grad(model: nn.Module, x: torch.Tensor, class_index: int | None = None,
                samples: int = SMOOTHGRAD_SAMPLES, noise_level: float = SMOOTHGRAD_NOISE,
                generator: torch.Generator | None = None, progress: Progress | None = None,
                cancel: threading.Event | None = None) -> torch.Tensor:
    """SmoothGrad (C × H × W): the saliency averaged over ``samples`` copies of the image with Gaussian noise of
    standard deviation ``noise_level`` × the image's range, drawn on the CPU from ``generator``."""
    x, target = _prepared(model, x, class_index)
    stdev = noise_level * float(x.max() - x.min())
    # All the noise at once, in float32: the same draws as Captum's NoiseTunnel from the same seed.
    noise = torch.normal(0.0, torch.full((samples, *x.shape[1:]), stdev), generator=generator)
    total = torch.zeros_like(x[0])
    for start in range(0, samples, GRADIENT_BATCH):
        _step(start, samples, progress, cancel)
        noisy = x + noise[start:start + GRADIENT_BATCH].to(device=x.device, dtype=x.dtype)
        total += _input_gradient(model, noisy, target).abs().sum(0)
    _step(1, 1, progress, cancel)
    return (total / samples).cpu()


def integrated_gradients(model: nn.Module, x: torch.Tensor, class_index: int | None = None, steps: int = IG_STEPS,
                         baseline: torch.Tensor | None = None, progress: Progress | None = None,
                         cancel: threading.Event | None = None) -> torch.Tensor:
    """Integrated gradients (C × H × W) from ``baseline`` (default: zeros, the data set's mean colour after
    normalisation) to the image: (x − baseline) × ∫ ∇ score along the straight path, by Gauss–Legendre
    quadrature with ``steps`` points. The attributions sum to about score(x) − score(baseline)."""
    x, target = _prepared(model, x, class_index)
    baseline = torch.zeros_like(x) if baseline is None else baseline.to(device=x.device, dtype=x.dtype)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.tensor(0.5 * (1 + nodes), dtype=x.dtype, device=x.device)[:, None, None, None]
    step_sizes = torch.tensor(0.5 * weights, dtype=x.dtype, device=x.device)[:, None, None, None]
    total = torch.zeros_like(x[0])
    for start in range(0, steps, GRADIENT_BATCH):
        _step(start, steps, progress, cancel)
        points = baseline + alphas[start:start + GRADIENT_BATCH] * (x - baseline)
        total += (_input_gradient(model, points, target) * step_sizes[start:start + GRADIENT_BATCH]).sum(0)
    _step(1, 1, progress, cancel)
    return ((x - baseline)[0] * total).cpu()


def occlusion_geometry(size: int, positions: int = OCCLUSION_POSITIONS) -> tuple[int, int]:
    """(window, stride) for an input ``size`` pixels square: a window about a seventh of the image, moved so that
    at most ``positions`` places per side (``positions``² forward passes) cover it."""
    window = max(2, round(size / 7))
    if window >= size:
        return size, 1
    stride = min(window, max(1, math.ceil((size - window) / (positions - 1))))
    return window, stride


def _offsets(size: int, window: int, stride: int) -> list[int]:
    """Where the window starts along one side: every ``stride`` pixels, the last one reaching the edge (and past
    it, cut off there, when the stride does not divide the rest; Captum's convention)."""
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, class_index: int | None = None, window: int | None = None,
              stride: int | None = None, baseline: float = 0.0, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> torch.Tensor:
    """Occlusion (H × W): how much the class score drops when a ``window`` × ``window`` square of every channel is
    set to ``baseline``, averaged over the windows that cover each pixel (default window and stride:
    :func:`occlusion_geometry`)."""
    x, target = _prepared(model, x, class_index)
    height, width = x.shape[-2:]
    default_window, default_stride = occlusion_geometry(min(height, width))
    window, stride = window or default_window, stride or default_stride
    if not 0 < window <= min(height, width) or not 0 < stride <= window:
        raise InvalidArgumentError(f"The occlusion window ({window}) must fit the image ({height}×{width}) and the "
                                   f"stride ({stride}) must not exceed it.")
    reference = model(x)[0, target]
    places = [(top, left) for top in _offsets(height, window, stride) for left in _offsets(width, window, stride)]
    total = torch.zeros(height, width, dtype=x.dtype, device=x.device)
    count = torch.zeros_like(total)
    for start in range(0, len(places), BATCH):
        _step(start, len(places), progress, cancel)
        batch = places[start:start + BATCH]
        occluded = x.repeat(len(batch), 1, 1, 1)
        for i, (top, left) in enumerate(batch):
            occluded[i, :, top:top + window, left:left + window] = baseline
        drops = reference - model(occluded)[:, target]
        for drop, (top, left) in zip(drops, batch, strict=True):
            total[top:top + window, left:left + window] += drop
            count[top:top + window, left:left + window] += 1
    _step(1, 1, progress, cancel)
    return (total / count).cpu()


def pixel_map(attribution: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """An attribution (C × H × W, or H × W) as a heat map in [0, 1]: gradients by their largest absolute value
    over the channels (Simonyan et al.); ``signed`` ones (integrated gradients) by the absolute value of their
    sum over the channels, as Captum draws them. Scaled to the 99th percentile, so a few pixels do not make the
    rest black."""
    if attribution.dim() == 3:
        attribution = attribution.sum(0) if signed else attribution.abs().amax(0)
    values = attribution.abs().float()
    top = torch.quantile(values.flatten(), 0.99) if values.numel() > 1 else values.max()
    if top <= 0:
        top = values.max()
    return (values / top).clamp(0, 1) if top > 0 else values


def heat_map(method: str, model: nn.Module, x: torch.Tensor, layer: str, class_index: int | None = None,
             progress: Progress | None = None, cancel: threading.Event | None = None) -> torch.Tensor:
    """The heat map (H × W of the input, in [0, 1]) of ``method`` (a name in :data:`METHODS`) for
    ``class_index`` (default: the top class); ``layer`` is used by the class activation maps only."""
    if method not in METHODS:
        raise InvalidArgumentError(f"Unknown explanation method {method!r}; choose one of {', '.join(METHODS)}.")
    if method == "Grad-CAM":
        return grad_cam(model, x, layer, class_index)
    if method == "Grad-CAM++":
        return grad_cam_plus_plus(model, x, layer, class_index)
    if method == "Score-CAM":
        return score_cam(model, x, layer, class_index, progress=progress, cancel=cancel)
    if method == "Saliency":
        return pixel_map(saliency(model, x, class_index))
    if method == "SmoothGrad":
        return pixel_map(smooth_grad(model, x, class_index, generator=torch.Generator().manual_seed(0),
                                     progress=progress, cancel=cancel))
    if method == "Integrated gradients":
        return pixel_map(integrated_gradients(model, x, class_index, progress=progress, cancel=cancel), signed=True)
    # Occlusion: only where hiding the place lowers the score is evidence for the class.
    return pixel_map(F.relu(occlusion(model, x, class_index, progress=progress, cancel=cancel)))
