"""Architecture facts read off the live model: blocks, diagram, traits, source code."""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass, replace

import torch
from torch import nn

from core import models
from core.analysis import format_pair, format_shape

# Layers that change nothing a diagram needs to show.
_QUIET = (nn.ReLU, nn.Dropout, nn.Flatten)


@dataclass(frozen=True)
class Block:
    """A run of identical blocks (count ≥ 1) in execution order."""

    first: str
    last: str
    type: str
    count: int
    output_shape: tuple[int, ...]
    params: int  # of the whole run
    params_each: int
    residual: bool
    detail: str

    @property
    def label(self) -> str:
        """Module name, or ``first … last`` for a run."""
        return self.first if self.count == 1 else f"{self.first} … {self.last}"


def block_modules(model: nn.Module) -> dict[nn.Module, str]:
    """Modules at block level, with their names: expand containers and the model itself, stop at anything else."""
    found: dict[nn.Module, str] = {}

    def visit(module: nn.Module, prefix: str) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}{child_name}"
            if isinstance(child, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
                visit(child, name + ".")
            else:
                found[child] = name

    visit(model, "")
    return found


def _detail(module: nn.Module) -> str:
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
        text = f"{format_pair(kernel)}, stride {format_pair(stride)}"
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            text += ", depthwise" if module.groups == module.in_channels else f", {module.groups} groups"
        return text
    roots = {name.split("_")[0] for name, _ in module.named_children() if name.startswith("branch")}
    return f"{len(roots)} parallel branches" if len(roots) > 1 else ""


@functools.lru_cache(maxsize=32)
def blocks(name: str) -> tuple[Block, ...]:
    """The model as a chain of blocks (runs of identical ones merged), read from a meta-device forward pass."""
    model_spec = models.spec(name)
    with torch.device("meta"):
        model = models.build(name).eval()
    modules = block_modules(model)
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    seen: set[str] = set()

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        module_name = modules[module]
        if module_name not in seen and not isinstance(module, _QUIET):
            seen.add(module_name)
            calls.append((module_name, module, tuple(output.shape[1:])))

    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        with torch.no_grad():
            model(torch.empty(1, model_spec.in_channels, model_spec.input_size, model_spec.input_size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    merged: list[Block] = []
    for module_name, module, shape in calls:
        params = sum(p.numel() for p in module.parameters())
        block = Block(module_name, module_name, type(module).__name__, 1, shape, params, params,
                      bool(getattr(module, "residual", False)), _detail(module))
        previous = merged[-1] if merged else None
        key = (block.type, block.output_shape, block.detail, block.params_each)
        if previous and key == (previous.type, previous.output_shape, previous.detail, previous.params_each):
            merged[-1] = replace(previous, last=module_name, count=previous.count + 1,
                                 params=previous.params + params)
        else:
            merged.append(block)
    return tuple(merged)


def diagram(name: str) -> str:
    """A Graphviz DOT chain of the model's blocks, with output shapes and parameter counts."""
    model_spec = models.spec(name)
    lines = [
        "digraph model {",
        '  graph [rankdir=TB, nodesep=0.2, ranksep=0.25, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a6fa5", '
        'fontname="Helvetica", fontsize=10];',
        '  edge [color="#4a6fa5", fontname="Helvetica", fontsize=9];',
        f'  input [label="input\\n{model_spec.in_channels}×{model_spec.input_size}×{model_spec.input_size}", '
        'shape=oval, fillcolor="#ffffff"];',
    ]
    previous = "input"
    for i, block in enumerate(blocks(name)):
        parts = [block.label, block.type + (f" ×{block.count}" if block.count > 1 else "")]
        parts += [block.detail] if block.detail else []
        parts += ["+ skip connection"] if block.residual else []
        parts += [f"{block.params:,} params"] if block.params else []
        colour = ', fillcolor="#fdf1e3", color="#c77d2e"' if block.residual else ""
        label = "\\n".join(parts)  # a DOT line break
        lines.append(f'  b{i} [label="{label}"{colour}];')
        lines.append(f'  {previous} -> b{i};')
        lines.append(f'  b{i}_out [label="{format_shape(block.output_shape)}", shape=plaintext, style="", fontsize=9];')
        lines.append(f"  {{rank=same; b{i}; b{i}_out;}}")
        lines.append(f"  b{i} -> b{i}_out [style=dotted, arrowhead=none];")
        previous = f"b{i}"
    lines.append("}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Traits:
    """Design traits of an architecture, counted from its modules."""

    kernels: tuple[str, ...]
    depthwise: bool
    residual_blocks: int
    residual_block_names: tuple[str, ...]
    blocks_with_skip_choice: int  # blocks that declare whether they have a skip connection
    normalisation: tuple[str, ...]
    dropout: bool
    branching_blocks: int


@functools.lru_cache(maxsize=32)
def traits(name: str) -> Traits:
    """Kernel sizes, skip connections, normalisation and dropout, read from the model's modules."""
    with torch.device("meta"):
        model = models.build(name)
    kernels: set[tuple[int, int]] = set()
    depthwise = False
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            kernels.add(tuple(module.kernel_size))
            depthwise |= module.groups > 1 and module.groups == module.in_channels
    norms = sorted({type(m).__name__ for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.LocalResponseNorm))})
    return Traits(
        kernels=tuple(f"{h}×{w}" for h, w in sorted(kernels, key=lambda k: (-k[0] * k[1], k))),
        depthwise=depthwise,
        residual_blocks=sum(1 for m in model.modules() if getattr(m, "residual", False)),
        residual_block_names=tuple(n for n, m in model.named_modules() if getattr(m, "residual", False)),
        blocks_with_skip_choice=sum(1 for m in model.modules() if hasattr(m, "residual")),
        normalisation=tuple(norms),
        dropout=any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()),
        branching_blocks=sum(1 for m in model.modules() if "parallel branches" in _detail(m)),
    )


def source(name: str) -> str:
    """The source code of the core module that defines model ``name``."""
    builder = models.spec(name).builder
    return inspect.getsource(sys.modules[builder.__module__])
