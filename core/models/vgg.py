"""VGG (Simonyan & Zisserman, 2014): the whole family is one table of layer lists."""

from __future__ import annotations

import torch
from torch import nn

from core.models.base import ExplorerModel, check_model_args, dense_classifier

# Numbers are 3×3 convolutions (output channels), "M" a 2×2 max-pool of stride 2.
CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(config: list[int | str], in_channels: int) -> nn.Sequential:
    """Turn a config list into the ``features`` stack (conv → ReLU, and pools)."""
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(item)
    return nn.Sequential(*layers)


def _stages(config: list[int | str]) -> tuple[tuple[str, str], ...]:
    """One stage per block, each ending at its max-pool's index in ``features``."""
    stages: list[tuple[str, str]] = []
    index = 0
    for item in config:
        index += 1 if item == "M" else 2
        if item == "M":
            stages.append((f"block{len(stages) + 1}", f"features.{index - 1}"))
    return tuple(stages)


class VGG(ExplorerModel):
    """Stacks of 3×3 convolutions, five max-pools, three dense layers."""

    classifier_name = "classifier.6"
    num_features = 512

    def __init__(self, config: list[int | str], num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        check_model_args(num_classes, in_channels)
        self.stages = _stages(config)
        self.features = make_layers(config, in_channels)  # N x 512 x 7 x 7 at 224×224
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))  # a no-op at 224×224, as in torchvision
        self.classifier = dense_classifier(512 * 7 * 7, num_classes, dropout=dropout)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:  # every convolution here has one
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the map after the fifth max-pool."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool to 7×7, flatten, apply the dense layers."""
        x = torch.flatten(self.avgpool(x), 1)  # N x 25088
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def vgg16(num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """Build VGG-16 (configuration D)."""
    return VGG(CONFIGS["vgg16"], num_classes=num_classes, in_channels=in_channels)


def vgg19(num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """Build VGG-19 (configuration E)."""
    return VGG(CONFIGS["vgg19"], num_classes=num_classes, in_channels=in_channels)
