"""GoogLeNet (Inception-v1; Szegedy et al., 2014): nine Inception modules, 22 weight layers deep.

Module names follow torchvision's so that its ImageNet weights (ported from the paper's
release, with both auxiliary heads) load unchanged. As in torchvision, the "5×5" branch
uses a 3×3 convolution (pytorch/vision#906): the ported weights were trained that way.
Every pooling and activation is a module (not a function call), so the layer analysis sees it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, ModelOutput, check_model_args
from core.models.inception import BasicConv2d, imagenet_to_signed_unit, init_truncated_normal


class GoogLeNetOutput(NamedTuple):
    """What GoogLeNet returns in training mode: the main logits and both auxiliary heads' (torchvision's order)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


class ModulePlan(NamedTuple):
    """One row of table 1 of the paper: the width of each branch of an Inception module."""

    in_channels: int
    ch1x1: int  # "#1×1"
    ch3x3red: int  # "#3×3 reduce"
    ch3x3: int  # "#3×3"
    ch5x5red: int  # "#5×5 reduce"
    ch5x5: int  # "#5×5"
    pool_proj: int  # "pool proj"


class Inception(DeclaredBlock):
    """1×1, 1×1 → 3×3, 1×1 → "5×5", and 3×3 max-pool → 1×1 branches, concatenated (figure 2b of the paper)."""

    merge = "concat"

    def __init__(self, plan: ModulePlan) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(plan.in_channels, plan.ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(plan.in_channels, plan.ch3x3red, kernel_size=1),
            BasicConv2d(plan.ch3x3red, plan.ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(plan.in_channels, plan.ch5x5red, kernel_size=1),
            BasicConv2d(plan.ch5x5red, plan.ch5x5, kernel_size=3, padding=1),  # 3×3, as the ported weights
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(plan.in_channels, plan.pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # N x (ch1x1 + ch3x3 + ch5x5 + pool_proj) x H x W


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 14×14 grid (after 4a and 4d), used only in training."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))  # the paper's 5×5/3 average pool at 14×14: N x C x 4 x 4
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)  # N x 128 x 4 x 4
        self.fc1 = nn.Linear(2048, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)  # N x 2048
        return self.fc2(self.dropout(self.relu(self.fc1(x))))  # N x num_classes


# Table 1 of the paper, by module name; max-pools (3×3/2) sit before 3a, 4a and 5a.
MODULES: dict[str, ModulePlan] = {
    "inception3a": ModulePlan(192, 64, 96, 128, 16, 32, 32),  # N x 256 x 28 x 28
    "inception3b": ModulePlan(256, 128, 128, 192, 32, 96, 64),  # N x 480 x 28 x 28
    "inception4a": ModulePlan(480, 192, 96, 208, 16, 48, 64),  # N x 512 x 14 x 14
    "inception4b": ModulePlan(512, 160, 112, 224, 24, 64, 64),  # N x 512 x 14 x 14
    "inception4c": ModulePlan(512, 128, 128, 256, 24, 64, 64),  # N x 512 x 14 x 14
    "inception4d": ModulePlan(512, 112, 144, 288, 32, 64, 64),  # N x 528 x 14 x 14
    "inception4e": ModulePlan(528, 256, 160, 320, 32, 128, 128),  # N x 832 x 14 x 14
    "inception5a": ModulePlan(832, 256, 160, 320, 32, 128, 128),  # N x 832 x 7 x 7
    "inception5b": ModulePlan(832, 384, 192, 384, 48, 128, 128),  # N x 1024 x 7 x 7
}


class GoogLeNet(ExplorerModel):
    """Stem, 2 × Inception, 5 × Inception, 2 × Inception with max-pools between, global pool, dropout, dense."""

    classifier_name = "fc"
    auxiliary_classifier_names: tuple[str, ...] = ("aux1.fc2", "aux2.fc2")
    stages = (("stem", "maxpool2"), ("28×28", "maxpool3"), ("14×14", "maxpool4"), ("7×7", "inception5b"))
    num_features = 1024
    aux_loss_weight = 0.3  # the paper: "the loss of the auxiliary classifiers was weighted by 0.3"

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        # The ported ImageNet weights expect Caffe's input scaling; ``transform_input`` maps
        # ImageNet-normalised inputs there, as torchvision does for those weights.
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)  # N x 64 x 112 x 112
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 64 x 56 x 56
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)  # N x 64 x 56 x 56
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)  # N x 192 x 56 x 56
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 192 x 28 x 28
        for name, plan in list(MODULES.items())[:2]:
            self.add_module(name, Inception(plan))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 480 x 14 x 14
        for name, plan in list(MODULES.items())[2:7]:
            self.add_module(name, Inception(plan))
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # N x 832 x 7 x 7
        for name, plan in list(MODULES.items())[7:]:
            self.add_module(name, Inception(plan))
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None  # after 4a
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None  # after 4d
        if not aux_logits:
            self.auxiliary_classifier_names = ()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_truncated_normal(self, std=0.01)

    def _run(self, x: torch.Tensor, names: list[str]) -> torch.Tensor:
        for name in names:
            x = getattr(self, name)(x)
        return x

    def _stem_to_4a(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform_input:
            x = imagenet_to_signed_unit(x)
        names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                 "inception4a"]
        return self._run(x, names)  # N x 512 x 14 x 14

    def _4a_to_4d(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, ["inception4b", "inception4c", "inception4d"])  # N x 528 x 14 x 14

    def _4d_to_5b(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, ["inception4e", "maxpool4", "inception5a", "inception5b"])  # N x 1024 x 7 x 7

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return inception5b's map (N × 1024 × 7 × 7 at 224×224)."""
        return self._4d_to_5b(self._4a_to_4d(self._stem_to_4a(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, dense."""
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # N x 1024
        return x if pre_logits else self.fc(x)

    # The training output is a three-field tuple, not the base's two-field ModelOutput.
    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutput:  # type: ignore[override]
        """Logits; in training mode with the auxiliary heads, ``GoogLeNetOutput(logits, aux_logits2, aux_logits1)``."""
        with_aux = self.training and self.aux1 is not None and self.aux2 is not None
        grid_4a = self._stem_to_4a(x)
        # Heads in torchvision's order, so that dropout draws the same random numbers under one seed.
        aux1 = self.aux1(grid_4a) if with_aux and self.aux1 is not None else None
        grid_4d = self._4a_to_4d(grid_4a)
        aux2 = self.aux2(grid_4d) if with_aux and self.aux2 is not None else None
        logits = self.forward_head(self._4d_to_5b(grid_4d))
        if aux1 is not None and aux2 is not None:
            return GoogLeNetOutput(logits, aux2, aux1)
        return logits

    def split_output(self, output: torch.Tensor | ModelOutput | GoogLeNetOutput,
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main logits and the auxiliary heads' logits (both weighted by ``aux_loss_weight`` in training)."""
        if isinstance(output, GoogLeNetOutput):
            return output.logits, [output.aux_logits1, output.aux_logits2]
        return super().split_output(output)


def googlenet(num_classes: int = 1000, in_channels: int = 3) -> GoogLeNet:
    """Build GoogLeNet with its two auxiliary classifiers."""
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels)
