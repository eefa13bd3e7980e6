"""Any torchvision classification CNN by name, built by torchvision itself with random weights (no download),
behind an adapter that gives it the uniform :class:`ExplorerModel` interface.

The adapter adopts the torchvision network's top-level children as its own, so module names and the state dict
are torchvision's (``layer1.0.conv1``, ``fc``); each family says which children make the feature trunk and how
its head pools. Catalogue models are marked ``catalogue = True``: they are torchvision's code, not written
here and not checked against a second implementation. A network the analysis cannot handle (a vision
transformer, Swin, MaxViT, or a family not adapted yet) raises :class:`CatalogueError` naming what it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from core.errors import ExplorerError, quoted
from core.models.base import ExplorerModel, check_model_args

MAX_CATALOGUE_PARAMETERS = 150_000_000  # refuses regnet_y_128gf (645M) and vit_h_14 before any weight exists


class CatalogueError(ExplorerError):
    """A torchvision model the explorer cannot open: unknown, not a CNN, not adapted, or too large."""


@dataclass(frozen=True)
class Family:
    """How one torchvision family splits into a feature trunk and a head."""

    trunk: tuple[str, ...]  # top-level children run in order by forward_features
    pool: str  # "avgpool": the model's own avgpool then flatten; "mean": mean over H, W; "relu-mean": DenseNet
    classifier: str  # child holding the final nn.Linear (itself or a Sequential ending with it)


_RESNET = Family(("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"), "avgpool", "fc")
_FEATURES = Family(("features",), "avgpool", "classifier")
FAMILIES: dict[str, Family] = {
    "resnet": _RESNET,
    "regnet": Family(("stem", "trunk_output"), "avgpool", "fc"),
    "densenet": Family(("features",), "relu-mean", "classifier"),
    "shufflenetv2": Family(("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"), "mean", "fc"),
    "mnasnet": Family(("layers",), "mean", "classifier"),
    "mobilenetv2": Family(("features",), "mean", "classifier"),
    "mobilenetv3": _FEATURES,
    "efficientnet": _FEATURES,
    "convnext": Family(("features",), "avgpool-only", "classifier"),  # its classifier flattens itself
    "vgg": _FEATURES,
    "alexnet": _FEATURES,
}
TRANSFORMERS = {"vision_transformer": "a vision transformer", "swin_transformer": "a Swin transformer",
                "maxvit": "MaxViT, a hybrid transformer"}
NOT_ADAPTED = {
    "squeezenet": "its classifier is a 1×1 convolution, not the dense (nn.Linear) layer the explorer's "
                  "classifier interface replaces and fine-tunes",
    "googlenet": "its auxiliary classifiers and input transform are not adapted yet",
    "inception": "its auxiliary classifier and 75×75 minimum input are not adapted yet",
}
_EXPANDED = ("features", "layers", "trunk_output")  # trunk children whose own children are the stages


def _family(name: str) -> str:
    """The torchvision module (family) of ``name``; CatalogueError if torchvision has no such model."""
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise CatalogueError(f"torchvision has no classification model {quoted(name)} (it has {len(available)}, "
                             "e.g. resnet50, densenet121, convnext_tiny)")
    return torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]


def check_supported(name: str) -> Family:
    """The family adapter for ``name``, or CatalogueError saying what the model lacks."""
    family = _family(name)
    if family in TRANSFORMERS:
        raise CatalogueError(f"{name} is {TRANSFORMERS[family]}: it has no convolutional receptive field, and "
                             "its attention blocks have no feature maps for the layer views")
    if family in NOT_ADAPTED:
        raise CatalogueError(f"{name} cannot be opened: {NOT_ADAPTED[family]}")
    return FAMILIES[family]


def supported_models() -> list[str]:
    """Every torchvision classification CNN the adapter handles."""
    names = torchvision.models.list_models(module=torchvision.models)
    return [name for name in names if _family(name) in FAMILIES]


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Rebuild the first convolution for ``in_channels`` input channels (same geometry, fresh weights)."""
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return
    pair = (lambda value: (int(value[0]), int(value[-1])))  # noqa: E731  (torch stores them as tuples)
    padding = conv.padding if isinstance(conv.padding, str) else pair(conv.padding)
    new = nn.Conv2d(in_channels, conv.out_channels, pair(conv.kernel_size), pair(conv.stride), padding,
                    pair(conv.dilation), groups=1, bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype)
    model.set_submodule(name, new)


def _torchvision_net(name: str, num_classes: int) -> nn.Module:
    """torchvision's network; RegNet computes its widths with tensors, so on the meta device it is built on
    the CPU and moved."""
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    except NotImplementedError:
        device = torch.get_default_device()
        with torch.device("cpu"):
            net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        return net.to(device)


def _channels_out(model: nn.Module, trunk: tuple[str, ...]) -> int:
    """Channels of the trunk's output: those of its last convolution or batch norm."""
    channels = 0
    for name, module in model.named_modules():
        if name.split(".")[0] in trunk:
            if isinstance(module, nn.Conv2d):
                channels = module.out_channels
            elif isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
    return channels


class CatalogueModel(ExplorerModel):
    """A torchvision CNN behind the explorer's interface; its children and state dict are torchvision's."""

    source = "torchvision"
    catalogue = True

    def __init__(self, name: str, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        self.family = check_supported(name)
        self.model_name = name
        count = next(iter(torchvision.models.get_model_weights(name))).meta["num_params"]  # no download
        if count > MAX_CATALOGUE_PARAMETERS:
            raise CatalogueError(f"{name} has {count:,} parameters, above the explorer's bound of "
                                 f"{MAX_CATALOGUE_PARAMETERS:,}")
        net = _torchvision_net(name, num_classes)
        for child_name, child in net.named_children():
            self.add_module(child_name, child)
        _replace_first_conv(self, in_channels)
        classifier = self.get_submodule(self.family.classifier)
        linears = [n for n, m in classifier.named_modules() if isinstance(m, nn.Linear)]
        self.classifier_name = ".".join(filter(None, (self.family.classifier, linears[-1])))
        self.stages = self._stage_names()
        self.num_features = _channels_out(self, self.family.trunk)

    def _stage_names(self) -> tuple[tuple[str, str], ...]:
        """A stage per trunk child (per child of ``features``/``layers``/``trunk_output``)."""
        stages: list[tuple[str, str]] = []
        for name in self.family.trunk:
            module = self.get_submodule(name)
            if name in _EXPANDED:
                stages += [(f"{name}.{child}", f"{name}.{child}") for child, _ in module.named_children()]
            elif not list(module.children()) and stages and stages[-1][0] == "stem":
                stages[-1] = ("stem", name)  # ResNet's conv1, bn1, relu, maxpool: one stem stage
            else:
                stages.append(("stem" if not list(module.children()) else name, name))
        return tuple(stages)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's last feature map (N × C × H × W)."""
        for name in self.family.trunk:
            x = self.get_submodule(name)(x)
        return x

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.family.pool
        if pool == "relu-mean":
            x = torch.relu(x)
        if pool in ("mean", "relu-mean"):
            return x.mean((2, 3))
        x = self.get_submodule("avgpool")(x)
        return x if pool == "avgpool-only" else torch.flatten(x, 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, then the classifier (stopping before its final Linear if ``pre_logits``)."""
        x = self._pool(x)
        classifier = self.get_submodule(self.family.classifier)
        if not pre_logits:
            return classifier(x)
        if isinstance(classifier, nn.Sequential):
            last = self.classifier_name.rsplit(".", 1)[-1]
            for name, module in classifier.named_children():
                if name == last:
                    break
                x = module(x)
        return x


def build_catalogue(name: str, num_classes: int = 1000, in_channels: int = 3) -> CatalogueModel:
    """Build torchvision's ``name`` with random weights behind the explorer's interface."""
    if not isinstance(name, str):
        raise CatalogueError(f"a model name is text, got {type(name).__name__}")
    return CatalogueModel(name, num_classes=num_classes, in_channels=in_channels)
