"""Feature visualisation on a trained LeNet-5 (digits): the optimised image drives its channel far above what
the data's mean image or noise does, and a conv1 channel's image shows that filter's own pattern."""

from __future__ import annotations

import threading

import pytest
import torch

from core import data, feature_vis, training
from core.errors import CancelledError, InvalidArgumentError


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, data.InMemoryData]:
    digits = data.load("digits")
    assert isinstance(digits, data.InMemoryData)
    config = training.TrainConfig(epochs=3, optimizer="adam", lr=3e-3, batch_size=64, weight_decay=0.0,
                                  device="cpu", cuda_graphs=False)
    return training.fit(config, digits).model.cpu().eval(), digits


def _normalised(images: torch.Tensor, digits: data.InMemoryData) -> torch.Tensor:
    mean = torch.tensor(digits.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.std).view(1, -1, 1, 1)
    return (images - mean) / std


@pytest.mark.parametrize(("layer", "channel"), [("features.4", 5), ("features.7", 7)])
def test_the_optimised_image_drives_its_channel_far_above_mean_and_noise(trained, layer: str, channel: int) -> None:
    model, digits = trained
    seen: list[float] = []
    result = feature_vis.visualise(model, layer, channel, 28, 1, digits.mean, digits.std, steps=128,
                                   progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert result.image.shape == (1, 28, 28) and 0 <= float(result.image.min()) <= float(result.image.max()) <= 1
    mean_image = torch.full((1, 1, 28, 28), float(digits.mean[0]))
    noise = torch.rand((8, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        best = float(feature_vis.channel_activation(model, layer, channel, _normalised(result.image[None], digits)))
        baseline = max(float(feature_vis.channel_activation(model, layer, channel, _normalised(mean_image, digits))),
                       float(feature_vis.channel_activation(model, layer, channel, _normalised(noise, digits)).mean()))
    assert best > 2 * max(baseline, 0.0) + 0.5, (best, baseline)


def test_a_conv1_image_shows_its_filters_pattern(trained) -> None:
    model, digits = trained
    weights = model.features[0].weight.detach()
    correlations = [feature_vis.patch_correlation(feature_vis.visualise(
        model, "features.0", channel, 28, 1, digits.mean, digits.std, steps=128, centre=True).image, weights[channel])
        for channel in range(3)]
    assert min(correlations) > 0.3 and sum(correlations) / 3 > 0.45, correlations  # measured 0.43–0.72


def test_bad_layer_channel_and_cancel(trained) -> None:
    model, digits = trained
    with pytest.raises(InvalidArgumentError):
        feature_vis.visualise(model, "nope", 0, 28, 1, digits.mean, digits.std, steps=2)
    with pytest.raises(InvalidArgumentError):
        feature_vis.visualise(model, "features.1", 99, 28, 1, digits.mean, digits.std, steps=2)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        feature_vis.visualise(model, "features.1", 0, 28, 1, digits.mean, digits.std, cancel=cancel)
    assert all(p.requires_grad for p in model.parameters())
