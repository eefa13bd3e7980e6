"""MobileNetV2 (Sandler et al., 2018): inverted residuals with linear bottlenecks.

Module names follow torchvision's (``features.0.0.weight`` …) so that its ImageNet weights
load unchanged. The stage table is table 2 of the paper.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, check_model_args


class ConvNormActivation(nn.Sequential):
    """k×k convolution (no bias, "same" padding) → batch norm → activation (none for a linear bottleneck).

    A ``Sequential``, as torchvision's ``Conv2dNormActivation``: its parts are named ``0``, ``1``, ``2``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: type[nn.Module] | None = nn.ReLU6) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class InvertedResidual(DeclaredBlock):
    """1×1 expansion (×t) → 3×3 depthwise → 1×1 linear projection; a skip connection when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.residual = stride == 1 and in_channels == out_channels  # y = F(x) + x only where shapes agree
        self.merge = "add" if self.residual else "none"
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormActivation(in_channels, hidden, kernel_size=1))  # N x t·C x H x W
        layers += [
            ConvNormActivation(hidden, hidden, stride=stride, groups=hidden),  # depthwise, N x t·C x H/s x W/s
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # linear bottleneck: no ReLU6 after the projection
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class StagePlan(NamedTuple):
    """One row of table 2: expansion t, output channels c, repeats n, first stride s."""

    expand_ratio: int
    out_channels: int
    repeats: int
    stride: int


STAGES: list[StagePlan] = [
    StagePlan(1, 16, 1, 1),  # N x 16 x 112 x 112
    StagePlan(6, 24, 2, 2),  # N x 24 x 56 x 56
    StagePlan(6, 32, 3, 2),  # N x 32 x 28 x 28
    StagePlan(6, 64, 4, 2),  # N x 64 x 14 x 14
    StagePlan(6, 96, 3, 1),  # N x 96 x 14 x 14
    StagePlan(6, 160, 3, 2),  # N x 160 x 7 x 7
    StagePlan(6, 320, 1, 1),  # N x 320 x 7 x 7
]
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class MobileNetV2(ExplorerModel):
    """3×3 stem, seventeen inverted residual blocks, 1×1 convolution to 1280, global pool, dropout, dense."""

    classifier_name = "classifier.1"
    num_features = LAST_CHANNELS

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        layers: list[nn.Module] = [ConvNormActivation(in_channels, STEM_CHANNELS, stride=2)]  # N x 32 x 112 x 112
        stage_ends: list[str] = []
        channels = STEM_CHANNELS
        for plan in STAGES:
            for i in range(plan.repeats):
                layers.append(InvertedResidual(channels, plan.out_channels, plan.stride if i == 0 else 1,
                                               plan.expand_ratio))
                channels = plan.out_channels
            stage_ends.append(f"features.{len(layers) - 1}")
        layers.append(ConvNormActivation(channels, LAST_CHANNELS, kernel_size=1))  # N x 1280 x 7 x 7
        self.features = nn.Sequential(*layers)
        self.stages = (("stem", "features.0"),
                       *((f"{plan.out_channels} channels", end) for plan, end in zip(STAGES, stage_ends, strict=True)),
                       ("1×1 to 1280", f"features.{len(layers) - 1}"))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(LAST_CHANNELS, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the N × 1280 × 7 × 7 map (at 224×224) after the last 1×1 convolution."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, dense."""
        x = torch.flatten(self.avgpool(x), 1)  # N x 1280
        return self.classifier[0](x) if pre_logits else self.classifier(x)


def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3) -> MobileNetV2:
    """Build MobileNetV2 (width multiplier 1.0)."""
    return MobileNetV2(num_classes=num_classes, in_channels=in_channels)
