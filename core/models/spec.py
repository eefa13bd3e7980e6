"""What the registry knows about a model besides what it computes: the facts a network cannot tell about
itself (paper, year, input convention, where its pretrained weights come from, the course notes' figures) and
the numbers others published, each with its source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from core.models.base import ExplorerModel
from core.models.notes import NotesFigure

Origin = Literal["zoo", "catalogue", "design"]
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
    origin: Origin = "zoo"  # "zoo": written here and proven equal; "catalogue": torchvision's own; "design": yours

    @property
    def builder_module(self) -> str:
        """The module that builds the model (through a ``functools.partial``, its function's module)."""
        return str(getattr(self.builder, "func", self.builder).__module__)

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


def torchvision_figures(params: int, gmacs: float, top1: float, top5: float,
                        detail: str = "ImageNet-1k weights, IMAGENET1K_V1 metadata") -> tuple[Reference, ...]:
    """The figures torchvision's weight metadata gives (its "GFLOPS" are MACs); ``detail`` names the weights."""
    return (
        Reference("params", params, "torchvision", detail),
        Reference("macs", gmacs * 1e9, "torchvision", detail + " (_ops, reported as GFLOPS)"),
        Reference("top1", top1, "torchvision", detail),
        Reference("top5", top5, "torchvision", detail),
    )


class Paper(TypedDict):
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


def imagenet(weights: str, shell: Callable[[], ExplorerModel] | None = None) -> PretrainedSource:
    """torchvision's ImageNet-1k weights ``weights`` (a weights enum member by name)."""
    return PretrainedSource(torchvision_weights=weights, source="torchvision", shell=shell)
