"""The same core paths on every device this machine has: the CPU always, CUDA or Apple MPS where present.

On CUDA these cover what runs only there: bf16 autocast, channels_last, cudnn.benchmark, the fused
optimizer, the feature cache on the device, and inference and Grad-CAM on the device. CI has no GPU,
so there they run on the CPU; on a GPU machine ``python -m pytest tests/test_accelerator.py`` runs both.
"""

from __future__ import annotations

import threading

import pytest
import torch
import torchvision
from torch import nn

from core import classifiers, data, devices, explain, models, training, transfer
from core.runs import RunStore, StoreCallback
from tests.conftest import make_image_folder, tiny


@pytest.fixture(params=devices.available())
def device(request: pytest.FixtureRequest) -> str:
    return request.param


def test_training_on_the_device(device: str) -> None:
    config = training.preset("Fast", arch="lenet5", epochs=5, batch_size=16, device=device)
    result = training.fit(config, tiny())
    history = result.progress.history
    assert result.progress.status == "completed", result.progress.messages
    assert history[-1].train_loss < history[0].train_loss
    assert result.test is not None and result.test.accuracy > 0.9
    weight = result.model.features[0].weight
    assert weight.device.type == device
    if device == "cuda":
        assert weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.backends.cudnn.benchmark


def test_an_image_folder_trains_through_the_dataloader_on_the_device(device: str, tmp_path) -> None:
    folder = make_image_folder(tmp_path / "shapes")  # pinned memory and augmentation on the device on CUDA
    config = training.TrainConfig(arch="lenet5", dataset=f"folder:{folder}", epochs=2, optimizer="adam", lr=3e-3,
                                batch_size=4, augment=True, device=device)
    result = training.fit(config, data.image_folder(folder, size=28))
    assert result.progress.status == "completed", result.progress.messages
    assert result.test is not None and sum(map(sum, result.test.confusion)) == len(result.test.predictions)


def test_every_optimizer_on_the_device(device: str) -> None:
    for optimizer in training.OPTIMIZERS:
        config = training.TrainConfig(arch="lenet5", epochs=1, optimizer=optimizer, lr=1e-3, batch_size=16,
                                    device=device)
        assert training.fit(config, tiny()).progress.status == "completed"


def test_feature_cache_holds_the_backbones_features(device: str) -> None:
    torch.manual_seed(0)
    model = transfer.build("resnet18", num_classes=3).to(device)
    transfer.apply_strategy(model, "feature_extraction")
    data = tiny(channels=3, size=32)
    batches = training.make_batches(data.train, training.Preprocess.of(data, torch.device(device), 32, 3))
    cache = training.feature_cache(model, batches, batch_size=8)
    assert cache.images.device.type == device and len(cache) == len(data.train)
    model.eval()
    with torch.no_grad(), devices.autocast(torch.device(device)):
        x, _ = next(training.epoch(batches, 4, shuffle=False))
        expected = nn.functional.adaptive_avg_pool2d(model.forward_features(x), 1).float()
    torch.testing.assert_close(cache.images[:4], expected, rtol=1e-3, atol=1e-3)


def test_ours_equals_torchvision_under_the_devices_inference_settings(device: str) -> None:
    reference = torchvision.models.resnet18(weights=None).eval()
    ours = models.build("resnet18").eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for model in (ours, reference):
        model = model.to(device)
        inputs = x.to(device)
        if device == "cuda":
            model, inputs = model.to(memory_format=torch.channels_last), inputs.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), devices.autocast(torch.device(device)):
            outputs.append(model(inputs).float().cpu())
    # Same kernels on the same device: equal up to the order of floating-point sums.
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-3, atol=1e-3)


def test_a_trained_run_classifies_on_the_device(device: str, tmp_path) -> None:
    store = RunStore(tmp_path)
    data = tiny()
    config = training.preset("Fast", arch="lenet5", epochs=3, batch_size=16, device=device)
    run_id = store.create_run(config)
    training.fit(config, data, [StoreCallback(store, run_id)], checkpoint_dir=store.checkpoint_dir(run_id))
    loaded = classifiers.load(f"run:{run_id}", store, device)
    assert explain.model_device(loaded.model).type == device and not loaded.model.training
    x = (data.test.images[:1].float() / 255 - data.mean[0]) / data.std[0]
    on_device = explain.predict(loaded.model, x, loaded.classes, k=3)
    on_cpu = explain.predict(loaded.model.cpu(), x, loaded.classes, k=3)
    assert on_device.class_index == on_cpu.class_index and on_device.latency_ms > 0
    for (name, p), (name_cpu, p_cpu) in zip(on_device.top, on_cpu.top, strict=True):
        assert name == name_cpu and p == pytest.approx(p_cpu, abs=1e-3)
    loaded.model.to(device)
    heat = explain.grad_cam(loaded.model, x, "features.3")
    maps = explain.feature_maps(loaded.model, x, "features.0", limit=4)
    assert heat.device.type == "cpu" and heat.shape == (28, 28) and 0 <= float(heat.min()) <= float(heat.max()) <= 1
    assert maps.device.type == "cpu" and maps.shape == (4, 28, 28)


def test_a_stopped_run_resumes_on_the_device(device: str, tmp_path) -> None:
    """The training state restores onto the device: optimiser state, the device generator, the epoch's order."""
    config = training.TrainConfig(arch="lenet5", epochs=2, optimizer="adam", lr=3e-3, batch_size=4, augment=True,
                                  schedule="onecycle", device=device)
    whole = training.fit(config, tiny())
    stop = threading.Event()

    class StopAtFirstReport:
        def on_batch_end(self, progress: training.Progress) -> None:
            stop.set()

    first = training.fit(config, tiny(), [StopAtFirstReport()], stop=stop, checkpoint_dir=tmp_path)
    assert first.progress.status == "stopped"
    resumed = training.fit(config, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    assert resumed.progress.status == "completed" and resumed.progress.step == whole.progress.step
    assert [row.epoch for row in resumed.progress.history] == [1, 2]
    assert next(resumed.model.parameters()).device.type == device
    if device == "cpu":  # GPU kernels need not be bitwise deterministic
        for name, tensor in whole.model.state_dict().items():
            assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_latency_is_measured_on_the_device(device: str) -> None:
    from core import latency

    result = latency.measure("lenet5", 2, torch.device(device), repeats=3)
    assert result.median_ms > 0 and result.device == devices.describe(torch.device(device))
