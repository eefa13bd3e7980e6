"""Every model's receptive field, proven against an independent measurement: the input-gradient footprint.

With every weight a positive constant, biases zero, batch norm the identity and max-pooling replaced by
average pooling (max routes the gradient of ties to one input), the network is linear and positive on a
positive input: the gradient of one output position reaches exactly the input pixels in its receptive field.
The analysis propagates fields symbolically on the meta device; this measures them with real arithmetic.

To keep it quick, each axis is measured on an input that is tall along that axis (the field plus a margin)
and as narrow as the model accepts along the other: kernels, padding and pooling are products of a row and a
column part, so the rows a gradient reaches do not depend on how many columns there are.

The narrow side is at least ``NARROW`` pixels: on a 1-pixel-wide input most of each kernel's mass falls on
padding, and in float32 the gradient of ResNet-152's outermost pixels (a path through ~50 3×3 kernels)
underflows to zero, measuring 1419 px instead of 1451; 32 pixels keep it well inside float32's range.
Minutes on two busy CPU cores, hence ``slow`` (``-m "not slow"`` skips it).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import models
from core.analysis import summarize
from core.models.registry import input_size_range
from tests.conftest import NAMES

MARGIN = 32  # input pixels on each side of the field: the footprint must not touch the border
NARROW = 32  # the short side of the input, at least


def _linearised(name: str) -> nn.Module:
    """Model ``name`` with constant positive weights (1/fan-in, so values stay near 1 in float32), zero biases,
    identity batch norm in eval mode and average pooling where it max-pools."""
    model = models.build(name)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode))
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


def _footprint(model: nn.Module, channels: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) the gradient of the central output position reaches."""
    x = torch.ones(1, channels, height, width, requires_grad=True)
    features = model.forward_features(x)
    features[0, :, features.shape[2] // 2, features.shape[3] // 2].sum().backward()
    reached = x.grad[0].abs().sum(0) != 0
    rows, columns = reached.any(1).nonzero().flatten(), reached.any(0).nonzero().flatten()
    return int(rows.min()), int(rows.max()), int(columns.min()), int(columns.max())


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_receptive_field_equals_the_measured_gradient_footprint(name: str) -> None:
    height, width = summarize(name).receptive_field
    assert height == width  # every registered network is square, so is its field
    model = _linearised(name)
    channels, narrow = models.spec(name).in_channels, max(input_size_range(name)[0], NARROW)
    tall = height + 2 * MARGIN
    top, bottom, _, _ = _footprint(model, channels, tall, narrow)
    _, _, left, right = _footprint(model, channels, narrow, tall)
    assert 0 < top and bottom < tall - 1 and 0 < left and right < tall - 1, "the input clips the field: enlarge it"
    assert (bottom - top + 1, right - left + 1) == (height, width)


def test_inception_v3_sees_1311_pixels_square() -> None:
    """The figure the Distill article "Computing Receptive Fields of CNNs" (2019) publishes for Inception-v3."""
    assert summarize("inception_v3").receptive_field == (1311, 1311)
