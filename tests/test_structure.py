"""Blocks, diagram, traits and source, read from the live models."""

from __future__ import annotations

import pytest
import torch

from core import devices, latency, models, structure
from core.errors import InvalidArgumentError
from tests.conftest import NAMES


@pytest.mark.parametrize("name", NAMES)
def test_blocks_cover_every_parameter(name: str) -> None:
    blocks = structure.blocks(name)
    total = sum(b.params for b in blocks)
    unused = {"inception_v3": 27_161_264 - 23_834_568}.get(name, 0)  # the auxiliary head does not run at inference
    with torch.device("meta"):
        assert total + unused == sum(p.numel() for p in models.build(name).parameters())


@pytest.mark.parametrize("name", NAMES)
def test_diagram_is_a_dot_chain_of_the_blocks(name: str) -> None:
    dot = structure.diagram(name)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for i, block in enumerate(structure.blocks(name)):
        assert f'b{i} [label="{block.label}' in dot


def test_runs_of_identical_blocks_are_merged() -> None:
    blocks = structure.blocks("xception")
    middle = next(b for b in blocks if b.count > 1)
    assert (middle.first, middle.last, middle.count) == ("block4", "block11", 8)
    assert middle.residual


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


def test_latency_is_measured() -> None:
    result = latency.measure("lenet5", 4, devices.pick_device("cpu"), repeats=2)
    assert result.median_ms > 0 and result.images_per_second > 0
    assert (result.batch_size, result.input_size, result.repeats) == (4, 28, 2)
    with pytest.raises(InvalidArgumentError):
        latency.measure("lenet5", 0, devices.pick_device("cpu"))
