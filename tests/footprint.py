"""The input-gradient footprint: an independent measurement of a model's receptive field (shared by tests).

With every weight a positive constant, biases zero, batch norm the identity and max-pooling replaced by
average pooling, the network is linear and positive on a positive input: the gradient of one output
position reaches exactly the input pixels in its receptive field.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core import models
from core.models.efficientnet import ChannelMean

MARGIN = 32  # input pixels on each side of the field: the footprint must not touch the border
NARROW = 32  # the short side of the input, at least


class DetachedChannelMean(nn.Module):
    """Squeeze-and-excitation's channel mean, cut from the graph: its scale reaches every pixel, and the field
    measured is the convolutions' (the analysis's definition)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True).detach()


def _standard_swap(child: nn.Module) -> nn.Module | None:
    """Average pooling for max pooling (max routes the gradient of ties to one input), ReLU for ReLU6 (a positive
    path above 6 would stop the gradient), a detached squeeze-and-excitation mean."""
    if isinstance(child, nn.MaxPool2d):
        return nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode)
    if isinstance(child, nn.ReLU6):
        return nn.ReLU()
    if isinstance(child, ChannelMean):
        return DetachedChannelMean()
    return None


def linearise(model: nn.Module, swap: Callable[[nn.Module], nn.Module | None] | None = None) -> nn.Module:
    """``model`` with constant positive weights (1/fan-in, so values stay near 1 in float32), zero biases,
    identity batch norm in eval mode and the standard swaps (``_standard_swap``); ``swap`` may replace any
    other child first (it returns the replacement, or None to keep the child)."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            replacement = swap(child) if swap is not None else None
            if replacement is None:
                replacement = _standard_swap(child)
            if replacement is not None:
                setattr(parent, child_name, replacement)
            elif swap is not None and (replacement := swap(child)) is not None:
                setattr(parent, child_name, replacement)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.constant_(module.weight, 1.0 / module.weight[0].numel())
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) for m in model.modules())
    return model.eval()


def linearised(name: str) -> nn.Module:
    """Registered model ``name``, linearised (see ``linearise``)."""
    return linearise(models.build(name))


def footprint(model: nn.Module, channels: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) the gradient of the central output position reaches."""
    x = torch.ones(1, channels, height, width, requires_grad=True)
    features = model.forward_features(x)
    features[0, :, features.shape[2] // 2, features.shape[3] // 2].sum().backward()
    assert x.grad is not None
    reached = x.grad[0].abs().sum(0) != 0
    rows, columns = reached.any(1).nonzero().flatten(), reached.any(0).nonzero().flatten()
    return int(rows.min()), int(rows.max()), int(columns.min()), int(columns.max())
