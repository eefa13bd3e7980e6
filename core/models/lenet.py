"""LeNet-5 (LeCun et al., 1998), the modern ReLU/max-pool version taught in courses."""

from __future__ import annotations

import torch
from torch import nn

from core.models.base import ExplorerModel, check_model_args


class LeNet5(ExplorerModel):
    """Three convolutions and two dense layers for 28×28 digits.

    The paper fed 32×32 images; MNIST digits are 28×28, so conv1 pads by 2 to keep
    the 28×28 map and conv3's 5×5 kernel then sees exactly a 5×5 map (→ 1×1×120).
    """

    classifier_name = "classifier.3"
    stages = (("conv1", "features.2"), ("conv2", "features.5"), ("conv3", "features.7"))
    num_features = 120

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),  # N x 6 x 28 x 28
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # N x 6 x 14 x 14
            nn.Conv2d(6, 16, kernel_size=5),  # N x 16 x 10 x 10
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # N x 16 x 5 x 5
            nn.Conv2d(16, 120, kernel_size=5),  # N x 120 x 1 x 1
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # N x 120
            nn.Linear(120, 84),  # N x 84
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),  # N x num_classes
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return conv3's N × 120 × 1 × 1 map."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten and apply the dense layers."""
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """Build LeNet-5."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
