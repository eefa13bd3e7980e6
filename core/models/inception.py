"""Inception-v3 (Szegedy et al., 2015): factorised convolutions in parallel branches.

Module names follow torchvision's so that its ImageNet weights load unchanged.
Every pooling is a module (not a function call), so the layer analysis sees it.
"""

from __future__ import annotations

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, ModelOutput, check_model_args


class BasicConv2d(nn.Module):
    """Convolution (no bias) → batch norm (ε = 0.001) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_args) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_args)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def init_truncated_normal(model: nn.Module, std: float) -> None:
    """Google's initialisation, as torchvision ports it: weights from a normal truncated at ±2, batch norm the
    identity."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2, b=2)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def imagenet_to_signed_unit(x: torch.Tensor) -> torch.Tensor:
    """Map ImageNet normalisation (mean/std) to Google's [-1, 1] scaling, which its ported weights expect."""
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * std + mean - 0.5) / 0.5


class InceptionA(DeclaredBlock):
    """35×35 module: 1×1, 5×5, double 3×3 and pool branches (figure 5 of the paper)."""

    merge = "concat"

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool_avg = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(self.branch_pool_avg(x)),
        ]
        return torch.cat(branches, 1)  # N x (224 + pool_features) x 35 x 35


class InceptionB(DeclaredBlock):
    """Grid reduction 35×35 → 17×17: strided 3×3, strided double 3×3, max-pool."""

    merge = "concat"

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)
        self.branch_pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(x),
        ]
        return torch.cat(branches, 1)  # N x 768 x 17 x 17


class InceptionC(DeclaredBlock):
    """17×17 module: 7×7 convolutions factorised into 1×7 and 7×1 (figure 6)."""

    merge = "concat"

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool_avg = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = conv(double)
        branches = [self.branch1x1(x), seven, double, self.branch_pool(self.branch_pool_avg(x))]
        return torch.cat(branches, 1)  # N x 768 x 17 x 17


class InceptionD(DeclaredBlock):
    """Grid reduction 17×17 → 8×8."""

    merge = "concat"

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)
        self.branch_pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = conv(seven)
        branches = [self.branch3x3_2(self.branch3x3_1(x)), seven, self.branch_pool(x)]
        return torch.cat(branches, 1)  # N x 1280 x 8 x 8


class InceptionE(DeclaredBlock):
    """8×8 module with expanded 1×3 / 3×1 branches (figure 7)."""

    merge = "concat"

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool_avg = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], 1)
        branches = [self.branch1x1(x), three, double, self.branch_pool(self.branch_pool_avg(x))]
        return torch.cat(branches, 1)  # N x 2048 x 8 x 8


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17×17 grid, used only in training."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)  # N x 768 x 5 x 5
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)  # N x 768 x 1 x 1
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(torch.flatten(self.global_pool(x), 1))


class Inception3(ExplorerModel):
    """Stem, 3 × A, B, 4 × C, D, 2 × E, global pool, dropout, dense; 299×299 input."""

    classifier_name = "fc"
    auxiliary_classifier_names: tuple[str, ...] = ("AuxLogits.fc",)
    stages = (("stem", "maxpool2"), ("35×35", "Mixed_5d"), ("17×17", "Mixed_6e"), ("8×8", "Mixed_7c"))
    num_features = 2048
    aux_loss_weight = 0.4  # the paper's weight on the auxiliary loss

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        # Google's ImageNet weights expect inputs in [-1, 1]; ``transform_input`` maps
        # ImageNet-normalised inputs there, as torchvision does for those weights.
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(in_channels, 32, kernel_size=3, stride=2)  # N x 32 x 149 x 149
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)  # N x 32 x 147 x 147
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)  # N x 64 x 147 x 147
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)  # N x 64 x 73 x 73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)  # N x 80 x 73 x 73
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)  # N x 192 x 71 x 71
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)  # N x 192 x 35 x 35
        self.Mixed_5b = InceptionA(192, pool_features=32)  # N x 256 x 35 x 35
        self.Mixed_5c = InceptionA(256, pool_features=64)  # N x 288 x 35 x 35
        self.Mixed_5d = InceptionA(288, pool_features=64)  # N x 288 x 35 x 35
        self.Mixed_6a = InceptionB(288)  # N x 768 x 17 x 17
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)  # N x 768 x 17 x 17
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)  # N x 1280 x 8 x 8
        self.Mixed_7b = InceptionE(1280)  # N x 2048 x 8 x 8
        self.Mixed_7c = InceptionE(2048)  # N x 2048 x 8 x 8
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        if not aux_logits:
            self.auxiliary_classifier_names = ()
        init_truncated_normal(self, std=0.1)

    def _stem_to_17(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform_input:
            x = imagenet_to_signed_unit(x)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                     "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = getattr(self, name)(x)
        return x  # N x 768 x 17 x 17

    def _17_to_8(self, x: torch.Tensor) -> torch.Tensor:
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # N x 2048 x 8 x 8

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return Mixed_7c's map (N × 2048 × 8 × 8 at 299×299)."""
        return self._17_to_8(self._stem_to_17(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, dense."""
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # N x 2048
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        """Logits; in training mode with the auxiliary head, ``ModelOutput(logits, aux_logits)``."""
        grid17 = self._stem_to_17(x)
        logits = self.forward_head(self._17_to_8(grid17))
        if self.training and self.AuxLogits is not None:
            return ModelOutput(logits, self.AuxLogits(grid17))
        return logits


def inception_v3(num_classes: int = 1000, in_channels: int = 3) -> Inception3:
    """Build Inception-v3 with its auxiliary classifier."""
    return Inception3(num_classes=num_classes, in_channels=in_channels)
