"""Blocks, diagram, traits and source, read from the live models."""

from __future__ import annotations

import pytest
import torch

from core import analysis, models, structure
from tests.conftest import NAMES


@pytest.mark.parametrize("name", NAMES)
def test_topology_covers_every_parameter_once(name: str) -> None:
    graph = structure.topology(name)
    with torch.device("meta"):
        model = models.build(name)
    # Auxiliary heads (Inception-v3's, GoogLeNet's two) do not run at inference, so the diagram leaves them out.
    heads = {head.split(".")[0] for head in model.auxiliary_classifier_names}
    unused = sum(p.numel() for head in heads for p in model.get_submodule(head).parameters())
    assert sum(n.params for n in graph.nodes) + unused == sum(p.numel() for p in model.parameters())
    ids = [n.id for n in graph.nodes]
    assert len(ids) == len(set(ids)) and ids[0] == "input"
    assert all(e.source in ids and e.target in ids for e in graph.edges)
    assert all(graph.predecessors(node_id) for node_id in ids[1:]), "every node is fed by another"


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg16", "vgg19"])
def test_plain_networks_are_chains(name: str) -> None:
    graph = structure.topology(name)
    assert all(len(graph.successors(n.id)) <= 1 and len(graph.predecessors(n.id)) <= 1 for n in graph.nodes)
    assert not any(e.skip for e in graph.edges)
    assert not any(n.kind in ("add", "concat", "branch") for n in graph.nodes)


def test_inception_draws_parallel_branches_joined_by_a_concatenation() -> None:
    graph = structure.topology("inception_v3")
    concats = [n for n in graph.nodes if n.kind == "concat"]
    assert len(concats) == 11  # 3 × A, B, 4 × C, D, 2 × E
    widest = max(concats, key=lambda n: len(graph.predecessors(n.id)))
    branches = graph.predecessors(widest.id)
    assert len(branches) >= 4 and all(graph.node(b).kind == "branch" for b in branches)
    feeding = {tuple(graph.predecessors(b)) for b in branches}
    assert len(feeding) == 1, "the branches fan out from one input"
    five_b = [graph.node(b) for b in graph.predecessors("Mixed_5b/concat")]
    assert [b.detail for b in five_b] == ["1×1", "1×1 → 5×5", "1×1 → 3×3 → 3×3", "avg 3×3 → 1×1"]
    assert graph.node("Mixed_5b/concat").output_shape == (256, 35, 35)
    assert sum(b.params for b in five_b) == sum(r.params for r in analysis.summarize("inception_v3").rows
                                                if r.name.startswith("Mixed_5b."))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet152"])
def test_every_residual_block_has_a_skip_edge_around_its_body(name: str) -> None:
    graph = structure.topology(name)
    residual = structure.traits(name).residual_block_names
    assert residual
    for block in residual:
        add = graph.node(f"{block}/add")
        into = [e for e in graph.edges if e.target == add.id]
        assert any(e.source == block and not e.skip for e in into), "the body feeds the add"
        assert any(e.skip for e in into), f"{block} has no skip edge"
        body_input = graph.predecessors(block)
        skip_start = next(e.source for e in into if e.skip)
        # The skip leaves from where the body starts (identity) or goes through a projection that does.
        assert skip_start in body_input or graph.predecessors(skip_start) == body_input


def test_xception_entry_middle_and_exit_blocks_have_skip_edges() -> None:
    graph = structure.topology("xception")
    for i in range(1, 13):
        assert any(e.skip and e.target == f"block{i}/add" for e in graph.edges), f"block{i}"
    projections = [n for n in graph.nodes if n.kind == "shortcut"]
    assert [n.block for n in projections] == ["block1", "block2", "block3", "block12"]  # width or stride changes


@pytest.mark.parametrize(("name", "block"), [("inception_v3", "Mixed_5b"), ("resnet50", "layer2.0"),
                                             ("xception", "block4")])
def test_opening_a_block_shows_its_layers_with_shapes_and_parameters(name: str, block: str) -> None:
    closed = structure.topology(name)
    graph = structure.topology(name, frozenset({block}))
    assert block in closed.openable and graph.opened == {block}
    rows = [r for r in analysis.summarize(name).rows if r.name.startswith(block + ".") and r.type != "ReLU"]
    layers = {n.id: n for n in graph.nodes if n.block == block and n.kind == "layer"}
    assert set(layers) == {r.name for r in rows}
    for row in rows:
        assert layers[row.name].output_shape == row.output_shape
        assert layers[row.name].params == row.params
    dot = structure.diagram(name, [block])
    assert f'subgraph "cluster_{block}"' in dot
    assert all(f'"{layer}" [label="{layer[len(block) + 1:]}\\n' in dot for layer in layers)
    assert len(graph.nodes) > len(closed.nodes)
    assert structure.topology(name, frozenset({"no-such-block"})).opened == frozenset()


@pytest.mark.parametrize("name", NAMES)
def test_diagram_is_dot_with_every_node(name: str) -> None:
    dot = structure.diagram(name)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    for node in structure.topology(name).nodes:
        assert f'"{node.id}" [label=' in dot


def test_traits() -> None:
    assert structure.traits("vgg16").kernels == ("3×3",)
    assert structure.traits("xception").depthwise
    assert structure.traits("resnet50").residual_blocks == 16
    assert structure.traits("alexnet").normalisation == ("LocalResponseNorm",)
    assert structure.traits("inception_v3").branching_blocks == 11
    assert not structure.traits("lenet5").dropout


@pytest.mark.parametrize("name", NAMES)
def test_source_is_the_defining_module(name: str) -> None:
    source = structure.source(name)
    assert "class " in source and "def forward" in source
    assert "streamlit" not in source
