"""Models opened by name beside the zoo: a design (``design:TEXT``) and a torchvision CNN (``tv:NAME``) go through
the same name-keyed views as a registered model (spec, layer analysis, topology, training), and the design
library in the run store keeps what it is given."""

from __future__ import annotations

import pytest
import torch

import core.models as models
from core import structure, training
from core.analysis import summarize
from core.errors import ExplorerError, InvalidArgumentError
from core.models import opened
from core.models.design_spec import DesignError
from core.runs import designs
from tests.conftest import FAST, tiny
from tests.hostile import MARKDOWN

LENET = "name lenet; input 1x28x28; conv 6 k5 p2; maxpool 2; conv 16 k5; maxpool 2; conv 120 k5; fc 84; fc 10"
BLOCKS = ("name blocks; input 3x32x32; conv 16 k3 p1 bn; residual { conv 16 k3 p1 bn; conv 16 k3 p1 }; "
          "parallel { conv 8 k1 | conv 8 k3 p1 | maxpool 3 s1 p1 }; gap; dropout 0.5; fc 10")


def test_a_design_name_is_its_canonical_text_and_opens_a_design_spec() -> None:
    name = opened.design_name("name lenet\ninput 1x28x28\nconv 6   k5 p2\nmaxpool 2\nconv 16 k5\nmaxpool 2\n"
                              "conv 120 k5\nfc 84\nfc 10")
    assert name == opened.design_name(LENET)  # the same design, written two ways, is one model
    spec = models.spec(name)
    assert (spec.origin, spec.display_name, spec.input_size, spec.in_channels, spec.num_classes) == (
        "design", "lenet (your design)", 28, 1, 10)
    assert spec.references == ()  # no published figures: no fidelity tab
    assert sum(p.numel() for p in models.build(name).parameters()) == sum(
        p.numel() for p in models.build("lenet5").parameters())


@pytest.mark.parametrize(("text", "words"), [
    ("input 1x28x32; conv 6 k5; fc 10", "square"),
    ("input 1x4x4; conv 6 k5; fc 10", "conv"),
    ("input 1x28x28; conv -3 k5; fc 10", ""),
    (MARKDOWN, ""),
    ("x" * 50_000, ""),
])
def test_a_design_that_does_not_fit_is_a_typed_error(text: str, words: str) -> None:
    with pytest.raises(DesignError) as raised:
        models.spec(opened.DESIGN_PREFIX + text)
    assert words in str(raised.value)
    assert isinstance(raised.value, ExplorerError)


@pytest.mark.parametrize("text", [LENET, BLOCKS])
def test_the_name_keyed_views_work_on_a_design(text: str) -> None:
    name = opened.design_name(text)
    summary = summarize(name)
    spec = models.spec(name)
    assert summary.total_params == sum(p.numel() for p in models.build(name).parameters())
    assert summary.receptive_field[0] > 1
    graph = structure.topology(name)
    assert graph.nodes
    assert "digraph" in structure.diagram(name)
    merges = {getattr(m, "merge", None) for m in models.build(name).modules()}
    if "residual" in text:
        assert {"add", "concat"} <= merges  # the blocks declare their merge; nothing is guessed from names
    assert models.input_size_range(name)[0] <= spec.input_size


def test_a_design_trains_on_digit_like_data() -> None:
    name = opened.design_name(LENET)
    result = training.fit(training.TrainConfig(arch=name, epochs=3, **FAST), tiny())
    assert result.test is not None and result.test.accuracy > 0.5
    assert result.model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)  # the classifier follows the data's classes


def test_a_catalogue_model_opens_by_name_with_torchvisions_figures() -> None:
    spec = models.spec("tv:shufflenet_v2_x0_5")
    assert (spec.origin, spec.input_size) == ("catalogue", 224)
    params = {ref.metric: ref.value for ref in spec.references}["params"]
    model = models.build("tv:shufflenet_v2_x0_5")
    assert sum(p.numel() for p in model.parameters()) == params == 1_366_792
    small = models.build("tv:shufflenet_v2_x0_5", num_classes=3, in_channels=1)
    assert small(torch.zeros(1, 1, 64, 64)).shape == (1, 3)


@pytest.mark.parametrize("name", ["tv:vit_b_16", "tv:squeezenet1_1", "tv:no_such_model", "tv:", "tv:../../etc/passwd"])
def test_a_catalogue_name_the_explorer_cannot_open_is_a_typed_error(name: str) -> None:
    with pytest.raises(ExplorerError):
        models.spec(name)


def test_the_design_library_keeps_each_design_once_and_never_overwrites(run_store) -> None:
    first = designs.save(run_store, LENET)
    again = designs.save(run_store, LENET.replace("; ", "\n"))
    assert again == first  # the same design: one entry
    other = designs.save(run_store, LENET.replace("fc 84", "fc 32"))  # the same name, another design
    assert other.id != first.id and other.name == first.name == "lenet"
    assert {d.id for d in designs.library(run_store)} == {first.id, other.id}
    assert designs.get(run_store, first.id).text == first.text
    designs.delete(run_store, first.id)
    assert [d.id for d in designs.library(run_store)] == [other.id]
    with pytest.raises(InvalidArgumentError):
        designs.get(run_store, first.id)


@pytest.mark.parametrize("text", ["input 1x4x4; conv 6 k5; fc 10", MARKDOWN, "name ☃<b>x</b>; input 1x8x8; fc 2"])
def test_the_library_keeps_only_designs_that_fit(run_store, text: str) -> None:
    try:
        kept = designs.save(run_store, text)
    except DesignError:
        assert designs.library(run_store) == []
    else:
        assert designs.get(run_store, kept.id).text == kept.text


def test_a_designs_source_is_its_text_then_the_module_that_builds_it() -> None:
    source = structure.source(opened.design_name(LENET))
    assert source.startswith("# Your design") and "# conv 120 k5" in source and "class DesignedModel" in source
    assert models.spec("tv:shufflenet_v2_x0_5").builder_module == "core.models.catalogue"
