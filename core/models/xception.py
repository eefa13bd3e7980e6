"""Xception (Chollet, 2017): Inception taken to the extreme with depthwise separable convolutions.

Entry flow, middle flow and exit flow are one table of blocks. Module names follow
timm's ``legacy_xception`` so that the public ImageNet weights (ported from Keras)
load unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, check_model_args, init_conv_batchnorm


class SeparableConv2d(nn.Module):
    """Depthwise k×k convolution (one filter per channel), then a pointwise 1×1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class Block(DeclaredBlock):
    """``reps`` × (ReLU → separable 3×3 → batch norm), an optional strided max-pool, and a skip connection."""

    merge = "add"

    def __init__(self, in_channels: int, out_channels: int, reps: int, stride: int = 1,
                 start_with_relu: bool = True, grow_first: bool = True) -> None:
        super().__init__()
        self.skip: nn.Conv2d | None = None  # the identity unless the shape changes
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        # Where the width changes: on the first separable conv ("grow first") or the last.
        widths = [out_channels] * reps if grow_first else [in_channels] * (reps - 1) + [out_channels]
        layers: list[nn.Module] = []
        channels = in_channels
        for i, width in enumerate(widths):
            if i > 0 or start_with_relu:
                # The first ReLU must not work in place: the skip connection still needs the input.
                layers.append(nn.ReLU(inplace=i > 0))
            layers += [SeparableConv2d(channels, width), nn.BatchNorm2d(width)]
            channels = width
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rep(x)
        out += x if self.skip is None else self.skipbn(self.skip(x))
        return out


class BlockPlan(NamedTuple):
    """One row of the architecture table."""

    in_channels: int
    out_channels: int
    reps: int
    stride: int
    start_with_relu: bool = True
    grow_first: bool = True


# Entry flow (3 blocks), middle flow (8 identical blocks), exit flow (1 block); figure 5 of the paper.
BLOCKS: list[BlockPlan] = [
    BlockPlan(64, 128, 2, 2, start_with_relu=False),  # N x 128 x 74 x 74
    BlockPlan(128, 256, 2, 2),  # N x 256 x 37 x 37
    BlockPlan(256, 728, 2, 2),  # N x 728 x 19 x 19
    *[BlockPlan(728, 728, 3, 1)] * 8,  # middle flow, N x 728 x 19 x 19
    BlockPlan(728, 1024, 2, 2, grow_first=False),  # N x 1024 x 10 x 10
]


class Xception(ExplorerModel):
    """Two plain convolutions, twelve separable blocks, two separable convolutions, global pool, dense."""

    classifier_name = "fc"
    stages = (("entry", "block3"), ("middle", "block11"), ("exit", "act4"))
    num_features = 2048

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=2, bias=False)  # N x 32 x 149 x 149
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)  # N x 64 x 147 x 147
        self.bn2 = nn.BatchNorm2d(64)
        self.act2 = nn.ReLU(inplace=True)
        self.block_names = [f"block{i}" for i in range(1, len(BLOCKS) + 1)]
        for name, plan in zip(self.block_names, BLOCKS, strict=True):
            self.add_module(name, Block(*plan))
        self.conv3 = SeparableConv2d(1024, 1536)  # N x 1536 x 10 x 10
        self.bn3 = nn.BatchNorm2d(1536)
        self.act3 = nn.ReLU(inplace=True)
        self.conv4 = SeparableConv2d(1536, 2048)  # N x 2048 x 10 x 10
        self.bn4 = nn.BatchNorm2d(2048)
        self.act4 = nn.ReLU(inplace=True)
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
        init_conv_batchnorm(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the N × 2048 × 10 × 10 map (at 299×299) after the exit flow."""
        x = self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))
        for name in self.block_names:
            x = getattr(self, name)(x)
        x = self.act3(self.bn3(self.conv3(x)))
        return self.act4(self.bn4(self.conv4(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, then the dense layer."""
        x = torch.flatten(self.global_pool(x), 1)  # N x 2048
        return x if pre_logits else self.fc(x)


def xception(num_classes: int = 1000, in_channels: int = 3) -> Xception:
    """Build Xception."""
    return Xception(num_classes=num_classes, in_channels=in_channels)
