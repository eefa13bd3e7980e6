"""Our models against the reference implementations, on real forward passes.

A randomly initialised torchvision/timm model is the oracle: its state dict must
load strictly into ours, and both must give the same logits in float64.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from core import models
from core.models.inception import Inception3

TORCHVISION = ["vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
SMALL = 64  # px: every layer runs (VGG's smallest input is 32), at a twelfth of the native cost

pytestmark = pytest.mark.slow  # whole models in float64


def load_into(ours: torch.nn.Module, reference: torch.nn.Module) -> torch.nn.Module:
    """The reference's weights in ours, strictly (same names, same shapes). Ours is built on the meta device:
    its own initialisation would be overwritten anyway, so only the reference pays for one."""
    ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    return ours


def assert_same_logits(ours: torch.nn.Module, reference: torch.nn.Module, size: int) -> None:
    load_into(ours, reference)
    ours, reference = ours.double().eval(), reference.double().eval()
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert expected.abs().max() > 0  # a real signal, not two zero vectors


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_weights_load_and_agree(name: str) -> None:
    reference = getattr(torchvision.models, name)(weights=None)
    with torch.device("meta"):
        ours = models.build(name)
    assert_same_logits(ours, reference, size=SMALL)


def test_torchvision_weights_agree_at_native_size_in_float32() -> None:
    reference = torchvision.models.resnet50(weights=None).eval()
    with torch.device("meta"):
        ours = models.build("resnet50")
    load_into(ours, reference).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transform_input", [False, True])
def test_inception_v3_agrees_with_torchvision(transform_input: bool) -> None:
    reference = torchvision.models.inception_v3(weights=None, init_weights=True, aux_logits=True,
                                                transform_input=transform_input)
    with torch.device("meta"):
        ours = Inception3(transform_input=transform_input)
    assert_same_logits(ours, reference, size=107)


def test_inception_v3_training_outputs_agree_with_torchvision() -> None:
    """In training mode both return main and auxiliary logits; dropout off so they are deterministic."""
    reference = torchvision.models.inception_v3(weights=None, init_weights=True, aux_logits=True, dropout=0.0)
    with torch.device("meta"):
        ours = Inception3(dropout=0.0)
    load_into(ours, reference)
    ours, reference = ours.double().train(), reference.double().train()
    x = torch.randn(2, 3, 299, 299, dtype=torch.float64)
    expected = reference(x)
    logits, auxiliary = ours.split_output(ours(x))
    torch.testing.assert_close(logits, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(auxiliary[0], expected.aux_logits, rtol=1e-5, atol=1e-5)


def test_xception_matches_timm_legacy_xception() -> None:
    reference = timm.create_model("legacy_xception", pretrained=False)
    with torch.device("meta"):
        ours = models.build("xception")
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    reference_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours_shapes == reference_shapes  # so the public ImageNet weights load unchanged
    assert_same_logits(ours, reference, size=SMALL)
