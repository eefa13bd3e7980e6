"""Catalogue models: torchvision CNNs behind the explorer's interface, and the clear refusals."""

from __future__ import annotations

import pytest
import torch
import torchinfo
import torchvision

from core.analysis import analyse
from core.errors import ExplorerError
from core.explain import default_cam_layer, grad_cam
from core.models.base import Model
from core.models.catalogue import CatalogueError, build_catalogue, supported_models

NAMES = ["densenet121", "resnext50_32x4d", "wide_resnet50_2", "regnet_y_400mf", "shufflenet_v2_x1_0", "mnasnet0_5",
         "convnext_tiny", "efficientnet_v2_s", "mobilenet_v3_small"]
SMALL = ["regnet_y_400mf", "shufflenet_v2_x1_0", "mnasnet0_5", "mobilenet_v3_small"]  # cheap on a CPU


@pytest.mark.parametrize("name", NAMES)
def test_layer_analysis_counts_torchvisions_published_parameters(name: str) -> None:
    with torch.device("meta"):
        model = build_catalogue(name)
        one_channel = build_catalogue(name, num_classes=10, in_channels=1)
    published = next(iter(torchvision.models.get_model_weights(name))).meta["num_params"]
    assert analyse(model, (3, 64, 64)).total_params == sum(p.numel() for p in model.parameters()) == published
    assert isinstance(model, Model) and model.catalogue and model.source == "torchvision"
    assert one_channel.in_channels == 1 and one_channel.num_classes == 10
    features = one_channel.forward_features(torch.empty(2, 1, 64, 64, device="meta"))
    assert features.shape[:2] == (2, one_channel.num_features)
    assert one_channel.forward_head(features, pre_logits=True).shape[1] == one_channel.get_classifier().in_features
    assert one_channel.forward_head(features).shape == (2, 10) and one_channel.stages


def test_stages_are_the_trunks_top_level_blocks() -> None:
    with torch.device("meta"):
        resnext = build_catalogue("resnext50_32x4d")
        convnext = build_catalogue("convnext_tiny")
    assert [label for label, _ in resnext.stages] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert resnext.stages[0][1] == "maxpool" and convnext.stages[-1] == ("features.7", "features.7")


def test_analysis_agrees_with_torchinfo() -> None:
    model = build_catalogue("mnasnet0_5", num_classes=10, in_channels=1)
    info = torchinfo.summary(model, input_size=(1, 1, 64, 64), verbose=0)
    assert analyse(model, (1, 64, 64)).total_params == info.total_params


def test_state_dict_is_torchvisions() -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model("shufflenet_v2_x1_0", weights=None, num_classes=5).eval()
    model = build_catalogue("shufflenet_v2_x1_0", num_classes=5).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize("name", SMALL)
def test_forward_backward_a_training_step_and_grad_cam(name: str) -> None:
    torch.manual_seed(0)
    model = build_catalogue(name, num_classes=3, in_channels=1)
    x, y = torch.randn(4, 1, 64, 64), torch.tensor([0, 1, 2, 0])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.get_classifier().weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    optimizer.step()
    assert not torch.equal(before, model.get_classifier().weight)
    model.reset_classifier(7)
    model.eval()
    image = torch.randn(1, 1, 64, 64)
    assert model(image).shape == (1, 7)
    heat = grad_cam(model, image, default_cam_layer(model, image))
    assert heat.shape == (64, 64) and torch.isfinite(heat).all() and 0 <= heat.min() <= heat.max() <= 1


@pytest.mark.parametrize(("name", "words"), [
    ("vit_b_16", "vit_b_16 is a vision transformer: it has no convolutional receptive field"),
    ("swin_t", "Swin transformer"), ("maxvit_t", "MaxViT"),
    ("squeezenet1_0", "classifier is a 1×1 convolution"), ("inception_v3", "not adapted"),
    ("regnet_y_128gf", "above the explorer's bound"), ("<b>resnet</b>", "no classification model '<b>resnet</b>'"),
    ("x" * 10_000, "no classification model"),
])
def test_models_the_analysis_cannot_handle_are_refused_by_name(name: str, words: str) -> None:
    with pytest.raises(CatalogueError, match=None) as caught:
        build_catalogue(name)
    assert words in str(caught.value) and isinstance(caught.value, ExplorerError) and len(str(caught.value)) < 300


def test_supported_models_are_the_cnns() -> None:
    supported = supported_models()
    assert {"resnet18", "densenet121", "convnext_tiny", "mobilenet_v3_small"} <= set(supported)
    assert not any(name.startswith(("vit_", "swin_", "maxvit", "squeezenet")) for name in supported)
