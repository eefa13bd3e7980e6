"""One registry from model name to builder and facts.

Facts that can be computed (parameter counts, MACs, depth, shapes) are never
stored here: the layer analysis computes them from the live model. What is
stored (:mod:`core.models.spec`, the entries in :mod:`core.models.zoo`) are the
facts a model cannot tell about itself and the numbers *others* published,
each with its source, so the app can show them beside the computed ones.

The registry is open: ``register(spec)`` adds a model (``unregister(name)``
removes it), and every registry-parametrized view and test then covers it.
No code outside this module decides anything from a model's name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol, TypeVar

import torch

from core.errors import InputSizeError, InvalidArgumentError, UnknownModelError
from core.models import opened, zoo
from core.models.base import ExplorerModel, check_positive
from core.models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, PretrainedSource, Reference

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "REGISTRY", "ModelSpec", "PretrainedSource", "Reference", "build",
           "check_input_size", "input_size_range", "names", "on_change", "register", "spec", "unregister"]

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in zoo.SPECS}
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
    """Return the registered model names: the course's eleven oldest first, then the related architectures, then
    those registered at run time."""
    return list(REGISTRY)


def spec(name: str) -> ModelSpec:
    """Return the facts of model ``name``: a registered one, or an opened ``tv:NAME`` (a torchvision CNN) or
    ``design:TEXT`` (a designed network). An unknown name raises UnknownModelError; an opened one that cannot
    be opened, CatalogueError or DesignError saying why (all ExplorerErrors)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        pass
    if isinstance(name, str) and opened.is_opened(name):
        return _opened(name)
    raise UnknownModelError(str(name)[:200], names())


@functools.lru_cache(maxsize=64)
def _opened(name: str) -> ModelSpec:
    """An opened model's spec, kept for the names in use (a failure is not kept: it is raised each time)."""
    found = opened.resolve(name)
    if found is None:  # not reached: called for opened names only
        raise UnknownModelError(name[:200], names())
    return found


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
@functools.lru_cache(maxsize=256)  # bounded: opened models (designs typed live) add names without end
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
