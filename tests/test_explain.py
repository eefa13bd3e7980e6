"""Grad-CAM colours, stages, receptive-field windows and the first convolution by hand, checked against PyTorch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from core import analysis, explain, models
from core.errors import InvalidArgumentError
from tests.conftest import NAMES


def test_colour_maps_run_from_their_first_stop_to_their_last() -> None:
    for name, stops in explain.COLORMAPS.items():
        colours = explain.colorize(torch.tensor([0.0, 1.0, -3.0, 7.0, float("nan")]), name)
        first, last = (tuple(int(stop[i:i + 2], 16) for i in (1, 3, 5)) for stop in (stops[0], stops[-1]))
        assert colours.dtype == torch.uint8 and colours.shape == (5, 3)
        assert tuple(colours[0].tolist()) == first == tuple(colours[2].tolist()) == tuple(colours[4].tolist())
        assert tuple(colours[1].tolist()) == last == tuple(colours[3].tolist())
        assert explain.plotly_colorscale(name)[0] == [0.0, stops[0]] and explain.plotly_colorscale(name)[-1][0] == 1
    # Inferno is perceptually ordered: its luminance rises from 0 to 1.
    luminance = explain.colorize(torch.linspace(0, 1, 64), "inferno").float() @ torch.tensor([0.2126, 0.7152, 0.0722])
    assert bool((luminance[1:] >= luminance[:-1] - 1).all())
    with pytest.raises(InvalidArgumentError, match="colour map"):
        explain.colorize(torch.zeros(2), "jet")


def test_overlay_opacity_runs_from_the_photo_to_the_heat_map() -> None:
    photo = torch.full((8, 8, 3), 200, dtype=torch.uint8)
    heat = torch.linspace(0, 1, 64).reshape(8, 8)
    assert torch.equal(explain.overlay(photo, heat, alpha=0.0), photo)
    assert torch.equal(explain.overlay(photo, heat, alpha=1.0, colormap="inferno"), explain.colorize(heat, "inferno"))
    half = explain.overlay(photo, heat, alpha=0.5)
    assert torch.allclose(half.float(), (photo.float() + explain.colorize(heat).float()) / 2, atol=1)
    with pytest.raises(InvalidArgumentError, match="opacity"):
        explain.overlay(photo, heat, alpha=1.5)
    with pytest.raises(InvalidArgumentError, match="differ in size"):
        explain.overlay(photo, heat[:4])


def _footprint_model(model: nn.Module) -> nn.Module:
    """A copy in float64 with every window averaging its inputs: weights 1/fan-in, batch norm the identity,
    max-pooling replaced by average pooling (max routes the gradient of ties to one input)."""
    model = copy.deepcopy(model).double().eval()
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.fill_(1 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
    return model


def _gradient_footprint(model: nn.Module, layer: str, size: int, channels: int, row: int, col: int):
    """(top, left, bottom, right) of the input pixels that position (row, col) of ``layer`` depends on."""
    store = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: store.__setitem__("out", o))
    x = torch.ones(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    try:
        model(x)
    finally:
        handle.remove()
    store["out"][0, :, row, col].sum().backward()
    touched = x.grad[0].abs().sum(0) != 0
    rows, cols = touched.any(1).nonzero().flatten(), touched.any(0).nonzero().flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


@pytest.mark.parametrize(("name", "size"), [("lenet5", 28), ("resnet18", 64), ("inception_v3", 75)])
def test_stage_windows_are_the_gradient_footprint(name: str, size: int) -> None:
    channels = models.spec(name).in_channels
    model = models.build(name).eval()
    found = explain.stages(model, torch.rand(1, channels, size, size))
    assert [s.layer for s in found] == [layer for _, layer in model.stages]
    averaging = _footprint_model(model)
    for stage in found:
        _, height, width = stage.shape
        for row, col in {(0, 0), (height // 2, width // 2)}:
            assert stage.window.box(row, col, (size, size)) == _gradient_footprint(
                averaging, stage.layer, size, channels, row, col), (stage.layer, row, col)
        # At the far edge, unpadded strided windows may leave the last few pixels unread: the theoretical field
        # then reaches past what the position uses, by less than one step.
        top, left, bottom, right = stage.window.box(height - 1, width - 1, (size, size))
        used = _gradient_footprint(averaging, stage.layer, size, channels, height - 1, width - 1)
        assert (top, left) == used[:2] and 0 <= bottom - used[2] < stage.window.jump_y
        assert 0 <= right - used[3] < stage.window.jump_x


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "resnet18", "xception"])
def test_stages_show_shapes_and_fields_of_the_layer_analysis(name: str) -> None:
    model_spec = models.spec(name)
    model = models.build(name).eval()
    size = model_spec.input_size
    found = explain.stages(model, torch.rand(1, model_spec.in_channels, size, size), shown=4)
    rows = analysis.summarize(name).rows
    for stage in found:
        # The widest field inside the stage: where paths merge, the longest path's field is the merged one.
        row = max((r for r in rows if analysis.is_within(r.name, stage.layer)), key=lambda r: r.receptive_field)
        assert stage.shape == [r for r in rows if analysis.is_within(r.name, stage.layer)][-1].output_shape
        assert (stage.window.height, stage.window.width) == row.receptive_field
        assert (stage.window.jump_y, stage.window.jump_x) == row.jump
        assert stage.maps.shape == (min(4, row.output_shape[0]), *row.output_shape[1:])
        assert float(stage.maps.min()) >= 0 and float(stage.maps.max()) <= 1
        assert len(set(stage.channels)) == len(stage.channels)
    with pytest.raises(InvalidArgumentError, match="one image"):
        explain.stages(model, torch.rand(2, model_spec.in_channels, size, size))


@pytest.mark.parametrize(("name", "size"), [("lenet5", 28), ("resnet18", 64), ("xception", 71)])
def test_the_first_convolution_by_hand_equals_pytorchs(name: str, size: int) -> None:
    channels = models.spec(name).in_channels
    model = models.build(name).eval()
    x = torch.randn(1, channels, size, size)
    layer, _, output = explain.first_conv(model, x)
    assert isinstance(model.get_submodule(layer), nn.Conv2d)
    _, out_channels, height, width = output.shape
    for channel, row, col in [(0, 0, 0), (out_channels - 1, height // 2, width // 3),
                              (out_channels // 2, height - 1, width - 1)]:
        at = explain.first_conv_at(model, x, channel, row, col)
        assert at.layer == layer and at.map_size == (height, width)
        assert at.kernel.shape == at.patch.shape == model.get_submodule(layer).weight.shape[1:]
        assert at.weighted_sum == pytest.approx(at.output, rel=1e-4, abs=1e-4)
        assert at.output == pytest.approx(float(output[0, channel, row, col]))
        top, left, bottom, right = at.box
        inside = x[0, :, max(top, 0):bottom, max(left, 0):right]
        assert torch.allclose(at.patch[:, max(-top, 0):, max(-left, 0):][:, :inside.shape[1], :inside.shape[2]],
                              inside)
    with pytest.raises(InvalidArgumentError, match="no position"):
        explain.first_conv_at(model, x, out_channels, 0, 0)


def test_a_window_box_is_clipped_to_the_image() -> None:
    window = explain.Window(top=-3, left=-3, height=7, width=7, jump_y=2, jump_x=2)
    assert window.box(0, 0) == (-3, -3, 4, 4)
    assert window.box(0, 0, (10, 10)) == (0, 0, 4, 4)
    assert window.box(4, 1, (10, 10)) == (5, 0, 10, 6)
    assert explain.Window.union([window, explain.Window(0, -5, 2, 2)]) == explain.Window(-3, -5, 7, 9, 2, 2)


class Planted(nn.Module):
    """Class 0 scores the brightness of the input: Grad-CAM must point at the bright patch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def test_grad_cam_peaks_where_the_pattern_is() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 4:10, 20:28] = 1.0  # the planted pattern
    heat = explain.grad_cam(Planted(), x, "conv", class_index=0)
    row, column = divmod(int(heat.argmax()), 32)
    assert 4 <= row < 10 and 20 <= column < 28
    assert heat.max() == 1.0 and heat[20:, :10].max() == 0
    assert explain.conv_layers(Planted()) == ["conv"]


def test_predictions_and_feature_maps() -> None:
    model = Planted()
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, :4, :4] = 1
    prediction = explain.predict(model, x, ["bright", "dark"], k=5)
    assert prediction.top[0][0] == "bright" and sum(p for _, p in prediction.top) == pytest.approx(1)
    assert prediction.latency_ms > 0
    maps = explain.feature_maps(model, x, "conv")
    assert maps.shape == (1, 16, 16) and maps.max() == 1
    with pytest.raises(ValueError, match="no layer"):
        explain.feature_maps(model, x, "nope")
    blended = explain.overlay(torch.zeros(16, 16, 3, dtype=torch.uint8), maps[0])
    assert blended.dtype == torch.uint8 and blended[0, 0, 0] > 0


def test_the_default_grad_cam_layer_keeps_a_spatial_map() -> None:
    lenet = models.build("lenet5").eval()
    assert explain.default_cam_layer(lenet, torch.zeros(1, 1, 28, 28)) == "features.3"  # conv3 is 1×1
    assert explain.default_cam_layer(Planted(), torch.zeros(1, 1, 8, 8)) == "conv"


def test_a_model_whose_outputs_are_not_finite_cannot_classify() -> None:
    """Issue 18 showed a prediction of "nan %": finite float32 weights (1e38) still overflow in the forward pass."""
    from core.errors import NonFiniteOutputError

    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x, classes = torch.ones(1, 1, 28, 28), [str(i) for i in range(10)]
    assert explain.predict(model, x, classes).top[0][1] > 0
    with torch.no_grad():
        model[1].weight.fill_(1e38)  # finite; 784 of them summed are not
    with pytest.raises(NonFiniteOutputError, match="not finite"):
        explain.predict(model, x, classes)


@pytest.mark.parametrize("name", NAMES)
def test_every_convolution_has_a_title_with_its_place_name_and_shape(name: str) -> None:
    model = models.build(name)
    titles = explain.conv_titles(model)
    assert list(titles) == explain.conv_layers(model)
    first, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))
    k = conv.kernel_size
    assert titles[first] == f"conv 1 of {len(titles)} · {first} ({conv.out_channels:,} filters, {k[0]}×{k[1]})"
