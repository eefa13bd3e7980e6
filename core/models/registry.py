"""One registry from model name to builder and facts.

Facts that can be computed (parameter counts, MACs, depth, shapes) are never
stored here: the layer analysis computes them from the live model. What is
stored are the facts a model cannot tell about itself (paper, year, input
convention, where its pretrained weights come from, the course notes' figures)
and the numbers *others* published, each with its source, so the app can show
them beside the computed ones.

The registry is open: ``register(spec)`` adds a model (``unregister(name)``
removes it), and every registry-parametrized view and test then covers it.
No code outside this module decides anything from a model's name.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypedDict, TypeVar

import torch

from core.errors import InputSizeError, InvalidArgumentError, UnknownModelError
from core.models import alexnet, inception, lenet, notes, resnet, vgg, xception
from core.models.base import ExplorerModel, check_positive
from core.models.notes import NotesFigure

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
class PretrainedSource:
    """Where a model's pretrained weights come from (after torchvision's ``Weights`` and timm's ``pretrained_cfg``).

    Either ``torchvision_weights``, a torchvision weights enum member by dotted name
    (``"ResNet18_Weights.IMAGENET1K_V1"``), whose metadata give the file, the categories, the preprocessing,
    the accuracy and the size; or the file's ``url`` with those facts spelt out here (``categories_from``
    borrows a torchvision enum's category list). ``shell`` builds the network the file belongs to, when it
    differs from the builder's default at 1000 classes and 3 channels (Inception-v3 maps inputs to [-1, 1]).
    """

    torchvision_weights: str = ""
    url: str = ""
    categories_from: str = ""
    resize: int = 0
    crop: int = 0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    top1: float = 0.0
    source: str = ""
    size_mb: float = 0.0
    hash_checked: bool = True  # the hash in the file name is the start of its SHA-256 (torch hub's rule)
    shell: Callable[[], ExplorerModel] | None = None


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
    pretrained: PretrainedSource | None = None  # None: no pretrained weights in this app
    notes_figures: tuple[NotesFigure, ...] = ()  # the course notes' figures; none: no fidelity panel
    featured_in: tuple[str, ...] = ()  # views that show this model first ("stages": Compare's per-stage chart)

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


def _imagenet(weights: str, shell: Callable[[], ExplorerModel] | None = None) -> PretrainedSource:
    """torchvision's ImageNet-1k weights ``weights`` (a weights enum member by name)."""
    return PretrainedSource(torchvision_weights=weights, source="torchvision", shell=shell)


def _inception_shell() -> ExplorerModel:
    """Inception-v3 as Google's weights expect it: ImageNet-normalised inputs mapped to [-1, 1]."""
    return inception.Inception3(num_classes=1000, in_channels=3, transform_input=True)


XCEPTION_URL = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth"
XCEPTION_MB = 87.4  # 22.86 M float32 parameters and BN statistics (the release page gives no exact size)
# Cadene's "43020ad28" predates torch hub's rule and timm never checks it: the content is checked instead.
_XCEPTION_WEIGHTS = PretrainedSource(url=XCEPTION_URL, categories_from="ResNet18_Weights.IMAGENET1K_V1", resize=333,
                                     crop=299, mean=(0.5,) * 3, std=(0.5,) * 3, top1=78.892, source="timm",
                                     size_mb=XCEPTION_MB, hash_checked=False)


def _resnet(name: str, display: str, paper_gflops: float, torchvision_figures: tuple[Reference, ...]) -> ModelSpec:
    depth = int(name.removeprefix("resnet"))
    return ModelSpec(
        name=name,
        display_name=display,
        builder=getattr(resnet, name),
        pretrained=_imagenet(f"ResNet{depth}_Weights.IMAGENET1K_V1"),
        notes_figures=notes.figures(name),
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
        notes_figures=notes.figures("lenet5"),
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
        notes_figures=notes.figures("alexnet"),
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
        pretrained=_imagenet("VGG16_Weights.IMAGENET1K_V1"),
        notes_figures=notes.figures("vgg16"),
        references=(Reference("depth", 16, "paper", "13 conv + 3 FC, configuration D"),
                    *_torchvision(138_357_544, 15.47, 71.592, 90.382)),
        **_VGG_PAPER,
    ),
    ModelSpec(
        name="vgg19",
        display_name="VGG-19",
        builder=vgg.vgg19,
        pretrained=_imagenet("VGG19_Weights.IMAGENET1K_V1"),
        notes_figures=notes.figures("vgg19"),
        references=(Reference("depth", 19, "paper", "16 conv + 3 FC, configuration E"),
                    *_torchvision(143_667_240, 19.632, 72.376, 90.876)),
        **_VGG_PAPER,
    ),
    ModelSpec(
        name="inception_v3",
        display_name="Inception-v3",
        family="Inception",
        builder=inception.inception_v3,
        pretrained=_imagenet("Inception_V3_Weights.IMAGENET1K_V1", shell=_inception_shell),
        notes_figures=notes.figures("inception_v3"),
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
        pretrained=_XCEPTION_WEIGHTS,
        notes_figures=notes.figures("xception"),
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
    dataclasses.replace(_resnet("resnet50", "ResNet-50", 3.8, _torchvision(25_557_032, 4.089, 76.13, 92.862)),
            featured_in=("stages",)),
    _resnet("resnet101", "ResNet-101", 7.6, _torchvision(44_549_160, 7.801, 77.374, 93.546)),
    _resnet("resnet152", "ResNet-152", 11.3, _torchvision(60_192_808, 11.514, 78.312, 94.046)),
]

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
_invalidators: list[Callable[[], None]] = []


class _Cached(Protocol):
    def cache_clear(self) -> None: ...


CachedT = TypeVar("CachedT", bound=_Cached)


def on_change(cached: CachedT) -> CachedT:
    """Decorator: clear the cache of ``cached`` (a ``functools`` cached function keyed by model name) whenever a
    model is registered or unregistered, so a name never keeps the facts of a model it no longer names."""
    _invalidators.append(cached.cache_clear)
    return cached


def _changed() -> None:
    for clear in _invalidators:
        clear()


def register(model_spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add ``model_spec`` to the registry (after the others); every view and registry-parametrized test then
    covers it. A name already registered raises InvalidArgumentError unless ``replace``."""
    if not isinstance(model_spec, ModelSpec):
        raise InvalidArgumentError(f"register takes a ModelSpec, not {type(model_spec).__name__}.")
    if not model_spec.name or not isinstance(model_spec.name, str):
        raise InvalidArgumentError("A model needs a non-empty name.")
    if model_spec.name in REGISTRY and not replace:
        raise InvalidArgumentError(f"A model named {model_spec.name!r} is already registered.")
    REGISTRY[model_spec.name] = model_spec
    _changed()
    return model_spec


def unregister(name: str) -> ModelSpec:
    """Remove model ``name`` from the registry and return its spec (UnknownModelError if it is not there)."""
    removed = spec(name)
    del REGISTRY[name]
    _changed()
    return removed


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


@on_change
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
