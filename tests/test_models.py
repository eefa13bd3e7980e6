"""The model zoo: registry, parameter counts, forward and backward, the uniform interface, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import models
from core.errors import ExplorerError, InputSizeError, InvalidArgumentError, UnknownModelError
from core.models.inception import Inception3
from tests.conftest import NAMES

# The table (1000 classes; LeNet-5: 10).
EXPECTED_PARAMS = {
    "lenet5": 61_706,
    "alexnet": 62_378_344,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "inception_v3": 27_161_264,
    "xception": 22_855_952,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_size(name: str) -> int:
    """A cheap input the model accepts (at least 32 px): the interface does not depend on the size."""
    minimum, maximum = models.input_size_range(name)
    size = max(minimum, 32)
    return size if maximum is None else min(size, maximum)


@pytest.fixture(scope="module", params=NAMES)
def built(request: pytest.FixtureRequest) -> tuple[str, models.ExplorerModel]:
    """Each registry model built once, in eval mode, for the tests that only run it (pytest groups the tests
    by model, so one is alive at a time)."""
    return request.param, models.build(request.param).eval()


def test_names_are_exactly_the_eleven_architectures() -> None:
    """The eleven come first, oldest first; models registered later follow them."""
    assert models.names()[:len(EXPECTED_PARAMS)] == list(EXPECTED_PARAMS)


# GoogLeNet as built, with the two auxiliary heads that training uses: torchvision's published 6,624,904 leave
# them out (its weights drop them); test_new_architectures checks both parts against torchvision's state dict.
WITH_AUXILIARY_HEADS = {"googlenet": 13_004_888}


def _expected_params(name: str) -> int | None:
    """The table's count, else the exact count published for the same network (torchvision's; a paper's
    rounded "3.4M" is checked by the fidelity view, not here)."""
    if name in EXPECTED_PARAMS or name in WITH_AUXILIARY_HEADS:
        return {**EXPECTED_PARAMS, **WITH_AUXILIARY_HEADS}[name]
    found = models.spec(name).reference("params", "torchvision")
    return int(found.value) if found and found.same_network else None


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count(name: str) -> None:
    expected = _expected_params(name)
    if expected is None:
        pytest.skip(f"{name} has no published parameter count to check")
    with torch.device("meta"):
        assert count(models.build(name)) == expected


def test_inception_without_auxiliary_classifier() -> None:
    with torch.device("meta"):
        model = Inception3(aux_logits=False)
    assert count(model) == 23_834_568
    assert model.auxiliary_classifier_names == ()


@pytest.mark.parametrize("name", NAMES)
def test_registry_facts_are_complete(name: str) -> None:
    spec = models.spec(name)
    assert spec.display_name
    if spec.origin == "zoo":  # a design has no paper
        assert spec.authors and spec.paper_title and spec.paper_url.startswith("http")
        assert 1990 < spec.year < 2030
    assert len(spec.mean) == len(spec.std) == spec.in_channels
    assert all(ref.source and ref.value > 0 for ref in spec.references)


@pytest.mark.slow
def test_forward_shape_at_native_size(built: tuple[str, models.ExplorerModel]) -> None:
    name, model = built
    spec = models.spec(name)
    with torch.no_grad():
        out = model(torch.randn(2, spec.in_channels, spec.input_size, spec.input_size))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_backward_pass_reaches_every_parameter(name: str) -> None:
    """On the meta device: the autograd graph, not the numbers, decides which parameters get a gradient."""
    spec = models.spec(name)
    with torch.device("meta"):
        model = models.build(name, num_classes=5).train()
    # Auxiliary heads (Inception's) run in training mode and need a larger input than the main path.
    size = max(models.input_size_range(name, training=True)[0], 32)
    size = min(size, models.input_size_range(name)[1] or size)
    target = torch.tensor([0, 1], device="meta")
    output = model(torch.randn(2, spec.in_channels, size, size, device="meta"))
    logits, auxiliary = model.split_output(output)
    loss = nn.functional.cross_entropy(logits, target)
    loss = loss + sum(model.aux_loss_weight * nn.functional.cross_entropy(a, target) for a in auxiliary)
    assert logits.shape == (2, 5)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert len(auxiliary) == len(model.auxiliary_classifier_names)


def test_uniform_interface(built: tuple[str, models.ExplorerModel]) -> None:
    name, model = built
    spec = models.spec(name)
    assert isinstance(model, models.Model)
    x = torch.randn(1, spec.in_channels, small_size(name), small_size(name))
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 4 and features.shape[1] == model.num_features
        assert torch.equal(model.forward_head(features), model(x))
        pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (1, model.get_classifier().in_features)
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.num_classes == spec.num_classes
    module_names = {n for n, _ in model.named_modules()}
    assert model.stages and all(last in module_names for _, last in model.stages)


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier_replaces_every_head(name: str) -> None:
    """Shapes only, so on the meta device."""
    spec = models.spec(name)
    with torch.device("meta"):
        model = models.build(name).eval()
    model.reset_classifier(3)
    assert model.num_classes == 3
    assert all(model.get_submodule(n).out_features == 3 for n in model.auxiliary_classifier_names)
    with torch.no_grad():
        x = torch.empty(1, spec.in_channels, small_size(name), small_size(name), device="meta")
        assert model(x).shape == (1, 3)


@pytest.mark.parametrize("name", NAMES)
def test_in_channels_adapts_the_first_layer(name: str) -> None:
    """Shapes only, so on the meta device."""
    spec = models.spec(name)
    channels = 1 if spec.in_channels == 3 else 3
    with torch.device("meta"):
        model = models.build(name, num_classes=4, in_channels=channels).eval()
    assert model.in_channels == channels
    with torch.no_grad():
        x = torch.empty(1, channels, small_size(name), small_size(name), device="meta")
        assert model(x).shape == (1, 4)


def test_unknown_name_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="resnet50") as caught:
        models.build("resnet51")
    assert isinstance(caught.value, UnknownModelError)
    assert all(name in str(caught.value) for name in models.names())  # the registered ones


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_num_classes_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="num_classes"):
        models.build("lenet5", num_classes=bad)  # type: ignore[arg-type]


def test_in_channels_must_be_positive() -> None:
    with pytest.raises(InvalidArgumentError, match="in_channels"):
        models.build("resnet18", in_channels=0)


def test_errors_are_value_errors() -> None:
    assert issubclass(ExplorerError, ValueError)


def test_minimum_input_size_is_the_real_boundary(built: tuple[str, models.ExplorerModel]) -> None:
    name, model = built
    spec = models.spec(name)
    minimum, maximum = models.input_size_range(name)
    assert minimum <= spec.input_size and (maximum is None or maximum >= spec.input_size)
    with torch.no_grad():
        model(torch.zeros(1, spec.in_channels, minimum, minimum))  # the minimum works on real tensors
        if minimum > 1:  # one pixel less fails on real tensors, and the core says so first
            with pytest.raises(RuntimeError):
                model(torch.zeros(1, spec.in_channels, minimum - 1, minimum - 1))
            with pytest.raises(InputSizeError):
                models.check_input_size(name, minimum - 1)
    if maximum is not None:
        with pytest.raises(InputSizeError):
            models.check_input_size(name, maximum + 1)
    with pytest.raises(InvalidArgumentError):
        models.check_input_size(name, 0)


def test_known_input_limits() -> None:
    assert models.input_size_range("inception_v3")[0] == 75
    assert models.input_size_range("lenet5") == (28, 31)
    with pytest.raises(InputSizeError, match="75"):
        models.check_input_size("inception_v3", 74)
    with pytest.raises(InputSizeError, match="largest"):
        models.check_input_size("lenet5", 32)
    assert models.check_input_size("inception_v3", 75) == 75


def test_the_published_top1_never_comes_from_another_variant() -> None:
    assert models.spec("alexnet").published_top1().source == "paper"  # torchvision's AlexNet is another network
    assert models.spec("resnet50").published_top1().value == 76.13
    assert models.spec("xception").published_top1().source == "paper"
    assert models.spec("lenet5").published_top1() is None
