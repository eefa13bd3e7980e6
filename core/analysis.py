"""Layer-by-layer analysis of a model, computed from the live module.

One forward pass on the *meta* device (shapes only, no arithmetic, no memory)
records, for every leaf module call: its output shape, parameters, multiply-
accumulates (MACs), activation memory and receptive field. The receptive field is
propagated through every tensor operation, so branches (Inception) and skip
connections (ResNet, Xception) merge correctly: at a merge the larger field wins,
which is the field of the longest path.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from core import models

ModuleT = TypeVar("ModuleT", bound=nn.Module)

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
HEAD_ENTRY = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)  # where the feature map ends
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Field:
    """Receptive field (height, width) in input pixels, the jump (input pixels per output step),
    and the number of weight layers on the longest path so far."""

    height: int = 1
    width: int = 1
    jump_h: int = 1
    jump_w: int = 1
    depth: int = 0

    def grow(self, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> Field:
        """The field after a sliding window (convolution or pooling)."""
        return replace(
            self,
            height=self.height + (kernel[0] - 1) * dilation[0] * self.jump_h,
            width=self.width + (kernel[1] - 1) * dilation[1] * self.jump_w,
            jump_h=self.jump_h * stride[0],
            jump_w=self.jump_w * stride[1],
        )

    @staticmethod
    def merge(fields: list[Field]) -> Field:
        """At a merge (add, concatenate) each output sees the union of its inputs' fields: the tallest and the
        widest extent, taken per axis (Inception's 1×7 and 7×1 branches grow different axes), and the deepest path."""
        return Field(height=max(f.height for f in fields), width=max(f.width for f in fields),
                     jump_h=max(f.jump_h for f in fields), jump_w=max(f.jump_w for f in fields),
                     depth=max(f.depth for f in fields))


@dataclass(frozen=True)
class LayerRow:
    """One call of one leaf module."""

    index: int
    name: str
    type: str
    stage: str
    kernel: str
    stride: str
    padding: str
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    buffers: int
    macs: int
    activation_bytes: int
    receptive_field: tuple[int, int]
    jump: tuple[int, int]
    weight_layer: bool
    depth: int

    @property
    def non_trainable_params(self) -> int:
        """Parameters that are frozen (requires_grad False)."""
        return self.params - self.trainable_params


@dataclass(frozen=True)
class ModelSummary:
    """The analysis of one model at one input size."""

    name: str
    input_shape: tuple[int, int, int]
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    buffers: int
    unused: tuple[tuple[str, int], ...]  # modules not run at inference (e.g. auxiliary heads) and their parameters
    output_shape: tuple[int, ...]
    features_field: tuple[int, int] | None = None  # field of the tensor entering the head (forward_features' output)

    @property
    def non_trainable_params(self) -> int:
        """Frozen parameters (requires_grad False)."""
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates of one forward pass of one image."""
        return sum(row.macs for row in self.rows)

    @property
    def activation_bytes(self) -> int:
        """Bytes of all layer outputs for one image in float32 (an upper bound on what inference keeps)."""
        return sum(row.activation_bytes for row in self.rows)

    @property
    def weight_bytes(self) -> int:
        """Bytes the parameters and buffers take in float32."""
        return (self.total_params + self.buffers) * FLOAT32_BYTES

    @property
    def weight_layers(self) -> int:
        """Depth as papers count it: weight layers (conv, dense) on the longest path."""
        return max((row.depth for row in self.rows), default=0)

    @property
    def module_count(self) -> int:
        """Depth counted as modules: distinct leaf modules run in a forward pass."""
        return len({row.name for row in self.rows})

    @property
    def weight_layer_count(self) -> int:
        """All convolution and dense layers, shortcut projections and parallel branches included."""
        return len({row.name for row in self.rows if row.weight_layer})

    @property
    def receptive_field(self) -> tuple[int, int]:
        """Receptive field of the last feature map (what enters global pooling or flattening).

        The field of that tensor, not of the last layer run: Inception's last block concatenates four
        branches, and the last one run (its pooling branch) sees less than the block's output does.
        """
        if self.features_field is not None:
            return self.features_field
        spatial = [row for row in self.rows if len(row.output_shape) == 3 and not row.type.startswith("Adaptive")]
        return spatial[-1].receptive_field if spatial else self.rows[-1].receptive_field

    def params_by(self, key: str) -> dict[str, int]:
        """Sum parameters by ``"stage"`` or by ``"kind"`` (convolution, dense, normalisation)."""
        totals: dict[str, int] = {}
        for row in self.rows:
            label = row.stage if key == "stage" else layer_kind(row.type)
            totals[label] = totals.get(label, 0) + row.params
        return totals

    def records(self) -> list[dict[str, Any]]:
        """The rows as plain dicts, ready for a table."""
        return [
            {
                "#": row.index,
                "layer": row.name,
                "type": row.type,
                "stage": row.stage,
                "kernel": row.kernel,
                "stride": row.stride,
                "padding": row.padding,
                "output": format_shape(row.output_shape),
                "params": row.params,
                "trainable": row.trainable_params,
                "non-trainable": row.non_trainable_params,
                "MACs": row.macs,
                "activation KB": round(row.activation_bytes / 1024, 1),
                "receptive field": format_pair(row.receptive_field),
                "jump": format_pair(row.jump),
            }
            for row in self.rows
        ]


def layer_kind(type_name: str) -> str:
    """Group a layer type into convolution / dense / normalisation / other."""
    if "Conv" in type_name:
        return "convolution"
    if type_name == "Linear":
        return "dense"
    if "Norm" in type_name:
        return "normalisation"
    return "other"


def format_count(value: float | None, digits: int = 3) -> str:
    """The app's one rule for counts and MACs: ``digits`` significant digits and a K/M/G/T suffix.

    416_520 → "417 K", 25_557_032 → "25.6 M", 4_089_184_256 → "4.09 G", 15_470_264_320 → "15.5 G";
    below 1000 the number itself. Tables pair it with the exact value (in the CSV or on hover).
    """
    if value is None or math.isnan(value):
        return "—"
    rounded = float(f"{value:.{digits}g}")  # round first: 999,950 is "1.00 M", not "1000 K"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(rounded) >= scale:
            scaled = rounded / scale
            decimals = max(0, digits - len(str(int(abs(scaled)))))
            return f"{scaled:.{decimals}f} {suffix}"
    return f"{int(value):d}" if float(value).is_integer() else f"{value:.{digits}g}"


def format_shape(shape: tuple[int, ...]) -> str:
    """``(64, 56, 56)`` → ``"64×56×56"``."""
    return "×".join(str(d) for d in shape)


def format_pair(pair: tuple[int, int] | None) -> str:
    """``(7, 7)`` → ``"7"``, ``(1, 7)`` → ``"1×7"``, None → ``""``."""
    if pair is None:
        return ""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}×{pair[1]}"


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)


class _FieldTracker(TorchFunctionMode):
    """Carries a Field along every tensor operation of a forward pass.

    Tensors are kept alive in ``fields`` for the whole pass, so ``id()`` stays unique.
    """

    FLATTENING = {"flatten", "view", "reshape"}

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, Field]] = {}

    def get(self, tensor: torch.Tensor) -> Field | None:
        entry = self.fields.get(id(tensor))
        return entry[1] if entry else None

    def set(self, tensor: torch.Tensor, field: Field) -> None:
        self.fields[id(tensor)] = (tensor, field)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = list(tensors_in((args, kwargs)))
        known = [f for f in (self.get(t) for t in inputs) if f is not None]
        if known:
            field = Field.merge(known)
            outputs = list(tensors_in(out))
            name = getattr(func, "__name__", "")
            if name in self.FLATTENING and inputs and inputs[0].dim() == 4 and outputs and outputs[0].dim() == 2:
                # Each flattened value depends on the whole map: the window is the map itself.
                height, width = inputs[0].shape[-2:]
                field = field.grow((int(height), int(width)), (int(height), int(width)))
            for tensor in outputs:
                self.set(tensor, field)
        return out


def _window(module: nn.Module, input_shape: torch.Size) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """(kernel, stride, dilation) of a sliding-window module, or None if it has no window."""
    if isinstance(module, nn.Conv2d):
        return _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        dilation = getattr(module, "dilation", 1)
        return _pair(module.kernel_size), _pair(stride), _pair(dilation)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        height, width = int(input_shape[-2]), int(input_shape[-1])
        out_h, out_w = _pair(module.output_size if module.output_size is not None else (height, width))
        kernel = (max(1, math.ceil(height / out_h)), max(1, math.ceil(width / out_w)))
        stride = (max(1, height // out_h), max(1, width // out_w))
        return kernel, stride, (1, 1)
    return None


def _geometry(module: nn.Module) -> tuple[str, str, str]:
    """Kernel, stride and padding as display strings."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        return format_pair(_pair(module.kernel_size)), format_pair(_pair(stride)), format_pair(_pair(module.padding))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"→{format_pair(_pair(module.output_size))}", "", ""
    if isinstance(module, nn.LocalResponseNorm):
        return f"n={module.size}", "", ""
    return "", "", ""


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call for one image (convolutions and dense layers only)."""
    if isinstance(module, nn.Conv2d):
        kernel_h, kernel_w = _pair(module.kernel_size)
        per_output = (module.in_channels // module.groups) * kernel_h * kernel_w
        return per_output * output[0].numel()
    if isinstance(module, nn.Linear):
        return module.in_features * output[0].numel()
    return 0


def is_within(name: str, prefix: str) -> bool:
    """True if the dotted module ``name`` is ``prefix`` or lies inside it."""
    return name == prefix or name.startswith(prefix + ".")


def _stages(model: models.ExplorerModel, names: list[str]) -> list[str]:
    """The stage label of each row, in execution order (rows before a stage's end belong to it)."""
    labels: list[str | None] = [
        next((label for label, last in model.stages if is_within(name, last)), None) for name in names
    ]
    following = "head"
    for i in range(len(labels) - 1, -1, -1):
        if labels[i] is None:
            labels[i] = following
        else:
            following = str(labels[i])
    # Rows after the last stage's end are the head, even if a stage label was filled backwards.
    if model.stages:
        last_end = max((i for i, name in enumerate(names) if is_within(name, model.stages[-1][1])), default=-1)
        labels = [label if i <= last_end else "head" for i, label in enumerate(labels)]
    return [str(label) for label in labels]


def analyse(model: models.ExplorerModel, input_shape: tuple[int, int, int], name: str = "") -> ModelSummary:
    """Analyse ``model`` (on any device; it is copied to the meta device) for one C×H×W input.

    Runs in eval mode: layers used only in training (auxiliary heads) are listed in ``unused``.
    """
    meta = to_meta(model).eval()
    leaves = {module: module_name for module_name, module in meta.named_modules() if not list(module.children())}
    tracker = _FieldTracker()
    raw_rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    head_inputs: list[Field] = []  # the field entering the first pooling-to-a-vector, flattening or dense layer

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        module_name = leaves[module]
        source = next(tensors_in(inputs), None)
        field = (tracker.get(source) if source is not None else None) or Field()
        if not head_inputs and isinstance(module, HEAD_ENTRY):
            head_inputs.append(field)
        window = _window(module, source.shape) if source is not None else None
        if window is not None:
            field = field.grow(*window)
        if isinstance(module, WEIGHT_LAYERS):
            field = replace(field, depth=field.depth + 1)
        out = next(tensors_in(output))
        tracker.set(out, field)
        first_call = module_name not in seen
        seen.add(module_name)
        params = sum(p.numel() for p in module.parameters()) if first_call else 0
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad) if first_call else 0
        buffers = sum(b.numel() for n, b in module.named_buffers() if n != "num_batches_tracked") if first_call else 0
        raw_rows.append(dict(
            name=module_name, type=type(module).__name__, geometry=_geometry(module),
            output_shape=tuple(out.shape[1:]), params=params, trainable=trainable, buffers=buffers,
            macs=_macs(module, out), activation_bytes=out[0].numel() * out.element_size(),
            field=field, weight_layer=isinstance(module, WEIGHT_LAYERS),
        ))

    handles = [module.register_forward_hook(hook) for module in leaves]
    try:
        x = torch.empty(1, *input_shape, device="meta")
        tracker.set(x, Field())
        with torch.no_grad(), tracker:
            output = meta(x)
    finally:
        for handle in handles:
            handle.remove()

    stages = _stages(meta, [row["name"] for row in raw_rows])
    rows = tuple(
        LayerRow(
            index=i, name=row["name"], type=row["type"], stage=stage,
            kernel=row["geometry"][0], stride=row["geometry"][1], padding=row["geometry"][2],
            output_shape=row["output_shape"], params=row["params"], trainable_params=row["trainable"],
            buffers=row["buffers"], macs=row["macs"], activation_bytes=row["activation_bytes"],
            receptive_field=(row["field"].height, row["field"].width),
            jump=(row["field"].jump_h, row["field"].jump_w),
            weight_layer=row["weight_layer"], depth=row["field"].depth,
        )
        for i, (row, stage) in enumerate(zip(raw_rows, stages, strict=True), start=1)
    )
    unused = tuple(
        (module_name, sum(p.numel() for p in module.parameters()))
        for module, module_name in leaves.items()
        if module_name not in seen and any(True for _ in module.parameters())
    )
    logits, _ = meta.split_output(output)
    return ModelSummary(
        name=name or type(model).__name__,
        input_shape=input_shape,
        rows=rows,
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        buffers=sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")),
        unused=_group_unused(unused),
        output_shape=tuple(logits.shape[1:]),
        features_field=(head_inputs[0].height, head_inputs[0].width) if head_inputs else None,
    )


def _group_unused(unused: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """Sum unused leaf modules by their top-level parent (``AuxLogits.conv0.conv`` → ``AuxLogits``)."""
    totals: dict[str, int] = {}
    for module_name, count in unused:
        top = module_name.split(".")[0]
        totals[top] = totals.get(top, 0) + count
    return tuple(totals.items())


def to_meta(model: ModuleT) -> ModuleT:
    """A shape-only copy of ``model`` on the meta device; the original and its weights are untouched."""
    memo: dict[int, Any] = {
        id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
        for p in model.parameters()
    }
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    return copy.deepcopy(model, memo)


@models.registry.on_change
@functools.lru_cache(maxsize=64)
def summarize(name: str, input_size: int | None = None, num_classes: int | None = None,
              in_channels: int | None = None) -> ModelSummary:
    """Analyse registered model ``name`` at ``input_size`` (default: its native size). Cached.

    Raises UnknownModelError, InvalidArgumentError or InputSizeError (all ValueErrors) on bad input.
    """
    model_spec = models.spec(name)
    size = model_spec.input_size if input_size is None else models.check_input_size(name, input_size)
    with torch.device("meta"):
        model = models.build(name, num_classes=num_classes, in_channels=in_channels)
    channels = model_spec.in_channels if in_channels is None else in_channels
    return analyse(model, (channels, size, size), name=name)
