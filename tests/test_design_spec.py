"""The design-your-own spec: parsing, canonical text, shape checks, bounds, hostile text, and the built model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.models as models
from core.analysis import analyse
from core.errors import ExplorerError
from core.models.design_spec import MAX_LAYERS, Conv, Dense, DesignError, Parallel, Residual, format_design, parse
from core.models.designed import MAX_PARAMETERS, build_design, check
from tests.hostile import MARKDOWN

LENET = "name lenet; input 1x28x28; conv 6 k5 p2; maxpool 2; conv 16 k5; maxpool 2; conv 120 k5; fc 84; fc 10"
BLOCKS = ("name blocks\ninput 3x32x32\nconv 16 k3 p1 bn\nresidual { conv 16 k3 p1 bn; conv 16 k3 p1 }\n"
          "residual { conv 32 k3 s2 p1; conv 32 k3 p1 }\n"
          "parallel { conv 8 k1 | conv 8 k3 p1 | maxpool 3 s1 p1 }\ngap; dropout 0.5; fc 10")


def test_lenet_design_has_the_zoo_lenets_parameter_count() -> None:
    designed = build_design(LENET)
    zoo = models.build("lenet5")
    count = sum(p.numel() for p in designed.parameters())
    assert count == sum(p.numel() for p in zoo.parameters()) == check(LENET).parameters == 61_706
    assert [name for name, _ in designed.features.named_children()][:3] == ["conv1", "relu1", "pool1"]
    assert designed.classifier_name == "head.fc2" and designed.num_classes == 10 and designed.in_channels == 1
    assert analyse(designed, (1, 28, 28)).total_params == count


def test_defaults_relu_after_conv_and_fc_but_not_the_classifier_or_a_residual_bodys_last() -> None:
    design = parse(BLOCKS)
    assert isinstance(design.layers[0], Conv) and design.layers[0].relu and design.layers[0].bn
    residual = design.layers[1]
    assert isinstance(residual, Residual) and residual.body[0].relu and not residual.body[-1].relu  # type: ignore[union-attr]
    assert isinstance(design.layers[-1], Dense) and not design.layers[-1].relu
    assert parse("input 1x8x8; conv 4 k3 linear; fc 5 relu; fc 3 relu").layers[0].relu is False  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [LENET, BLOCKS, "input 1x8x8\nconv 4 k3 linear\nfc 5 linear\ndropout 0.25\nfc 3 relu",
                                  "input 2x9x9; parallel { residual { conv 2 k1 } | avgpool 3 s1 p1 }; bn; relu; fc 2"])
def test_canonical_text_round_trips(text: str) -> None:
    design = parse(text)
    canonical = format_design(design)
    assert "\n" not in canonical and parse(canonical) == design and format_design(parse(canonical)) == canonical


def test_residual_and_parallel_designs_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = build_design(BLOCKS)
    names = dict(model.named_modules())
    assert "features.res2.shortcut" in names and "features.mix1.branch3.pool1" in names  # projection: 16→32, /2
    assert isinstance(parse(BLOCKS).layers[3], Parallel)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10) and model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 48)
    logits.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == check(BLOCKS).parameters
    assert analyse(model, (3, 32, 32)).total_params == check(BLOCKS).parameters  # the layer table takes it
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert build_design(BLOCKS, num_classes=4, in_channels=1)(torch.randn(1, 1, 32, 32)).shape == (1, 4)


def test_a_relu_first_in_a_branch_does_not_overwrite_the_blocks_input() -> None:
    model = build_design("input 1x4x4; parallel { relu | conv 1 k1 linear }; fc 2").eval()
    x = -torch.ones(1, 1, 4, 4)
    model(x)
    assert (x == -1).all()


@pytest.mark.parametrize(("text", "layer", "marker", "words"), [
    ("input 1x28x28; conv 6 k5; maxpool 2; conv 16 k5; maxpool 2; conv 120 k5; fc 10", "conv3", "conv 120",
     "needs at least 5×5 input and gets 4×4"),
    ("input 1x28x28; conv 8 k3; fc 1000000", "fc", "1000000", "from 1 to 65536"),
    ("input 1x28x28; residual { conv 8 k3 }; fc 10", "res1", "residual", "no 1×1 strided projection"),
    ("input 1x28x28; parallel { conv 8 k3 | conv 8 k1 }; fc 10", "mix1", "parallel", "different sizes (26×26, 28×28)"),
    ("input 1x28x28; conv 8 k3; fc 10; conv 3 k1", "conv", "conv 3", "only fc, dropout and relu"),
    ("input 16x512x512; conv 4096 k3 p1; fc 10", "conv1", "conv", "activation memory"),
    ("input 1x28x28; conv 8 k3; gap; fc 6000; fc 6000; fc 6000; fc 10", "fc3", "fc 6000; fc 10",
     f"above the bound of {MAX_PARAMETERS:,}"),
    ("input 1x28x28; conv -3 k3; fc 10", "conv", "-3", "whole number"),
    ("input 1x28x28; conv 8 k99; fc 10", "conv", "8 k99", "kernel must be from 1 to 31"),
    ("input 1x28x28; dropout 1.5; conv 8 k3; fc 10", "dropout", "1.5", "probability"),
    ("input 1x28x28; residual { conv 8 k3 p1 ; fc 10", "residual", "residual", "no closing }"),
    ("input 1x28x28; conv 8 k3 q4; fc 10", "conv", "q4", "unknown option"),
    ("input 1x28x28; conv 8 k3; fc 10; dropout 0.5", "", "", "must end with an fc layer"),
])
def test_errors_name_the_layer_the_place_and_the_cause(text: str, layer: str, marker: str, words: str) -> None:
    with pytest.raises(DesignError) as caught:
        check(text)
    error = caught.value
    place = (1, text.index(marker) + 1) if marker else (0, 0)
    assert (error.layer, (error.line, error.column)) == (layer, place) and words in error.cause
    assert isinstance(error, ExplorerError) and words in str(error)


@pytest.mark.parametrize("text", [
    "", "   \n;;;", "conv 8 k3", "input 1x28x28", "input 1x28x28; fc 10", "input 1x28x28; conv 8 k3",
    "input 0x28x28; conv 8 k3; fc 2", "input 1x99999x28; conv 8 k3; fc 2", "input 1x28; conv 8 k3; fc 2",
    "input 1x28x28; conv " + "9" * 5000 + " k3; fc 2", "input 1x28x28; conv 1e9 k3; fc 2",
    "input 1x28x28; conv ٣ k3; fc 2", "input 1x28x28; conv 8 k３; fc 2", "input 1x28x28;" + " conv 1 k1;" * 10_000,
    "input 1x28x28; " + "residual { " * 50 + "conv 1 k1" + " }" * 50 + "; fc 2", "x" * 10**6, "}}}}|||{{{",
    "name " + MARKDOWN + "; input 1x4x4; conv 1 k1; fc 2", "name <script>; input 1x4x4; conv 1 k1; fc 2",
    "input 1x4x4; " + MARKDOWN, "input 1x28x28\x00; conv 1 k1; fc 2", "input 1x4x4; parallel { | conv 1 k1 }; fc 2",
    "input 1x4x4; residual { conv 1 k1 | conv 1 k1 }; fc 2", "input 1x4x4; conv 1 k1; name x; fc 2",
    "input 1x4x4; conv 1 k1 bn bn; fc 2", "input 1x4x4; maxpool 2 p2; conv 1 k1; fc 2",
])
def test_hostile_specs_raise_only_design_errors(text: str) -> None:
    with pytest.raises(DesignError) as caught:
        check(text)
    assert len(str(caught.value)) < 400  # a bounded message, whatever the text


def test_ten_thousand_layers_are_refused_at_the_bound() -> None:
    text = "input 1x28x28\n" + "conv 1 k1\n" * 10_000 + "fc 2"
    with pytest.raises(DesignError, match=f"at most {MAX_LAYERS} layers"):
        parse(text[:19_000] + "\nfc 2")


_WORDS = st.sampled_from(["conv", "fc", "maxpool", "avgpool", "gap", "bn", "relu", "dropout", "residual", "parallel",
                          "input", "name", "{", "}", "|", ";", "\n", "k3", "s2", "p1", "0.5", "1x8x8", "3", "-1",
                          "99999999999", "bn", "linear", "é", "<b>", "k0", "p9", "1x1x1"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_WORDS, max_size=40))
def test_any_word_soup_is_a_design_or_a_design_error(words: list[str]) -> None:
    text = "input 1x8x8 " + " ".join(words)
    try:
        design = parse(text)
    except DesignError:
        return
    assert parse(format_design(design)) == design
    try:
        figures = check(design)
    except DesignError:
        return
    assert figures.parameters <= MAX_PARAMETERS
    model = build_design(design).eval()
    assert model(torch.zeros(1, *design.input)).shape == (1, model.num_classes)


def test_grad_cam_on_a_designed_network_finds_a_planted_square() -> None:
    """Trained to tell a bright square from noise, the design's Grad-CAM peaks on the square."""
    from core.explain import grad_cam

    torch.manual_seed(0)
    model = build_design("input 1x24x24; conv 8 k3 p1; conv 8 k3 p1; gap; fc 2")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        x, labels, places = 0.1 * torch.randn(n, 1, 24, 24), torch.arange(n) % 2, []
        for i in range(n):
            top, left = (int(v) for v in torch.randint(0, 19, (2,)))
            places.append((top, left))
            if labels[i]:
                x[i, 0, top:top + 5, left:left + 5] += 1.0
        return x, labels, places

    for _ in range(100):
        x, labels, _ = batch(32)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()
    model.eval()
    hits = 0
    for _ in range(10):
        x, _, places = batch(2)
        heat = grad_cam(model, x[1:2], "features.conv2", class_index=1)
        row, column = divmod(int(heat.argmax()), 24)
        top, left = places[1]
        hits += top - 2 <= row <= top + 6 and left - 2 <= column <= left + 6
    assert hits >= 8
