"""ResNet (He et al., 2015): residual blocks stacked in four stages."""

from __future__ import annotations

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, check_model_args, init_conv_batchnorm


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution with padding 1 and no bias (batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution with no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(DeclaredBlock):
    """Two 3×3 convolutions and a skip connection (ResNet-18/34)."""

    expansion = 1
    merge = "add"

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.downsample is None else self.downsample(x)  # y = F(x) + x
        return self.relu(out)


class Bottleneck(DeclaredBlock):
    """1×1 reduce → 3×3 → 1×1 expand, and a skip connection (ResNet-50/101/152).

    The stride sits on the 3×3 convolution, as in torchvision ("ResNet v1.5").
    """

    expansion = 4
    merge = "add"

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)  # y = F(x) + x
        return self.relu(out)


# Block type and the number of blocks in each of the four stages.
STAGE_PLANS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


class ResNet(ExplorerModel):
    """Stem (7×7 conv, max-pool), four residual stages, global average pool, one dense layer."""

    classifier_name = "fc"
    stages = (("stem", "maxpool"), ("layer1", "layer1"), ("layer2", "layer2"), ("layer3", "layer3"), ("layer4", "layer4"))

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], blocks_per_stage: list[int],
                 num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        check_model_args(num_classes, in_channels)
        self._width_in = 64  # channels entering the next stage, while building
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)  # N x 64 x 112 x 112
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # N x 64 x 56 x 56
        self.layer1 = self._make_stage(block, 64, blocks_per_stage[0], stride=1)  # N x 64·e x 56 x 56
        self.layer2 = self._make_stage(block, 128, blocks_per_stage[1], stride=2)  # N x 128·e x 28 x 28
        self.layer3 = self._make_stage(block, 256, blocks_per_stage[2], stride=2)  # N x 256·e x 14 x 14
        self.layer4 = self._make_stage(block, 512, blocks_per_stage[3], stride=2)  # N x 512·e x 7 x 7
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        init_conv_batchnorm(self)

    def _make_stage(self, block: type[BasicBlock] | type[Bottleneck], width: int, count: int, stride: int) -> nn.Sequential:
        """``count`` blocks; the first changes resolution/width and gets a projection shortcut if needed."""
        downsample = None
        if stride != 1 or self._width_in != width * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self._width_in, width * block.expansion, stride),
                nn.BatchNorm2d(width * block.expansion),
            )
        blocks = [block(self._width_in, width, stride, downsample)]
        self._width_in = width * block.expansion
        blocks += [block(self._width_in, width) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return layer4's map (N × 512·expansion × 7 × 7 at 224×224)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, then the dense layer."""
        x = torch.flatten(self.avgpool(x), 1)  # N x 512·expansion
        return x if pre_logits else self.fc(x)


def _builder(name: str):
    block, plan = STAGE_PLANS[name]

    def build(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
        return ResNet(block, plan, num_classes=num_classes, in_channels=in_channels)

    build.__name__ = name
    build.__doc__ = f"Build {name}: {block.__name__} blocks, {'+'.join(map(str, plan))} per stage."
    return build


resnet18 = _builder("resnet18")
resnet34 = _builder("resnet34")
resnet50 = _builder("resnet50")
resnet101 = _builder("resnet101")
resnet152 = _builder("resnet152")
