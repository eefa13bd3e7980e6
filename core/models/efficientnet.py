"""EfficientNet-B0 (Tan & Le, 2019): MBConv blocks with squeeze-and-excitation, found by architecture search.

B0 is the baseline the compound scaling (depth, width, resolution) grows into B1–B7. Module names
follow torchvision's so that its ImageNet weights load unchanged; the stage table is table 1 of the paper.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, check_model_args
from core.models.mobilenet import ConvNormActivation


class ChannelMean(nn.Module):
    """Mean of each channel over the map, kept as N × C × 1 × 1: the "squeeze" of squeeze-and-excitation.

    Not an ``nn.AdaptiveAvgPool2d``: the layer analysis takes the first of those as the entry to the
    classifier head (where the feature map ends), and this one sits inside the first block.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class SqueezeExcitation(nn.Module):
    """Channel mean → 1×1 squeeze (SiLU) → 1×1 excite (sigmoid) → rescale each channel of the input.

    The squeeze sees the whole map, so strictly every output depends on every input pixel; the
    receptive field the explorer reports is that of the convolutions (the scale is one number per
    channel, it moves no pattern), as the receptive-field literature counts it for this network.
    """

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = ChannelMean()  # N x C x 1 x 1
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class StochasticDepth(nn.Module):
    """In training, drop the residual branch of a whole sample with probability ``p`` (Huang et al., 2016).

    The survivors are scaled by 1/(1 − p), so evaluation (which keeps every branch) sees the same mean.
    The random draw is torchvision's (one Bernoulli per sample), so one seed gives both the same masks.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        keep = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * keep.div_(survival) if survival > 0.0 else x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(DeclaredBlock):
    """1×1 expansion (×t, SiLU) → k×k depthwise (SiLU) → squeeze-and-excitation → 1×1 linear projection;
    a stochastically dropped skip connection when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int,
                 drop_probability: float) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.residual = stride == 1 and in_channels == out_channels
        self.merge = "add" if self.residual else "none"
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(ConvNormActivation(in_channels, hidden, kernel_size=1, activation=nn.SiLU))
        layers += [
            ConvNormActivation(hidden, hidden, kernel_size, stride, groups=hidden, activation=nn.SiLU),  # depthwise
            SqueezeExcitation(hidden, max(1, in_channels // 4)),  # squeeze to a quarter of the block's input
            ConvNormActivation(hidden, out_channels, kernel_size=1, activation=None),  # linear bottleneck
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_probability)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.residual:
            out = self.stochastic_depth(out) + x  # y = F(x) + x, F dropped at random in training
        return out


class StagePlan(NamedTuple):
    """One row of table 1: expansion t, kernel k, first stride s, input and output channels, repeats."""

    expand_ratio: int
    kernel_size: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int


STAGES: list[StagePlan] = [
    StagePlan(1, 3, 1, 32, 16, 1),  # MBConv1 3×3, N x 16 x 112 x 112
    StagePlan(6, 3, 2, 16, 24, 2),  # MBConv6 3×3, N x 24 x 56 x 56
    StagePlan(6, 5, 2, 24, 40, 2),  # MBConv6 5×5, N x 40 x 28 x 28
    StagePlan(6, 3, 2, 40, 80, 3),  # MBConv6 3×3, N x 80 x 14 x 14
    StagePlan(6, 5, 1, 80, 112, 3),  # MBConv6 5×5, N x 112 x 14 x 14
    StagePlan(6, 5, 2, 112, 192, 4),  # MBConv6 5×5, N x 192 x 7 x 7
    StagePlan(6, 3, 1, 192, 320, 1),  # MBConv6 3×3, N x 320 x 7 x 7
]
LAST_CHANNELS = 1280  # 4 × 320


class EfficientNet(ExplorerModel):
    """3×3 stem, seven stages of MBConv blocks, 1×1 convolution to 1280, global pool, dropout, dense."""

    classifier_name = "classifier.1"
    num_features = LAST_CHANNELS
    stages = (("stem", "features.0"), *((f"stage {i}", f"features.{i}") for i in range(1, len(STAGES) + 1)),
              ("1×1 to 1280", f"features.{len(STAGES) + 1}"))

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 stochastic_depth_prob: float = 0.2) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        layers: list[nn.Module] = [
            ConvNormActivation(in_channels, STAGES[0].in_channels, stride=2, activation=nn.SiLU),  # N x 32 x 112 x 112
        ]
        total_blocks = sum(plan.repeats for plan in STAGES)
        block_index = 0
        for plan in STAGES:
            blocks: list[nn.Module] = []
            for i in range(plan.repeats):
                # The drop probability grows linearly with depth, from 0 to just under stochastic_depth_prob.
                drop = stochastic_depth_prob * block_index / total_blocks
                blocks.append(MBConv(plan.in_channels if i == 0 else plan.out_channels, plan.out_channels,
                                     plan.kernel_size, plan.stride if i == 0 else 1, plan.expand_ratio, drop))
                block_index += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(ConvNormActivation(STAGES[-1].out_channels, LAST_CHANNELS, kernel_size=1,
                                         activation=nn.SiLU))  # N x 1280 x 7 x 7
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(LAST_CHANNELS, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / module.out_features ** 0.5
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the N × 1280 × 7 × 7 map (at 224×224) after the last 1×1 convolution."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, dense."""
        x = torch.flatten(self.avgpool(x), 1)  # N x 1280
        return self.classifier[0](x) if pre_logits else self.classifier(x)


def efficientnet_b0(num_classes: int = 1000, in_channels: int = 3) -> EfficientNet:
    """Build EfficientNet-B0."""
    return EfficientNet(num_classes=num_classes, in_channels=in_channels)
