"""GoogLeNet, MobileNetV2 and EfficientNet-B0, written here, against torchvision's on real forward passes.

A randomly initialised torchvision model is the oracle: its state dict loads strictly into ours (same
module names, no key mapping) and both give the same outputs in float64, in evaluation and in training
mode (auxiliary heads, dropout and stochastic depth drawn from one seed). The models are not in the
registry yet, so they are built here directly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from core.analysis import analyse
from core.errors import InvalidArgumentError
from core.models.base import ExplorerModel
from core.models.efficientnet import ChannelMean, EfficientNet, efficientnet_b0
from core.models.googlenet import GoogLeNet, GoogLeNetOutput, googlenet
from core.models.mobilenet import mobilenet_v2
from core.training.evaluation import training_loss
from tests.footprint import MARGIN, NARROW, footprint, linearise

# name: (our builder, torchvision's builder with the matching arguments, torchvision's weights enum)
MODELS: dict[str, tuple[Callable[..., ExplorerModel], Callable[[], nn.Module], str]] = {
    "googlenet": (googlenet, lambda: torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True),
                  "GoogLeNet_Weights.IMAGENET1K_V1"),
    "mobilenet_v2": (mobilenet_v2, lambda: torchvision.models.mobilenet_v2(weights=None),
                     "MobileNet_V2_Weights.IMAGENET1K_V1"),
    "efficientnet_b0": (efficientnet_b0, lambda: torchvision.models.efficientnet_b0(weights=None),
                        "EfficientNet_B0_Weights.IMAGENET1K_V1"),
}
NAMES = list(MODELS)
SMALL = 64  # px: every layer runs, at a twelfth of the native cost


def load_into(ours: nn.Module, reference: nn.Module) -> nn.Module:
    """The reference's weights in ours, strictly (same names, same shapes)."""
    ours.load_state_dict(reference.state_dict(), strict=True)
    return ours


def pair(name: str) -> tuple[ExplorerModel, nn.Module]:
    """Ours with the torchvision reference's random weights, both in float64."""
    build, reference_builder, _ = MODELS[name]
    reference = reference_builder()
    ours = build()
    load_into(ours, reference)
    return ours.double(), reference.double()


@pytest.mark.slow  # whole models in float64
@pytest.mark.parametrize("name", NAMES)
def test_torchvision_state_dict_loads_strictly_and_logits_agree(name: str) -> None:
    ours, reference = pair(name)
    ours.eval()
    reference.eval()
    x = torch.randn(2, 3, SMALL, SMALL, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)
    assert expected.abs().max() > 0  # a real signal, not two zero vectors


@pytest.mark.slow  # whole models in float64
def test_googlenet_transform_input_agrees_with_torchvision() -> None:
    """The ported ImageNet weights are used with ``transform_input=True`` (torchvision sets it for them)."""
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=True)
    ours = load_into(GoogLeNet(transform_input=True), reference).double().eval()
    reference = reference.double().eval()
    x = torch.randn(2, 3, SMALL, SMALL, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-10, atol=1e-10)


@pytest.mark.slow  # whole models in float64
def test_googlenet_training_outputs_agree_with_torchvision_under_one_seed() -> None:
    """In training both return the main and both auxiliary logits; dropout (0.2 and 0.7) draws the same masks."""
    ours, reference = pair("googlenet")
    ours.train()
    reference.train()
    x = torch.randn(2, 3, 96, 96, dtype=torch.float64)
    torch.manual_seed(7)
    expected = reference(x)
    torch.manual_seed(7)
    output = ours(x)
    assert isinstance(output, GoogLeNetOutput)
    torch.testing.assert_close(output.logits, expected.logits, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(output.aux_logits1, expected.aux_logits1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(output.aux_logits2, expected.aux_logits2, rtol=1e-10, atol=1e-10)
    logits, auxiliary = ours.split_output(output)
    assert logits is output.logits and len(auxiliary) == 2
    loss, _ = training_loss(ours, output, torch.tensor([0, 1]), label_smoothing=0.0)
    main_only = nn.functional.cross_entropy(output.logits, torch.tensor([0, 1]))
    heads = sum(nn.functional.cross_entropy(a, torch.tensor([0, 1])) for a in auxiliary)
    torch.testing.assert_close(loss, main_only + 0.3 * heads)  # the paper's weight, 0.3, on each head


def test_googlenet_without_auxiliary_heads_returns_plain_logits_in_training() -> None:
    model = GoogLeNet(aux_logits=False).train()
    assert model.auxiliary_classifier_names == ()
    output = model(torch.randn(2, 3, SMALL, SMALL))
    assert isinstance(output, torch.Tensor) and output.shape == (2, 1000)


@pytest.mark.slow  # whole models in float64
def test_efficientnet_stochastic_depth_matches_torchvision_under_one_seed() -> None:
    """Same drop probability per block (0 → 0.2 × 15/16 with depth), and the same per-sample masks in training."""
    reference = torchvision.models.efficientnet_b0(weights=None, stochastic_depth_prob=0.9)
    ours = load_into(EfficientNet(stochastic_depth_prob=0.9), reference).double().train()
    reference = reference.double().train()
    ours_p = [m.p for m in ours.modules() if type(m).__name__ == "StochasticDepth"]
    reference_p = [m.p for m in reference.modules() if type(m).__name__ == "StochasticDepth"]
    assert ours_p == reference_p and len(ours_p) == 16
    assert [m.p for m in efficientnet_b0().modules() if type(m).__name__ == "StochasticDepth"][-1] == 0.2 * 15 / 16
    x = torch.randn(4, 3, SMALL, SMALL, dtype=torch.float64)
    outputs = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        expected = reference(x)
        torch.manual_seed(seed)
        actual = ours(x)
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)
        outputs.append(actual)
    assert not torch.allclose(outputs[0], outputs[1])  # the masks (and dropout) really are random
    ours.eval()
    with torch.no_grad():  # evaluation keeps every branch: deterministic
        torch.testing.assert_close(ours(x), ours(x))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_torchvision_published_one(name: str) -> None:
    """torchvision's weight metadata: GoogLeNet counted without its auxiliary heads (dropped after loading)."""
    build, _, weights = MODELS[name]
    model = GoogLeNet(aux_logits=False) if name == "googlenet" else build()
    count = sum(p.numel() for p in model.parameters())
    published = torchvision.models.get_weight(weights).meta["num_params"]
    assert count == published == {"googlenet": 6_624_904, "mobilenet_v2": 3_504_872,
                                  "efficientnet_b0": 5_288_548}[name]


def test_googlenet_auxiliary_heads_are_the_rest_of_torchvision_state_dict() -> None:
    with_heads = sum(p.numel() for p in googlenet().parameters())
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert with_heads == sum(p.numel() for p in reference.parameters()) == 13_004_888


@pytest.mark.parametrize("name", NAMES)
def test_analysis_macs_and_depth_match_published_figures(name: str) -> None:
    """MACs at 224×224 round to torchvision's ``_ops`` ("GFLOPS", which are MACs); GoogLeNet is 22 layers deep."""
    build, _, weights = MODELS[name]
    summary = analyse(build(), (3, 224, 224))
    assert round(summary.total_macs / 1e9, 3) == torchvision.models.get_weight(weights).meta["_ops"]
    assert summary.output_shape == (1000,)
    if name == "googlenet":
        assert summary.weight_layers == 22  # the paper: "22 layers deep when counting only layers with parameters"
        assert {n for n, _ in summary.unused} == {"aux1", "aux2"}


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_and_in_channels_variants(name: str) -> None:
    build, _, _ = MODELS[name]
    model = build(num_classes=10, in_channels=1).eval()
    assert (model.num_classes, model.in_channels) == (10, 1)
    with torch.no_grad():
        assert model(torch.randn(2, 1, SMALL, SMALL)).shape == (2, 10)
        features = model.forward_features(torch.randn(2, 1, SMALL, SMALL))
        assert features.shape[1] == model.num_features
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(7)
    assert model.num_classes == 7
    for _, last in model.stages:  # the fine-tuner's unfreezing points exist
        model.get_submodule(last)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidArgumentError):
            build(num_classes=bad)
        with pytest.raises(InvalidArgumentError):
            build(in_channels=bad)


def test_googlenet_reset_classifier_resets_both_auxiliary_heads() -> None:
    model = googlenet()
    model.reset_classifier(5)
    assert model.aux1 is not None and model.aux2 is not None
    assert (model.aux1.fc2.out_features, model.aux2.fc2.out_features) == (5, 5)


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name: str) -> None:
    build, _, _ = MODELS[name]
    model = build(num_classes=10).train()
    if isinstance(model, EfficientNet):  # no dropped branch, so every block gets a gradient
        for module in model.modules():
            if type(module).__name__ == "StochasticDepth":
                module.p = 0.0
    output = model(torch.randn(2, 3, SMALL, SMALL))
    loss, _ = training_loss(model, output, torch.tensor([1, 2]), label_smoothing=0.1)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    grad = model.get_classifier().weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_declared_structure_residual_blocks_and_branches() -> None:
    """Skip connections only where the block keeps its shape (10 of MobileNetV2's 17, 9 of B0's 16)."""
    mobilenet_blocks = [m for m in mobilenet_v2().modules() if hasattr(m, "residual")]
    efficientnet_blocks = [m for m in efficientnet_b0().modules() if hasattr(m, "residual")]
    assert (len(mobilenet_blocks), sum(m.residual for m in mobilenet_blocks)) == (17, 10)
    assert (len(efficientnet_blocks), sum(m.residual for m in efficientnet_blocks)) == (16, 9)
    modules = [m for m in googlenet().modules() if type(m).__name__ == "Inception"]
    assert len(modules) == 9
    assert all({n for n, _ in m.named_children()} == {"branch1", "branch2", "branch3", "branch4"} for m in modules)


# --- receptive fields against the input-gradient footprint (method of tests/test_receptive_fields.py) ---



def _linearised(model: nn.Module, detach_squeeze: bool = True) -> nn.Module:
    """``footprint.linearise`` (which cuts squeeze-and-excitation's mean from the graph), or with the mean kept
    in the graph if not ``detach_squeeze``."""
    return linearise(model, None if detach_squeeze else lambda child: child if isinstance(child, ChannelMean) else None)


def _footprint(model: ExplorerModel, height: int, width: int) -> tuple[int, int, int, int]:
    """The footprint of the central output position on a 3-channel input."""
    return footprint(model, 3, height, width)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "field"), [("googlenet", 379), ("mobilenet_v2", 491), ("efficientnet_b0", 851)])
def test_receptive_field_equals_the_measured_gradient_footprint(name: str, field: int) -> None:
    build, _, _ = MODELS[name]
    assert analyse(build(), (3, 224, 224)).receptive_field == (field, field)
    model = _linearised(build())
    tall = field + 2 * MARGIN
    top, bottom, _, _ = _footprint(model, tall, NARROW)
    _, _, left, right = _footprint(model, NARROW, tall)
    assert 0 < top and bottom < tall - 1 and 0 < left and right < tall - 1, "the input clips the field: enlarge it"
    assert (bottom - top + 1, right - left + 1) == (field, field)


def test_efficientnet_squeeze_and_excitation_sees_the_whole_input() -> None:
    """Why the reported field is the convolutions' one: through the squeeze, every pixel reaches every output."""
    model = _linearised(efficientnet_b0(), detach_squeeze=False)
    size = 96
    top, bottom, left, right = _footprint(model, size, size)
    assert (top, bottom, left, right) == (0, size - 1, 0, size - 1)
