"""Architecture facts read off the live model: its topology (a drawable dataflow graph), traits, source code."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from core import models
from core.analysis import format_pair, format_shape, is_within, summarize, tensors_in


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


@models.registry.on_change
@functools.lru_cache(maxsize=32)
def traits(name: str) -> Traits:
    """Kernel sizes, skip connections, normalisation and dropout, read from the model's modules and its declared
    structure (residual and branching blocks)."""
    with torch.device("meta"):
        model = models.build(name)
    declared = model.structure()
    kernels: set[tuple[int, int]] = set()
    depthwise = False
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            kernels.add((module.kernel_size[0], module.kernel_size[-1]))
            depthwise |= module.groups > 1 and module.groups == module.in_channels
    norms = sorted({type(m).__name__ for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.LocalResponseNorm))})
    return Traits(
        kernels=tuple(f"{h}×{w}" for h, w in sorted(kernels, key=lambda k: (-k[0] * k[1], k))),
        depthwise=depthwise,
        residual_blocks=len(declared.residual),
        residual_block_names=declared.residual,
        blocks_with_skip_choice=len(declared.skip_choice),
        normalisation=tuple(norms),
        dropout=any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()),
        branching_blocks=len(declared.branching),
    )


def residual_blocks_per_stage(name: str) -> list[int]:
    """How many declared residual blocks each of the model's stages holds, in stage order."""
    with torch.device("meta"):
        model = models.build(name)
    order = [module_name for module_name, _ in model.named_modules()]
    ends = [order.index(last) for _, last in model.stages]
    counts = [0] * len(ends)
    for block in model.structure().residual:
        position = order.index(block)
        stage = next((i for i, end in enumerate(ends) if position <= end or is_within(block, order[end])), None)
        if stage is not None:
            counts[stage] += 1
    return counts


def source(name: str) -> str:
    """The source code of the module that defines model ``name`` (a design's: its text first, as a comment)."""
    spec = models.spec(name)
    module = inspect.getsource(sys.modules[spec.builder_module])
    if spec.origin == "design":
        text = name.split(":", 1)[1].replace("; ", "\n# ")
        return f"# Your design, built by the module below:\n# {text}\n\n{module}"
    return module


# ---------------------------------------------------------------------------------------------------------------
# The topology: the dataflow graph of the live model, drawn the way a paper draws it.
#
# One forward pass on the meta device records every leaf-module call and every merge of two data paths (a
# concatenation or an addition) as a node, with an edge wherever a tensor flows. Each block (a child of the model,
# containers expanded) is then shown closed or open: closed, a block that ends in a concatenation becomes its
# parallel branches and a concat node; one that ends in an addition becomes its body, an add node and the skip
# edge around the body; anything else one node. Open, every layer inside it is a node. Which blocks are branching
# or residual, and which modules pass shapes through, the model declares (``ExplorerModel.structure``).

_CONCAT_OPS = {"cat", "concat", "concatenate"}
_ADD_OPS = {"add", "add_", "__add__", "__iadd__", "__radd__"}

NodeKind = Literal["input", "layer", "block", "branch", "shortcut", "concat", "add", "merge"]


@dataclass(frozen=True)
class Node:
    """One box of the drawing: a layer, a closed block, a branch, a shortcut, or a merge of data paths."""

    id: str
    kind: NodeKind
    title: str
    detail: str
    block: str  # the block it belongs to ("" for the input)
    output_shape: tuple[int, ...]
    params: int


@dataclass(frozen=True)
class Edge:
    """A tensor flowing from one node to another; ``skip`` marks a shortcut around a block's body."""

    source: str
    target: str
    skip: bool = False


@dataclass(frozen=True)
class Topology:
    """The drawable graph of one model, with the blocks that can be opened and those that are open."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    openable: tuple[str, ...]  # blocks with more than one layer inside, in execution order
    opened: frozenset[str]

    def node(self, node_id: str) -> Node:
        """The node with this id."""
        return next(node for node in self.nodes if node.id == node_id)

    def successors(self, node_id: str) -> list[str]:
        """Ids of the nodes this one feeds."""
        return [edge.target for edge in self.edges if edge.source == node_id]

    def predecessors(self, node_id: str) -> list[str]:
        """Ids of the nodes that feed this one."""
        return [edge.source for edge in self.edges if edge.target == node_id]


@dataclass
class _Call:
    """A node of the fine graph: one leaf-module call or one merge."""

    id: str
    kind: NodeKind  # "input", "layer", "concat", "add" or "merge"
    module: str  # the leaf's name, or the innermost module running the merge
    type: str
    shape: tuple[int, ...]
    sources: list[str]


class _DataflowTracer(TorchFunctionMode):
    """Follows which call produced each tensor; a call or merge becomes a node of the fine graph."""

    def __init__(self) -> None:
        super().__init__()
        self.producer: dict[int, tuple[torch.Tensor, str]] = {}  # the tensor is kept alive, so id() stays unique
        self.calls: dict[str, _Call] = {}
        self.running: list[str] = []  # names of the modules being run, outermost first
        self.inside_leaf = 0

    def source_of(self, tensor: torch.Tensor) -> str | None:
        entry = self.producer.get(id(tensor))
        return entry[1] if entry else None

    def sources(self, value: object) -> list[str]:
        found: list[str] = []
        for tensor in tensors_in(value):
            source = self.source_of(tensor)
            if source is not None and source not in found:
                found.append(source)
        return found

    def produce(self, value: object, call_id: str) -> None:
        for tensor in tensors_in(value):
            self.producer[id(tensor)] = (tensor, call_id)

    def add_call(self, kind: NodeKind, module: str, type_name: str, output: object, sources: list[str]) -> str:
        call_id = module if kind == "layer" else f"{kind}@{module or 'model'}"
        base, n = call_id, 1
        while call_id in self.calls:
            n += 1
            call_id = f"{base}#{n}"
        shape = next((tuple(t.shape[1:]) for t in tensors_in(output)), ())
        self.calls[call_id] = _Call(call_id, kind, module, type_name, shape, sources)
        self.produce(output, call_id)
        return call_id

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.inside_leaf:
            return out
        sources = self.sources((args, kwargs))
        name = getattr(func, "__name__", "")
        if len(sources) > 1:
            kind: NodeKind = "concat" if name in _CONCAT_OPS else "add" if name in _ADD_OPS else "merge"
            self.add_call(kind, self.running[-1] if self.running else "", name, out, sources)
        elif sources:
            self.produce(out, sources[0])
        return out


def _trace(model: nn.Module, input_shape: tuple[int, ...],
           declared: models.Structure) -> tuple[dict[str, _Call], dict[str, tuple[str, str]]]:
    """The fine graph of one meta-device forward pass, and each declared block's (entry, exit) calls; the declared
    pass-through modules are drawn as the edge they sit on."""
    names = {module: module_name for module_name, module in model.named_modules()}
    blocks_of = {model.get_submodule(block): block for block in declared.blocks}
    tracer = _DataflowTracer()
    ends: dict[str, tuple[str, str]] = {}
    entry_of: dict[str, str] = {}

    def before(module: nn.Module, inputs: tuple) -> None:
        if tracer.inside_leaf:
            tracer.inside_leaf += 1
            return
        module_name = names[module]
        tracer.running.append(module_name)
        if module in blocks_of:
            entry_of[module_name] = (tracer.sources(inputs) or ["input"])[0]
        if not list(module.children()):
            tracer.inside_leaf = 1

    def after(module: nn.Module, inputs: tuple, output: object) -> None:
        if tracer.inside_leaf > 1:
            tracer.inside_leaf -= 1
            return
        module_name = names[module]
        if tracer.inside_leaf == 1:
            tracer.inside_leaf = 0
            sources = tracer.sources(inputs)
            if isinstance(module, declared.pass_through) and sources:
                tracer.produce(output, sources[0])
            else:
                tracer.add_call("layer", module_name, type(module).__name__, output, sources)
        tracer.running.pop()
        if module in blocks_of:
            exit_id = (tracer.sources(output) or [entry_of[module_name]])[0]
            ends[module_name] = (entry_of[module_name], exit_id)

    handles = [module.register_forward_pre_hook(before) for module in names if module is not model]
    handles += [module.register_forward_hook(after) for module in names if module is not model]
    try:
        x = torch.empty(1, *input_shape, device="meta")
        tracer.calls["input"] = _Call("input", "input", "", "input", tuple(input_shape), [])
        tracer.produce(x, "input")
        with torch.no_grad(), tracer:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return tracer.calls, ends


def _ancestors(calls: dict[str, _Call], start: str, within: set[str]) -> set[str]:
    """``start`` and every call inside ``within`` it depends on."""
    found: set[str] = set()
    stack = [start]
    while stack:
        call_id = stack.pop()
        if call_id in within and call_id not in found:
            found.add(call_id)
            stack.extend(calls[call_id].sources)
    return found


def _window_text(module: nn.Module) -> str:
    """``3×3 /2`` (kernel and stride) for a convolution or pooling, ``""`` for anything else."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return ""
    kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
    stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
    text = "×".join(map(str, kernel)) + (f" /{format_pair((stride[0], stride[-1]))}" if max(stride) > 1 else "")
    if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
        text += " depthwise"
    return text


def _kernel_text(module: nn.Module) -> str:
    """``3×3`` for a convolution, ``max 3×3 /2`` for a pooling, the type otherwise."""
    prefix = "max " if isinstance(module, nn.MaxPool2d) else "avg " if isinstance(module, nn.AvgPool2d) else ""
    return prefix + _window_text(module) if _window_text(module) else type(module).__name__


def _branch_text(model: nn.Module, calls: dict[str, _Call], members: set[str], order: list[str]) -> str:
    """The windows along a branch, in execution order: ``1×1 → 3×3 → 3×3``."""
    steps = []
    for call_id in order:
        if call_id not in members:
            continue
        call = calls[call_id]
        if call.kind == "layer":
            module = model.get_submodule(call.module)
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                steps.append(_kernel_text(module))
        elif call.kind in ("concat", "add"):
            steps.append("⧺" if call.kind == "concat" else "+")
    return " → ".join(steps) or "identity"


def _common_name(block: str, modules: list[str]) -> str:
    """The shared part of the branch's module names (``Mixed_5b.branch3x3dbl``), or the first one."""
    local = [name[len(block) + 1:] if name.startswith(block + ".") else name for name in modules]
    if not local:
        return "branch"
    prefix = local[0]
    for name in local[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip("_.")
    return prefix if len(prefix) >= 3 else local[0]


def _skip_flows(calls: dict[str, _Call], block_of: dict[str, str], params_in) -> set[tuple[str, str]]:
    """The flows (source call, target call) along shortcuts: at every addition, each path but the body (the one
    with the most parameters) is a shortcut, from the block's input to the add."""
    flows: set[tuple[str, str]] = set()
    for call in calls.values():
        if call.kind != "add" or len(call.sources) < 2:
            continue
        members = {m for m, owner in block_of.items() if owner == block_of.get(call.id)}
        paths = [_ancestors(calls, source, members) for source in call.sources]
        body = max(range(len(paths)), key=lambda i: (params_in(paths[i]), len(paths[i])))
        for i, (source, path) in enumerate(zip(call.sources, paths, strict=True)):
            if i == body:
                continue
            flows.add((source, call.id))
            flows.update((before, step) for step in path for before in calls[step].sources)
    return flows


@models.registry.on_change
@functools.lru_cache(maxsize=64)
def topology(name: str, opened: frozenset[str] = frozenset()) -> Topology:
    """The dataflow graph of model ``name`` at its native input size, with the blocks in ``opened`` shown layer by
    layer. Shapes and parameters are the layer analysis's; unknown names in ``opened`` are ignored."""
    model_spec = models.spec(name)
    with torch.device("meta"):
        model = models.build(name).eval()
    input_shape = (model_spec.in_channels, model_spec.input_size, model_spec.input_size)
    declared = model.structure()
    calls, ends = _trace(model, input_shape, declared)
    rows = {row.name: row for row in summarize(name).rows}
    params_of = {row_name: sum(r.params for r in summarize(name).rows if r.name == row_name) for row_name in rows}
    order = list(calls)
    block_names = [block for block in declared.blocks if block in ends]
    block_of: dict[str, str] = {}
    for call in calls.values():
        owner = next((block for block in block_names if is_within(call.module, block)), "")
        if owner:
            block_of[call.id] = owner

    def shape_of(call: _Call) -> tuple[int, ...]:
        return rows[call.module].output_shape if call.kind == "layer" and call.module in rows else call.shape

    def params_in(members: set[str]) -> int:
        return sum(params_of.get(calls[m].module, 0) for m in members if calls[m].kind == "layer")

    display: dict[str, str] = {"input": "input"}
    nodes: dict[str, Node] = {"input": Node("input", "input", "input", "", "", tuple(input_shape), 0)}
    openable: list[str] = []
    for block in block_names:
        members = {call_id for call_id, owner in block_of.items() if owner == block}
        if not members:  # a pass-through (ReLU, dropout): drawn as the edge it sits on
            continue
        if len(members) > 1:
            openable.append(block)
        module = model.get_submodule(block)
        _, exit_id = ends[block]
        exit_call = calls.get(exit_id)
        if block in opened or len(members) == 1:
            for m in members:
                call = calls[m]
                if call.kind == "layer":
                    detail = _window_text(model.get_submodule(call.module))
                    local = call.module[len(block) + 1:] if call.module.startswith(block + ".") else call.module
                    nodes[m] = Node(m, "layer", local, f"{call.type} {detail}".strip(), block,
                                    shape_of(call), params_of.get(call.module, 0))
                else:
                    nodes[m] = Node(m, call.kind, "concat" if call.kind == "concat" else "+" if call.kind == "add"
                                    else call.type, "", block, call.shape, 0)
                display[m] = m
            continue
        if exit_call is not None and exit_id in members and exit_call.kind == declared.merge_of(block):
            paths = [_ancestors(calls, source, members) for source in exit_call.sources]
            merge_id = f"{block}/{exit_call.kind}"
            nodes[merge_id] = Node(merge_id, exit_call.kind, "concat" if exit_call.kind == "concat" else "+", "",
                                   block, exit_call.shape, 0)
            display[exit_id] = merge_id
            if exit_call.kind == "concat":
                for i, path in enumerate(p for p in paths if p):
                    branch_id = f"{block}/branch{i + 1}"
                    last = max(path, key=order.index)
                    path_modules = [calls[m].module for m in order if m in path and calls[m].kind == "layer"]
                    nodes[branch_id] = Node(branch_id, "branch", _common_name(block, path_modules),
                                            _branch_text(model, calls, path, order), block,
                                            shape_of(calls[last]), params_in(path))
                    display.update(dict.fromkeys(path, branch_id))
            else:
                nonempty = [p for p in paths if p]
                body = max(nonempty, key=lambda p: (params_in(p), len(p)), default=set())
                last = max(body, key=order.index) if body else exit_id
                nodes[block] = Node(block, "block", block, type(module).__name__, block, shape_of(calls[last]),
                                    params_in(body))
                display.update(dict.fromkeys(body, block))
                for path in nonempty:
                    if path is not body:
                        shortcut_id = f"{block}/shortcut"
                        path_modules = [calls[m].module for m in order if m in path and calls[m].kind == "layer"]
                        nodes[shortcut_id] = Node(shortcut_id, "shortcut", _common_name(block, path_modules),
                                                  _branch_text(model, calls, path, order), block,
                                                  shape_of(calls[max(path, key=order.index)]), params_in(path))
                        display.update(dict.fromkeys(path, shortcut_id))
            for m in members:
                display.setdefault(m, block if block in nodes else merge_id)
            continue
        detail = _window_text(module)
        last = exit_id if exit_id in members else max(members, key=order.index)
        nodes[block] = Node(block, "block", block, f"{type(module).__name__} {detail}".strip(), block,
                            shape_of(calls[last]), params_in(members))
        display.update(dict.fromkeys(members, block))

    skip_flows = _skip_flows(calls, block_of, params_in)
    edges: list[Edge] = []
    for call in calls.values():
        target = display.get(call.id)
        for source_call in call.sources:
            source = display.get(source_call)
            if source is None or target is None or source == target:
                continue
            edge = Edge(source, target, (source_call, call.id) in skip_flows)
            if edge not in edges and Edge(source, target, not edge.skip) not in edges:
                edges.append(edge)
    used = {"input"} | {e.source for e in edges} | {e.target for e in edges}
    ordered = [nodes[n] for n in dict.fromkeys(display[c] for c in order if c in display) if n in used]
    return Topology(name, tuple(ordered), tuple(edges), tuple(openable), frozenset(opened) & set(openable))


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


_STYLE = {
    "input": 'shape=oval, fillcolor="#ffffff"',
    "layer": "",
    "block": "",
    "branch": 'fillcolor="#e8f4ea", color="#3d8b4f"',
    "shortcut": 'fillcolor="#fdf1e3", color="#c77d2e"',
    "concat": 'shape=box, style="filled", fillcolor="#3d8b4f", fontcolor="#ffffff", color="#3d8b4f"',
    "add": 'shape=circle, style="filled", fillcolor="#c77d2e", fontcolor="#ffffff", color="#c77d2e", fontsize=16',
    "merge": 'shape=diamond, style="filled", fillcolor="#dddddd"',
}


def topology_dot(graph: Topology, font_size: int = 11) -> str:
    """Graphviz DOT of a topology: blocks as clusters, branches side by side, skip edges in orange around bodies."""
    lines = [
        "digraph model {",
        '  graph [rankdir=TB, nodesep=0.25, ranksep=0.3, bgcolor="transparent", fontname="Helvetica", '
        f"fontsize={font_size}];",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a6fa5", '
        f'fontname="Helvetica", fontsize={font_size}];',
        f'  edge [color="#4a6fa5", fontname="Helvetica", fontsize={font_size - 1}];',
    ]

    def node_line(node: Node) -> str:
        if node.kind == "add":
            label = "+"
        else:
            parts = [node.title, node.detail, format_shape(node.output_shape)]
            parts += [f"{node.params:,} params"] if node.params else []
            label = "\\n".join(_dot_text(p) for p in parts if p)
        tooltip = _dot_text(f"{node.id}: {format_shape(node.output_shape)}")
        return f'  "{node.id}" [label="{label}", tooltip="{tooltip}", {_STYLE[node.kind]}];'.replace(", ]", "]")

    grouped: dict[str, list[Node]] = {}
    for node in graph.nodes:
        grouped.setdefault(node.block, []).append(node)
    for members in grouped.values():  # branches left to right in the order they are concatenated
        slots = [i for i, node in enumerate(members) if node.kind == "branch"]
        ordered = sorted((members[i] for i in slots), key=lambda n: int(n.id.rsplit("branch", 1)[1]))
        for slot, node in zip(slots, ordered, strict=True):
            members[slot] = node
    for block, members in grouped.items():
        clustered = block and (block in graph.opened or any(n.kind in ("branch", "add", "concat") for n in members))
        if clustered:
            kind = "open" if block in graph.opened else "closed"
            colour = "#4a6fa5" if kind == "open" else "#9aa9bf"
            lines.append(f'  subgraph "cluster_{block}" {{')
            lines.append(f'    label="{_dot_text(block)}"; style="rounded,dashed"; color="{colour}"; '
                         f'labeljust="l";')
            lines.extend("  " + node_line(node) for node in members)
            lines.append("  }")
        else:
            lines.extend(node_line(node) for node in members)
    for edge in graph.edges:
        style = ' [color="#c77d2e", penwidth=2.2, style=bold, tooltip="skip connection"]' if edge.skip else ""
        lines.append(f'  "{edge.source}" -> "{edge.target}"{style};')
    lines.append("}")
    return "\n".join(lines)


def diagram(name: str, opened: Iterable[str] = (), font_size: int = 11) -> str:
    """Graphviz DOT of model ``name``'s topology, with the blocks in ``opened`` drawn layer by layer."""
    return topology_dot(topology(name, frozenset(opened)), font_size)
