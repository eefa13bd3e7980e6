"""What a filter looks for: activation maximisation in the Lucid manner (Olah et al., 2017, "Feature
Visualization").

The image is parametrised in the Fourier domain, its spectrum scaled by 1/frequency so that every frequency
starts equally easy to change (Lucid's ``fft_image``: a frequency regularisation in the parametrisation), and
squashed into [0, 1] by a sigmoid. Each of a few hundred Adam steps sees it jittered (a random shift) and
rescaled (a random zoom), so the pattern found is one the channel answers to wherever and at whatever size it
appears, not a high-frequency adversarial texture. The objective is the mean activation of one channel of one
module's output.

Pure PyTorch: ``progress`` (a fraction in [0, 1]) and ``cancel`` (checked before every step, raising
:class:`CancelledError`) as in ``core.attributions``. The model's weights are never changed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import CancelledError, InvalidArgumentError

Progress = Callable[[float], None]

STEPS = 256  # Adam steps per channel
LEARNING_RATE = 0.05
DECAY = 1.0  # the spectrum's 1/f^decay scaling
JITTER = 0.08  # the largest shift, as a share of the image's side
SCALES = (0.9, 1.1)  # the random zoom's range


@dataclass(frozen=True)
class Visualisation:
    """The image a channel responds to most (C × H × W in [0, 1]) and its activation at the last step."""

    image: torch.Tensor
    activation: float


def _frequencies(size: int) -> torch.Tensor:
    """The spatial frequency of each entry of a size × size real FFT's spectrum."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FourierImage(nn.Module):
    """An image parametrised by its spectrum, scaled by 1/frequency^``decay`` (Lucid's ``fft_image``)."""

    def __init__(self, channels: int, size: int, decay: float = DECAY, generator: torch.Generator | None = None):
        super().__init__()
        spectrum = torch.randn(channels, size, size // 2 + 1, 2, generator=generator) * 0.01
        self.spectrum = nn.Parameter(spectrum)
        scale = 1.0 / torch.clamp(_frequencies(size), min=1.0 / size) ** decay
        self.register_buffer("scale", scale / scale.mean())
        self.size = size

    def forward(self) -> torch.Tensor:
        """The image, C × H × W in [0, 1]."""
        spectrum = torch.view_as_complex(self.spectrum) * cast(torch.Tensor, self.scale)
        pixels = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        return torch.sigmoid(pixels * 4)


def _transform(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random shift (jitter) and zoom of a 1 × C × H × W batch, back to its size."""
    size = image.shape[-1]
    low, high = SCALES
    factor = low + (high - low) * float(torch.rand((), generator=generator))
    scaled = F.interpolate(image, scale_factor=factor, mode="bilinear", align_corners=False)
    scaled = F.interpolate(scaled, size=(size, size), mode="bilinear", align_corners=False) if factor < 1 else \
        scaled[..., :size, :size]
    reach = max(1, round(JITTER * size))
    dy, dx = (int(v) for v in torch.randint(-reach, reach + 1, (2,), generator=generator))
    return torch.roll(scaled, shifts=(dy, dx), dims=(-2, -1))


def module(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` of ``model``; InvalidArgumentError naming the choices when there is none."""
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise InvalidArgumentError(f"{type(model).__name__} has no layer {name!r}.")
    return modules[name]


def channel_activation(model: nn.Module, layer: str, channel: int, inputs: torch.Tensor,
                       centre: bool = False) -> torch.Tensor:
    """The mean activation of ``channel`` of ``layer``'s output (``centre``: at its centre position only, Lucid's
    "neuron" objective), one value per input (gradients kept)."""
    captured: list[torch.Tensor] = []

    def reduce(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        # Reduced here, before an in-place activation that follows can change the output.
        if output.dim() < 2 or not 0 <= channel < output.shape[1]:
            raise InvalidArgumentError(f"layer {layer!r} has {output.shape[1] if output.dim() > 1 else 0} "
                                       f"channels; there is no channel {channel}.")
        values = output[:, channel]
        if centre and values.dim() == 3:
            values = values[:, values.shape[1] // 2, values.shape[2] // 2]
        captured.append(values.reshape(len(output), -1).mean(1))

    handle = module(model, layer).register_forward_hook(reduce)
    try:
        model(inputs)
    finally:
        handle.remove()
    return captured[0]


def visualise(model: nn.Module, layer: str, channel: int, size: int, in_channels: int, mean: Sequence[float],
              std: Sequence[float], steps: int = STEPS, seed: int = 0, progress: Progress | None = None,
              cancel: threading.Event | None = None, centre: bool = False) -> Visualisation:
    """The image that ``channel`` of ``layer`` answers to most, found by ``steps`` Adam steps.

    ``mean``/``std`` normalise the image as the model's training data were normalised; ``centre`` maximises the
    channel at the centre position only (what one unit sees) instead of its mean over the map.
    """
    if not 1 <= steps <= 4096 or size < 4:
        raise InvalidArgumentError("feature visualisation needs 1–4096 steps and an image of at least 4 px.")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    image = FourierImage(in_channels, size, generator=generator).to(device)
    shift = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    spread = torch.tensor(std, device=device).view(1, -1, 1, 1)
    optimiser = torch.optim.Adam(image.parameters(), lr=LEARNING_RATE)
    was_training = model.training
    model.eval()
    trains = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in trains:
        p.requires_grad_(False)  # only the image learns
    activation = torch.zeros(())
    try:
        for step in range(steps):
            if cancel is not None and cancel.is_set():
                raise CancelledError("the feature visualisation was cancelled")
            if progress is not None:
                progress(step / steps)
            optimiser.zero_grad(set_to_none=True)
            seen = _transform(image()[None], generator)
            activation = channel_activation(model, layer, channel, (seen - shift) / spread, centre)[0]
            (-activation).backward()
            optimiser.step()
    finally:
        model.train(was_training)
        for p, flag in trains:
            p.requires_grad_(flag)
    if progress is not None:
        progress(1.0)
    return Visualisation(image=image().detach().cpu(), activation=float(activation.detach()))


def patch_correlation(image: torch.Tensor, weight: torch.Tensor) -> float:
    """The Pearson correlation of a first-layer filter ``weight`` (C × k × k) with the patch of ``image``
    (C × H × W) where the filter answers most: how much the image shows the filter's own pattern."""
    k = weight.shape[-1]
    patches = F.unfold(image[None], k)[0].T  # positions × (C·k·k)
    w = weight.reshape(-1)
    best = patches[int((patches @ w).argmax())]
    a, b = best - best.mean(), w - w.mean()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 and math.isfinite(denominator) else 0.0
