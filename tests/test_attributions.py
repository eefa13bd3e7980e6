"""Grad-CAM++, Score-CAM, saliency, SmoothGrad, integrated gradients and occlusion, each checked against its
reference implementation (pytorch-grad-cam, Captum: test-only oracles) on the same model, input, layer and class;
progress and cancel; the Classify page drawing each method."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from core import attributions, explain, models
from core.errors import CancelledError, ExplorerError, InvalidArgumentError
from tests.apptest import no_exception, open_page

# Small enough for a busy CPU: (registry name, input size). Float64 throughout, so that the two implementations
# differ by their arithmetic's order only.
MODELS = [("lenet5", 28), ("resnet18", 64)]


def _setup(name: str, size: int) -> tuple[torch.nn.Module, torch.Tensor, str, int]:
    """A seeded model in float64, a seeded image, the default Grad-CAM layer and the top class."""
    torch.manual_seed(0)
    model = models.build(name).double().eval()
    x = torch.randn(1, models.spec(name).in_channels, size, size, dtype=torch.float64)
    layer = explain.default_cam_layer(model, x)
    with torch.no_grad():
        target = int(model(x).argmax())
    return model, x, layer, target


def correlation(ours: torch.Tensor, theirs) -> float:
    """Pearson's correlation of two maps of any shape."""
    theirs = torch.as_tensor(theirs, dtype=torch.float64).reshape(-1)
    ours = ours.double().reshape(-1)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(torch.corrcoef(torch.stack([ours, theirs]))[0, 1])


def _check(method: str, name: str, ours: torch.Tensor, theirs) -> None:
    r = correlation(ours, theirs)
    print(f"{method} on {name}: r = {r:.6f}")
    assert r >= 0.99, f"{method} on {name}: correlation {r:.4f} with the reference"


@pytest.mark.parametrize("method", ["Grad-CAM", "Grad-CAM++"])
@pytest.mark.parametrize(("name", "size"), MODELS)
def test_gradient_cams_match_pytorch_grad_cam(name: str, size: int, method: str) -> None:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, layer, target = _setup(name, size)
    ours = attributions.heat_map(method, model, x, layer, target)
    reference = GradCAM if method == "Grad-CAM" else GradCAMPlusPlus
    with reference(model, [model.get_submodule(layer)]) as cam:
        theirs = cam(x, [ClassifierOutputTarget(target)])[0]
    assert ours.shape == x.shape[-2:] and float(ours.min()) >= 0 and float(ours.max()) == 1
    _check(method, name, ours, theirs)


@pytest.mark.parametrize(("name", "size"), MODELS)
def test_score_cam_matches_pytorch_grad_cam(name: str, size: int) -> None:
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, layer, target = _setup(name, size)
    model, x = model.float(), x.float()  # hundreds of passes: float64 convolutions are slow on a CPU
    every = model.get_submodule(layer).out_channels
    ours = attributions.score_cam(model, x, layer, target, channels=every)
    with ScoreCAM(model, [model.get_submodule(layer)]) as cam:
        theirs = cam(x, [ClassifierOutputTarget(target)])[0]
    _check("Score-CAM", name, ours, theirs)
    # The bounded default (the most active channels only) stays close to the full method.
    if every > attributions.SCORE_CAM_CHANNELS:
        bounded = attributions.score_cam(model, x, layer, target)
        print(f"Score-CAM on {name}, {attributions.SCORE_CAM_CHANNELS} of {every} channels: "
              f"r = {correlation(bounded, theirs):.4f}")


@pytest.mark.parametrize(("name", "size"), MODELS)
def test_saliency_matches_captum(name: str, size: int) -> None:
    from captum.attr import Saliency

    model, x, _, target = _setup(name, size)
    ours = attributions.saliency(model, x, target)
    theirs = Saliency(model).attribute(x.clone().requires_grad_(True), target=target)[0].detach()
    _check("Saliency", name, ours, theirs)
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "size"), MODELS)
def test_smooth_grad_matches_captum_with_the_same_noise(name: str, size: int) -> None:
    from captum.attr import NoiseTunnel, Saliency

    model, x, _, target = _setup(name, size)
    samples, level = 10, 0.15
    ours = attributions.smooth_grad(model, x, target, samples=samples, noise_level=level,
                                    generator=torch.Generator().manual_seed(7))
    torch.manual_seed(7)  # Captum draws from the global generator, all samples at once as we do
    theirs = NoiseTunnel(Saliency(model)).attribute(x.clone(), nt_type="smoothgrad", nt_samples=samples,
                                                    stdevs=level * float(x.max() - x.min()), target=target)
    _check("SmoothGrad", name, ours, theirs[0].detach())


@pytest.mark.parametrize(("name", "size"), MODELS)
def test_integrated_gradients_match_captum(name: str, size: int) -> None:
    from captum.attr import IntegratedGradients

    model, x, _, target = _setup(name, size)
    ours = attributions.integrated_gradients(model, x, target, steps=20)
    theirs = IntegratedGradients(model).attribute(x.clone(), baselines=torch.zeros_like(x), target=target,
                                                  n_steps=20, method="gausslegendre")
    _check("Integrated gradients", name, ours, theirs[0].detach())
    # Completeness (Sundararajan et al.): the attributions add up to the score's change from the baseline.
    with torch.no_grad():
        change = float(model(x)[0, target] - model(torch.zeros_like(x))[0, target])
    assert float(ours.sum()) == pytest.approx(change, rel=0.05, abs=1e-3)


@pytest.mark.parametrize(("name", "size"), MODELS)
def test_occlusion_matches_captum(name: str, size: int) -> None:
    from captum.attr import Occlusion

    model, x, _, target = _setup(name, size)
    window, stride = attributions.occlusion_geometry(size)
    channels = x.shape[1]
    ours = attributions.occlusion(model, x, target)
    theirs = Occlusion(model).attribute(x.clone(), sliding_window_shapes=(channels, window, window),
                                        strides=(channels, stride, stride), baselines=0.0, target=target)
    assert ours.shape == x.shape[-2:]
    _check("Occlusion", name, ours, theirs[0, 0].detach())


@pytest.mark.parametrize("size", [28, 64, 224, 299, 600])
def test_occlusion_is_bounded_to_about_two_hundred_passes(size: int) -> None:
    window, stride = attributions.occlusion_geometry(size)
    per_side = len(attributions._offsets(size, window, stride))
    assert 0 < stride <= window < size and per_side ** 2 <= 200


@pytest.mark.parametrize("method", [m.name for m in attributions.METHODS.values() if m.slow])
def test_slow_methods_report_progress_and_stop_when_cancelled(method: str) -> None:
    model, x, layer, _ = _setup("lenet5", 28)
    seen: list[float] = []
    heat = attributions.heat_map(method, model, x, layer, progress=seen.append)
    assert heat.shape == (28, 28) and 0 <= float(heat.min()) and float(heat.max()) <= 1
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1

    cancel = threading.Event()
    reports: list[float] = []

    def cancel_after_the_first(fraction: float) -> None:
        reports.append(fraction)
        cancel.set()

    with pytest.raises(CancelledError, match="cancelled"):
        attributions.heat_map(method, model, x, layer, progress=cancel_after_the_first, cancel=cancel)
    assert reports == [0.0] and issubclass(CancelledError, ExplorerError)
    assert not any(module._forward_hooks for module in model.modules())  # no hook left behind


@pytest.mark.parametrize("method", list(attributions.METHODS))
def test_every_method_gives_a_heat_map_at_the_input_size(method: str) -> None:
    model, x, layer, _ = _setup("resnet18", 48)
    heat = attributions.heat_map(method, model.float(), x.float(), layer)
    assert heat.shape == (48, 48) and heat.dtype == torch.float32
    assert 0 <= float(heat.min()) and float(heat.max()) == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())  # the shared model keeps no gradients


def test_bad_requests_get_typed_errors() -> None:
    model, x, layer, _ = _setup("lenet5", 28)
    with pytest.raises(InvalidArgumentError, match="Unknown explanation method"):
        attributions.heat_map("LIME", model, x, layer)
    with pytest.raises(InvalidArgumentError, match="no class 10"):
        attributions.saliency(model, x, class_index=10)
    with pytest.raises(InvalidArgumentError, match="no layer"):
        attributions.score_cam(model, x, "features.99")
    with pytest.raises(InvalidArgumentError, match="one image at a time"):
        attributions.saliency(model, x.repeat(2, 1, 1, 1))
    with pytest.raises(InvalidArgumentError, match="window"):
        attributions.occlusion(model, x, window=40)


def _figure(at, key: str) -> dict:
    """The Plotly figure of the chart with this key, as a dict."""
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)


def test_classify_explains_the_prediction_by_every_method(digits_run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    at = open_page("classify")
    at.selectbox(key="classify-model").set_value(f"run:{digits_run}").run()
    no_exception(at)
    assert at.radio(key="classify-cam-method").value == "Grad-CAM" and "classify-cam-method" not in at.query_params
    assert any("Grad-CAM for" in h.value for h in at.subheader)
    for method, spec in attributions.METHODS.items():
        at.radio(key="classify-cam-method").set_value(method).run()
        no_exception(at)
        assert any(f"{method} for" in h.value for h in at.subheader)
        assert at.selectbox(key="classify-cam-layer").disabled == (not spec.uses_layer)
        heat = _figure(at, "classify-gradcam")["data"][1]
        assert heat["z"]["shape"].replace(" ", "") == "28,28"  # at the input's size, pixel methods too
        assert any(spec.summary in c.value for c in at.caption)
        if method != "Grad-CAM":
            assert at.query_params["classify-cam-method"] in (method, [method])  # a link reopens it

    # A cancelled computation (the core raising CancelledError) leaves a message and a button to compute it again.
    at.radio(key="classify-cam-method").set_value("Occlusion").run()
    real = services.explanation

    def cancelled(*args, **kwargs):
        raise CancelledError("The explanation was cancelled.")

    monkeypatch.setattr(services, "explanation", cancelled)
    at.radio(key="classify-cam-colours").set_value("inferno").run()  # kept: the colour alone recomputes nothing
    no_exception(at)
    assert not any("cancelled" in i.value for i in at.info) and "Occlusion, per pixel" in json.dumps(
        _figure(at, "classify-gradcam")["layout"])
    at.radio(key="classify-cam-method").set_value("Score-CAM").run()
    no_exception(at)
    assert any("Score-CAM was cancelled" in i.value for i in at.info)
    at.run()
    assert any("Score-CAM was cancelled" in i.value for i in at.info) and at.button(key="classify-cam-again")
    monkeypatch.setattr(services, "explanation", real)
    at.button(key="classify-cam-again").click().run()
    no_exception(at)
    assert not any("cancelled" in i.value for i in at.info)
    assert "Score-CAM at" in json.dumps(_figure(at, "classify-gradcam")["layout"])
