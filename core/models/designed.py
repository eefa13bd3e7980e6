"""Networks built from a design spec (:mod:`core.models.design_spec`): shapes checked, bounds enforced, then built.

:func:`check` walks the design by arithmetic alone (shapes, parameters, activation memory) and refuses it
with a :class:`DesignError` at the first layer that does not fit or crosses a bound, before any weight
exists; :func:`build_design` then builds a :class:`DesignedModel` whose module names are readable
(``features.conv1``, ``features.pool1``, ``features.res1.conv3``, ``head.fc1``).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from core.models.base import DeclaredBlock, ExplorerModel, check_positive
from core.models.design_spec import (
    MAX_FEATURES,
    BatchNorm,
    Conv,
    Dense,
    Design,
    DesignError,
    Dropout,
    GlobalPool,
    Layer,
    Parallel,
    Pool,
    Relu,
    Residual,
    parse,
)

MAX_PARAMETERS = 50_000_000
MAX_ACTIVATION_BYTES = 256 * 2**20  # float32 outputs of every layer, for one image
Shape = tuple[int, int, int]
Factory = Callable[[], nn.Module]
Entry = tuple[str, Factory]


@dataclass(frozen=True)
class DesignFigures:
    """What the walk found: each named layer's output shape, the parameters and activation memory."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    parameters: int
    activation_bytes: int
    num_features: int


class _ResidualBlock(DeclaredBlock):
    """``relu(body(x) + shortcut(x))``."""

    merge = "add"

    def __init__(self, body: nn.Sequential, shortcut: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut, self.relu = body, shortcut, nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the body to the shortcut, then ReLU."""
        return self.relu(self.body(x) + self.shortcut(x))


class _ParallelBlock(DeclaredBlock):
    """Branches on the same input, concatenated along the channels."""

    merge = "concat"

    def __init__(self, branches: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every branch's output."""
        return torch.cat([branch(x) for branch in self.children()], dim=1)


def _sequential(entries: list[Entry]) -> nn.Sequential:
    return nn.Sequential(OrderedDict((name, factory()) for name, factory in entries))


def _conv(c_in: int, layer: Conv) -> Factory:
    return lambda: nn.Conv2d(c_in, layer.out, layer.kernel, layer.stride, layer.padding, bias=not layer.bn)


class _Walk:
    """Shape propagation with running totals; every step is arithmetic, so any design is cheap to check."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.parameters = 0
        self.activations = 0
        self.shapes: list[tuple[str, tuple[int, ...]]] = []

    def name(self, kind: str) -> str:
        self.counts[kind] += 1
        return f"{kind}{self.counts[kind]}"

    def add(self, name: str, layer: Layer, shape: tuple[int, ...], parameters: int) -> None:
        """Count a layer's output and weights; refuse the design where a bound is crossed."""
        self.parameters += parameters
        elements = 1
        for size in shape:
            elements *= size
        self.activations += 4 * elements
        self.shapes.append((name, shape))
        if self.parameters > MAX_PARAMETERS:
            raise _error(layer, name, f"brings the parameters to {self.parameters:,}, above the bound of "
                         f"{MAX_PARAMETERS:,}")
        if self.activations > MAX_ACTIVATION_BYTES:
            raise _error(layer, name, f"brings the activation memory to {self.activations / 2**20:,.0f} MiB per "
                         f"image, above the bound of {MAX_ACTIVATION_BYTES // 2**20} MiB")

    def sequence(self, layers: tuple[Layer, ...], shape: Shape) -> tuple[list[Entry], Shape]:
        """The named modules of a run of spatial layers and the shape they output."""
        entries: list[Entry] = []
        for layer in layers:
            if isinstance(layer, Dense):
                raise _error(layer, self.name("fc"), "fully connected layers belong at the end of the design, "
                             "outside residual and parallel blocks")
            shape = self.spatial(layer, shape, entries)
        return entries, shape

    def spatial(self, layer: Layer, shape: Shape, entries: list[Entry]) -> Shape:
        """Append ``layer``'s modules to ``entries``; return its output shape."""
        c, h, w = shape
        if isinstance(layer, (Conv, Pool)):
            name = self.name("conv" if isinstance(layer, Conv) else "pool")
            if h + 2 * layer.padding < layer.kernel or w + 2 * layer.padding < layer.kernel:
                least = layer.kernel - 2 * layer.padding
                raise _error(layer, name, f"needs at least {least}×{least} input and gets {h}×{w}")
            h = (h + 2 * layer.padding - layer.kernel) // layer.stride + 1
            w = (w + 2 * layer.padding - layer.kernel) // layer.stride + 1
            if isinstance(layer, Pool):
                pool = nn.MaxPool2d if layer.kind == "max" else nn.AvgPool2d
                entries.append((name, lambda: pool(layer.kernel, layer.stride, layer.padding)))
                self.add(name, layer, (c, h, w), 0)
                return c, h, w
            entries.append((name, _conv(c, layer)))
            self.add(name, layer, (layer.out, h, w), c * layer.out * layer.kernel**2 + layer.out * (not layer.bn))
            if layer.bn:
                self.norm(layer, layer.out, (layer.out, h, w), entries)
            if layer.relu:
                self.relu(layer, (layer.out, h, w), entries)
            return layer.out, h, w
        if isinstance(layer, BatchNorm):
            self.norm(layer, c, shape, entries)
        elif isinstance(layer, Relu):
            self.relu(layer, shape, entries)
        elif isinstance(layer, Dropout):
            name = self.name("drop")
            entries.append((name, lambda: nn.Dropout(layer.p)))
            self.add(name, layer, shape, 0)
        elif isinstance(layer, GlobalPool):
            name = self.name("gap")
            entries.append((name, lambda: nn.AdaptiveAvgPool2d(1)))
            self.add(name, layer, (c, 1, 1), 0)
            return c, 1, 1
        elif isinstance(layer, Residual):
            return self.residual(layer, shape, entries)
        elif isinstance(layer, Parallel):
            return self.parallel(layer, shape, entries)
        return shape

    def norm(self, layer: Layer, channels: int, shape: Shape, entries: list[Entry]) -> None:
        name = self.name("bn")
        entries.append((name, lambda: nn.BatchNorm2d(channels)))
        self.add(name, layer, shape, 2 * channels)

    def relu(self, layer: Layer, shape: tuple[int, ...], entries: list[Entry]) -> None:
        name = self.name("relu")
        entries.append((name, nn.ReLU))  # not in place: a relu first in a branch would overwrite the block's input
        self.add(name, layer, shape, 0)

    def residual(self, layer: Residual, shape: Shape, entries: list[Entry]) -> Shape:
        """A residual block: its body, and a 1×1 projection shortcut when the body changes the shape."""
        name = self.name("res")
        body, out = self.sequence(layer.body, shape)
        (c, h, w), (c_out, h_out, w_out) = shape, out
        shortcut: Factory = nn.Identity
        if out != shape:
            stride = next((s for s in range(1, 17) if (h - 1) // s + 1 == h_out and (w - 1) // s + 1 == w_out), 0)
            if not stride:
                raise _error(layer, name, f"its body turns {h}×{w} into {h_out}×{w_out}, which no 1×1 strided "
                             "projection can match; pad the convolutions to keep the size")
            shortcut = lambda: nn.Conv2d(c, c_out, 1, stride)  # noqa: E731
            self.add(f"{name}.shortcut", layer, out, c * c_out + c_out)
        entries.append((name, lambda: _ResidualBlock(_sequential(body), shortcut())))
        self.add(name, layer, out, 0)
        return out

    def parallel(self, layer: Parallel, shape: Shape, entries: list[Entry]) -> Shape:
        """Parallel branches: same input, same output size, channels concatenated."""
        name = self.name("mix")
        walked = [self.sequence(branch, shape) for branch in layer.branches]
        sizes = {out[1:] for _, out in walked}
        if len(sizes) > 1:
            listed = ", ".join(f"{h}×{w}" for _, (_, h, w) in walked)
            raise _error(layer, name, f"its branches output different sizes ({listed}); they must match to be "
                         "concatenated")
        channels = sum(out[0] for _, out in walked)
        branches = [(f"branch{i}", body) for i, (body, _) in enumerate(walked, start=1)]
        entries.append((name, lambda: _ParallelBlock(OrderedDict((n, _sequential(b)) for n, b in branches))))
        out = (channels, walked[0][1][1], walked[0][1][2])
        self.add(name, layer, out, 0)
        return out

    def head(self, layers: tuple[Layer, ...], features: int) -> list[Entry]:
        """The flatten and the dense layers (with their ReLUs and dropouts) after the feature maps."""
        entries: list[Entry] = [("flatten", nn.Flatten)]
        for layer in layers:
            if isinstance(layer, Dense):
                name = self.name("fc")
                entries.append((name, partial(nn.Linear, features, layer.out)))
                self.add(name, layer, (layer.out,), features * layer.out + layer.out)
                features = layer.out
                if layer.relu:
                    self.relu(layer, (features,), entries)
            elif isinstance(layer, Dropout):
                name = self.name("drop")
                entries.append((name, partial(nn.Dropout, layer.p)))
                self.add(name, layer, (features,), 0)
            elif isinstance(layer, Relu):
                self.relu(layer, (features,), entries)
            else:
                raise _error(layer, type(layer).__name__.lower(), "only fc, dropout and relu may follow an fc layer")
        return entries


def _error(layer: Layer, name: str, cause: str) -> DesignError:
    line, column = layer.at
    return DesignError(cause, name, line, column)


def _split(design: Design) -> tuple[tuple[Layer, ...], tuple[Layer, ...]]:
    """The layers before the first fc (feature maps) and from it on (the head)."""
    first = next((i for i, layer in enumerate(design.layers) if isinstance(layer, Dense)), None)
    if first is None:
        raise DesignError("the design must end with an fc layer, the classifier (e.g. fc 10)")
    if not any(isinstance(layer, (Conv, Residual, Parallel)) for layer in design.layers[:first]):
        raise DesignError("the design needs at least one conv layer before its fc layers")
    return design.layers[:first], design.layers[first:]


def _walk(design: Design) -> tuple[_Walk, list[Entry], list[Entry], int]:
    features_layers, head_layers = _split(design)
    walk = _Walk()
    features, (c, h, w) = walk.sequence(features_layers, design.input)
    if c * h * w > MAX_FEATURES * 64:
        raise _error(head_layers[0], "fc1", f"would flatten {c}×{h}×{w} = {c * h * w:,} values; pool the maps "
                     "smaller first (e.g. gap)")
    head = walk.head(head_layers, c * h * w)
    if not isinstance(head_layers[-1], Dense):
        raise DesignError("the design must end with an fc layer, the classifier (e.g. fc 10)")
    return walk, features, head, c


def check(design: Design | str) -> DesignFigures:
    """Shapes, parameters and activation memory of ``design`` (text or parsed), without building it."""
    design = parse(design) if isinstance(design, str) else design
    walk, _, _, channels = _walk(design)
    return DesignFigures(tuple(walk.shapes), walk.parameters, walk.activations, channels)


def _stages(entries: list[Entry]) -> tuple[tuple[str, str], ...]:
    """A stage per top-level conv, residual or parallel block, running up to the next one."""
    stages: list[tuple[str, str]] = []
    for name, _ in entries:
        if name.startswith(("conv", "res", "mix")) or not stages:
            stages.append((name, f"features.{name}"))
        else:
            stages[-1] = (stages[-1][0], f"features.{name}")
    return tuple(stages)


class DesignedModel(ExplorerModel):
    """A network built from a design: ``features`` (the maps) then ``head`` (flatten and dense layers)."""

    source = "designed"
    catalogue = False

    def __init__(self, design: Design) -> None:
        super().__init__()
        walk, features, head, channels = _walk(design)
        self.design = design
        self.input_shape = design.input
        self.features = _sequential(features)
        self.head = _sequential(head)
        self.classifier_name = "head." + next(name for name, _ in reversed(head) if name.startswith("fc"))
        self.stages = _stages(features)
        self.num_features = channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (N × C × H × W)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten and the dense layers; ``pre_logits`` stops before the classifier."""
        if not pre_logits:
            return self.head(x)
        for name, module in self.head.named_children():
            if f"head.{name}" == self.classifier_name:
                break
            x = module(x)
        return x


def build_design(design: Design | str, num_classes: int | None = None, in_channels: int | None = None) -> DesignedModel:
    """Build ``design`` (text or parsed); ``num_classes``/``in_channels`` override its classifier and input."""
    design = parse(design) if isinstance(design, str) else design
    if num_classes is not None:
        check_positive(num_classes, "num_classes")
        last = design.layers[-1]
        if isinstance(last, Dense):
            design = replace(design, layers=(*design.layers[:-1], replace(last, out=num_classes)))
    if in_channels is not None:
        check_positive(in_channels, "in_channels")
        design = replace(design, input=(in_channels, *design.input[1:]))
    return DesignedModel(design)
