"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012): the paper's network on one GPU.

Torchvision's ``alexnet`` is the later "one weird trick" variant (64-192-384-256-256
filters, no LRN, 61,100,840 parameters); this is the paper's 96-256-384-384-256
network with local response normalisation, as the course notes describe it.
"""

from __future__ import annotations

import torch
from torch import nn

from core.models.base import ExplorerModel, check_model_args, dense_classifier


def _lrn() -> nn.LocalResponseNorm:
    """The paper's local response normalisation: n=5, α=1e-4, β=0.75, k=2."""
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


class AlexNet(ExplorerModel):
    """Five convolutions, three dense layers, 227×227 input."""

    classifier_name = "classifier.6"
    stages = (("conv1", "features.3"), ("conv2", "features.7"), ("conv3-5", "features.14"))
    num_features = 256

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=4),  # N x 96 x 55 x 55
            nn.ReLU(inplace=True),
            _lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 96 x 27 x 27 (overlapping pooling)
            nn.Conv2d(96, 256, kernel_size=5, padding=2),  # N x 256 x 27 x 27
            nn.ReLU(inplace=True),
            _lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 256 x 13 x 13
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # N x 384 x 13 x 13
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),  # N x 384 x 13 x 13
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # N x 256 x 13 x 13
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # N x 256 x 6 x 6
        )
        # Not in the paper: a no-op at 227×227 that lets other sizes reach the dense layers.
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = dense_classifier(256 * 6 * 6, num_classes, dropout=dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the N × 256 × 6 × 6 map after pool5."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool to 6×6, flatten, apply the dense layers."""
        x = torch.flatten(self.avgpool(x), 1)  # N x 9216
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def alexnet(num_classes: int = 1000, in_channels: int = 3) -> AlexNet:
    """Build the paper's AlexNet."""
    return AlexNet(num_classes=num_classes, in_channels=in_channels)
