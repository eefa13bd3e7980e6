"""One registry from model name to builder and facts.

Facts that can be computed (parameter counts, MACs, depth, shapes) are never
stored here: the layer analysis computes them from the live model. What is
stored are the facts a model cannot tell about itself (paper, year, input
convention) and the numbers *others* published, each with its source, so the
app can show them beside the computed ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

import torch

from core.errors import InputSizeError, UnknownModelError
from core.models import alexnet, inception, lenet, resnet, vgg, xception
from core.models.base import ExplorerModel, check_positive

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Reference:
    """A number someone published about a model, and where."""

    metric: str  # "params", "macs", "top1", "top5", "depth", "mnist_accuracy"
    value: float
    source: str  # "paper", "torchvision", "Keras", "timm", "course notes"
    detail: str = ""
    same_network: bool = True  # False when the source measured a different variant (torchvision's AlexNet)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the app knows about one architecture besides what it computes."""

    name: str
    display_name: str
    family: str
    builder: Callable[..., ExplorerModel]
    year: int
    authors: str
    paper_title: str
    paper_url: str
    task: str
    dataset: str
    input_size: int
    in_channels: int = 3
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    idea: str = ""
    references: tuple[Reference, ...] = field(default_factory=tuple)

    def reference(self, metric: str, source: str) -> Reference | None:
        """Return the published ``metric`` from ``source``, if there is one."""
        return next((r for r in self.references if r.metric == metric and r.source == source), None)

    def published_top1(self) -> Reference | None:
        """The ImageNet top-1 to plot: torchvision's measurement, else the paper's, else timm's; never a variant's."""
        for source in ("torchvision", "paper", "timm"):
            found = self.reference("top1", source)
            if found is not None and found.same_network:
                return found
        return None


def _torchvision(params: int, gmacs: float, top1: float, top5: float) -> tuple[Reference, ...]:
    """The figures torchvision's weight metadata gives (its "GFLOPS" are MACs)."""
    detail = "ImageNet-1k weights, IMAGENET1K_V1 metadata"
    return (
        Reference("params", params, "torchvision", detail),
        Reference("macs", gmacs * 1e9, "torchvision", detail + " (_ops, reported as GFLOPS)"),
        Reference("top1", top1, "torchvision", detail),
        Reference("top5", top5, "torchvision", detail),
    )


class _Paper(TypedDict):
    """The facts a family of models shares: one paper."""

    family: str
    year: int
    authors: str
    paper_title: str
    paper_url: str
    task: str
    dataset: str
    input_size: int
    idea: str


_RESNET_PAPER = _Paper(
    family="ResNet",
    year=2015,
    authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
    paper_title="Deep Residual Learning for Image Recognition",
    paper_url="https://arxiv.org/abs/1512.03385",
    task="Image classification (ILSVRC 2015 winner)",
    dataset="ImageNet-1k",
    input_size=224,
    idea="Skip connections let each block learn a residual F(x) = H(x) − x, so very deep networks still train.",
)

_VGG_PAPER = _Paper(
    family="VGG",
    year=2014,
    authors="Karen Simonyan, Andrew Zisserman",
    paper_title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    paper_url="https://arxiv.org/abs/1409.1556",
    task="Image classification and localisation (ILSVRC 2014)",
    dataset="ImageNet-1k",
    input_size=224,
    idea="Depth from stacks of small 3×3 convolutions: two see 5×5, three see 7×7, with fewer weights.",
)


def _resnet(name: str, display: str, paper_gflops: float, torchvision_figures: tuple[Reference, ...]) -> ModelSpec:
    depth = int(name.removeprefix("resnet"))
    return ModelSpec(
        name=name,
        display_name=display,
        builder=getattr(resnet, name),
        references=(
            Reference("macs", paper_gflops * 1e9, "paper", "Table 1, reported as FLOPs"),
            Reference("depth", depth, "paper", "weight layers"),
            *torchvision_figures,
        ),
        **_RESNET_PAPER,
    )


_SPECS: list[ModelSpec] = [
    ModelSpec(
        name="lenet5",
        display_name="LeNet-5",
        family="LeNet",
        builder=lenet.lenet5,
        year=1998,
        authors="Yann LeCun, Léon Bottou, Yoshua Bengio, Patrick Haffner",
        paper_title="Gradient-Based Learning Applied to Document Recognition",
        paper_url="http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf",
        task="Handwritten digit recognition (postal codes, cheques)",
        dataset="MNIST",
        input_size=28,
        in_channels=1,
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        idea="Learned convolution filters, subsampling and a small classifier, trained end to end by backpropagation.",
        references=(
            Reference("mnist_accuracy", 99.05, "paper", "0.95 % test error, no distortions"),
            Reference("depth", 7, "paper", "layers counted with subsampling: C1 S2 C3 S4 C5 F6 output"),
        ),
    ),
    ModelSpec(
        name="alexnet",
        display_name="AlexNet",
        family="AlexNet",
        builder=alexnet.alexnet,
        year=2012,
        authors="Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton",
        paper_title="ImageNet Classification with Deep Convolutional Neural Networks",
        paper_url="https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks.pdf",
        task="Image classification (ILSVRC 2012 winner)",
        dataset="ImageNet-1k",
        input_size=227,
        idea="A deep CNN trained on GPUs with ReLU, dropout, overlapping pooling and heavy augmentation.",
        references=(
            Reference("top1", 62.5, "paper", "one network, ILSVRC-2010 test (37.5 % top-1 error)"),
            Reference("top5", 83.0, "paper", "one network, ILSVRC-2010 test (17.0 % top-5 error)"),
            Reference("depth", 8, "paper", "5 convolutional + 3 fully connected"),
            Reference("params", 61_100_840, "torchvision", "torchvision's alexnet is a different, later variant",
                      same_network=False),
            Reference("top1", 56.522, "torchvision", "torchvision's alexnet variant, not this network",
                      same_network=False),
        ),
    ),
    ModelSpec(
        name="vgg16",
        display_name="VGG-16",
        builder=vgg.vgg16,
        references=(Reference("depth", 16, "paper", "13 conv + 3 FC, configuration D"),
                    *_torchvision(138_357_544, 15.47, 71.592, 90.382)),
        **_VGG_PAPER,
    ),
    ModelSpec(
        name="vgg19",
        display_name="VGG-19",
        builder=vgg.vgg19,
        references=(Reference("depth", 19, "paper", "16 conv + 3 FC, configuration E"),
                    *_torchvision(143_667_240, 19.632, 72.376, 90.876)),
        **_VGG_PAPER,
    ),
    ModelSpec(
        name="inception_v3",
        display_name="Inception-v3",
        family="Inception",
        builder=inception.inception_v3,
        year=2015,
        authors="Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jonathon Shlens, Zbigniew Wojna",
        paper_title="Rethinking the Inception Architecture for Computer Vision",
        paper_url="https://arxiv.org/abs/1512.00567",
        task="Image classification",
        dataset="ImageNet-1k",
        input_size=299,
        idea="Parallel branches of factorised convolutions (n×1 then 1×n), efficient grid reductions, "
             "an auxiliary classifier and label smoothing.",
        references=(
            Reference("depth", 42, "paper", "“42 layers deep”, section 6"),
            *_torchvision(27_161_264, 5.713, 77.294, 93.45),
        ),
    ),
    ModelSpec(
        name="xception",
        display_name="Xception",
        family="Xception",
        builder=xception.xception,
        year=2017,
        authors="François Chollet",
        paper_title="Xception: Deep Learning with Depthwise Separable Convolutions",
        paper_url="https://arxiv.org/abs/1610.02357",
        task="Image classification",
        dataset="ImageNet-1k (and Google's internal JFT)",
        input_size=299,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        idea="Replace Inception modules by depthwise separable convolutions (map space, then channels), "
             "with residual connections throughout.",
        references=(
            Reference("params", 22_855_952, "paper", "Table 3"),
            Reference("top1", 79.0, "paper", "Table 1, ImageNet validation"),
            Reference("top5", 94.5, "paper", "Table 1, ImageNet validation"),
            Reference("depth", 36, "paper", "“36 convolutional layers” in the feature extraction base"),
            Reference("params", 22_910_480, "Keras", "counts the 54,528 batch-norm moving statistics too"),
            Reference("depth", 81, "Keras", "Keras applications table, its own layer count"),
            Reference("top1", 78.892, "timm", "legacy_xception, weights ported from Keras"),
            Reference("top5", 94.292, "timm", "legacy_xception, weights ported from Keras"),
        ),
    ),
    _resnet("resnet18", "ResNet-18", 1.8, _torchvision(11_689_512, 1.814, 69.758, 89.078)),
    _resnet("resnet34", "ResNet-34", 3.6, _torchvision(21_797_672, 3.664, 73.314, 91.42)),
    _resnet("resnet50", "ResNet-50", 3.8, _torchvision(25_557_032, 4.089, 76.13, 92.862)),
    _resnet("resnet101", "ResNet-101", 7.6, _torchvision(44_549_160, 7.801, 77.374, 93.546)),
    _resnet("resnet152", "ResNet-152", 11.3, _torchvision(60_192_808, 11.514, 78.312, 94.046)),
]

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def names() -> list[str]:
    """Return the registered model names, oldest architecture first."""
    return list(REGISTRY)


def spec(name: str) -> ModelSpec:
    """Return the facts of model ``name``; unknown names raise UnknownModelError (a ValueError)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownModelError(str(name), names()) from None


def build(name: str, num_classes: int | None = None, in_channels: int | None = None) -> ExplorerModel:
    """Build model ``name`` with fresh random weights.

    ``num_classes`` and ``in_channels`` default to the model's original task.
    """
    model_spec = spec(name)
    num_classes = model_spec.num_classes if num_classes is None else check_positive(num_classes, "num_classes")
    in_channels = model_spec.in_channels if in_channels is None else check_positive(in_channels, "in_channels")
    return model_spec.builder(num_classes=num_classes, in_channels=in_channels)


def _accepts(model: ExplorerModel, in_channels: int, size: int) -> bool:
    """True if a size×size input goes through ``model`` (shapes only, on the meta device).

    Two images, because batch norm in training mode needs more than one value per channel.
    """
    try:
        with torch.no_grad():
            model(torch.empty(2, in_channels, size, size, device="meta"))
        return True
    except (RuntimeError, ValueError):
        return False


@functools.cache
def input_size_range(name: str, training: bool = False) -> tuple[int, int | None]:
    """Return the smallest and largest square input (px) the model accepts; largest is None if unbounded.

    Found by probing forward passes on the meta device (no arithmetic), so the limits
    are computed from the architecture, never typed in. ``training`` probes training mode,
    where auxiliary heads (Inception-v3's) also run and need a larger input.
    """
    model_spec = spec(name)
    with torch.device("meta"):
        model = build(name).train(training)
    native = model_spec.input_size
    low, high = 1, native  # the native size works; find the smallest that does
    while low < high:
        middle = (low + high) // 2
        if _accepts(model, model_spec.in_channels, middle):
            high = middle
        else:
            low = middle + 1
    minimum = low
    ceiling = 8 * native
    if _accepts(model, model_spec.in_channels, ceiling):
        return minimum, None
    low, high = native, ceiling  # the largest that works lies in [native, ceiling)
    while low < high:
        middle = (low + high + 1) // 2
        if _accepts(model, model_spec.in_channels, middle):
            low = middle
        else:
            high = middle - 1
    return minimum, low


def check_input_size(name: str, size: int) -> int:
    """Return ``size`` if model ``name`` accepts a size×size input, else raise InputSizeError."""
    check_positive(size, "input size")
    minimum, maximum = input_size_range(name)
    if size < minimum or (maximum is not None and size > maximum):
        raise InputSizeError(name, size, minimum, maximum)
    return size
