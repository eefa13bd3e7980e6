"""Models opened by name at run time, beside the registered zoo: ``tv:NAME`` (any torchvision classification
CNN, through :mod:`core.models.catalogue`) and ``design:TEXT`` (a network designed in the explorer's text spec,
:mod:`core.models.design_spec`).

The name carries all it takes to build the model, so a worker process, a second browser tab or a link
(``?model=``) rebuilds exactly the same network with no lookup anywhere; a run trained on a design keeps
its architecture in its model name even if the design is deleted from the library.
"""

from __future__ import annotations

import functools

import torchvision

from core.models import catalogue, design_spec, designed
from core.models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, PretrainedSource, torchvision_figures

CATALOGUE_PREFIX = "tv:"
DESIGN_PREFIX = "design:"
DIGITS_MEAN = (0.1307,)  # MNIST's statistics: a one-channel design is most likely for digits
DIGITS_STD = (0.3081,)


def catalogue_name(name: str) -> str:
    """The opened-model name of torchvision's ``name`` (``tv:densenet121``)."""
    return CATALOGUE_PREFIX + name


def design_name(text: str) -> str:
    """The opened-model name of a design: its canonical text after ``design:`` (DesignError if it is wrong)."""
    return DESIGN_PREFIX + design_spec.format_design(design_spec.parse(text))


def catalogue_spec(name: str) -> ModelSpec:
    """The facts of torchvision's ``name`` (``tv:`` removed), from its default weights' metadata; CatalogueError
    names what the model lacks when the explorer cannot open it."""
    catalogue.check_supported(name)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    meta, transform = weights.meta, weights.transforms()
    metrics = meta["_metrics"]["ImageNet-1K"]
    detail = f"{weights.__class__.__name__}.{weights.name} metadata"
    builder = functools.partial(catalogue.build_catalogue, name)
    family = torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]
    return ModelSpec(
        name=catalogue_name(name),
        display_name=f"{name} (torchvision)",
        family=family,
        builder=builder,
        year=0,
        authors="",
        paper_title=f"torchvision.models.{name}",
        paper_url=meta.get("recipe", "https://pytorch.org/vision/stable/models.html"),
        task="Image classification",
        dataset="ImageNet-1k",
        input_size=int(transform.crop_size[0]),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        idea="Opened from torchvision's catalogue: torchvision's own code, not written here and not checked "
             "against a second implementation.",
        references=torchvision_figures(meta["num_params"], meta["_ops"], metrics["acc@1"], metrics["acc@5"], detail),
        pretrained=PretrainedSource(torchvision_weights=f"{weights.__class__.__name__}.{weights.name}",
                                    source="torchvision"),
        origin="catalogue",
    )


def _statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation a design starts with: MNIST's for one channel, ImageNet's for three, else 0.5."""
    if channels == 1:
        return DIGITS_MEAN, DIGITS_STD
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (0.5,) * channels, (0.5,) * channels


def design_model_spec(text: str) -> ModelSpec:
    """The facts of a design (``design:`` removed); DesignError names the layer and the cause when it is wrong."""
    design = design_spec.parse(text)
    designed.check(design)  # shapes and bounds: the error is raised here, before anything is built
    channels, height, width = design.input
    if height != width:
        raise design_spec.DesignError(f"the explorer's views take square inputs; make it {channels}x{height}x{height}",
                                      layer="input")
    last = design.layers[-1]
    classes = getattr(last, "out", 0)
    canonical = design_spec.format_design(design)
    mean, std = _statistics(channels)
    return ModelSpec(
        name=DESIGN_PREFIX + canonical,
        display_name=f"{design.name} (your design)",
        family="Designed",
        builder=functools.partial(designed.build_design, design),
        year=0,
        authors="",
        paper_title="Designed in the explorer",
        paper_url="",
        task=f"Classification into {classes} classes",
        dataset="your choice",
        input_size=height,
        in_channels=channels,
        num_classes=classes,
        mean=mean,
        std=std,
        origin="design",
    )


def resolve(name: str) -> ModelSpec | None:
    """The spec of an opened-model name, None if ``name`` has neither prefix; typed errors for a bad one."""
    if name.startswith(CATALOGUE_PREFIX):
        return catalogue_spec(name.removeprefix(CATALOGUE_PREFIX))
    if name.startswith(DESIGN_PREFIX):
        return design_model_spec(name.removeprefix(DESIGN_PREFIX))
    return None


def is_opened(name: str) -> bool:
    """True for a ``tv:`` or ``design:`` name (not a registered one)."""
    return isinstance(name, str) and name.startswith((CATALOGUE_PREFIX, DESIGN_PREFIX))

