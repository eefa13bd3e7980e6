"""The trainer on tiny data: the loop, its hooks and snapshot, stops, divergence, out-of-memory restarts."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
import torch

from core import data, devices, paths, training
from core.models.lenet import LeNet5
from tests.conftest import FAST, Recorder, make_image_folder, tiny


def test_loss_falls_and_every_hook_fires() -> None:
    recorder = Recorder()
    result = training.fit(training.TrainConfig(epochs=6, **FAST), tiny(), [recorder])
    history = result.progress.history
    assert result.progress.status == "completed"
    assert history[-1].train_loss < history[0].train_loss
    assert result.test is not None and result.test.accuracy > 0.9
    assert recorder.calls[0] == "on_fit_start" and recorder.calls[-1] == "on_fit_end"
    assert recorder.calls.count("on_epoch_end") == 6 and "on_batch_end" in recorder.calls
    assert sum(map(sum, result.test.confusion)) == len(tiny().test)
    assert [row.epoch for row in history] == [1, 2, 3, 4, 5, 6]


def test_every_subscriber_reads_the_same_frozen_snapshot() -> None:
    first, second = Recorder(), Recorder()
    training.fit(training.TrainConfig(epochs=2, **FAST), tiny(), [first, second])
    assert all(a is b for a, b in zip(first.snapshots, second.snapshots, strict=True))
    progress = first.snapshots[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        progress.epoch = 99
    with pytest.raises(dataclasses.FrozenInstanceError):
        progress.history[0].val_acc = 1.0
    with pytest.raises(AttributeError):
        progress.messages.append("changed")  # a tuple
    starts = [p for name, p in zip(first.calls, first.snapshots, strict=True) if name == "on_epoch_start"]
    assert [p.epoch for p in starts] == [1, 2]  # each hook got its own snapshot, not a live object
    assert first.snapshots[0].epoch == 0 and first.snapshots[0].step == 0


def test_the_test_figures_say_which_weights_they_are_of() -> None:
    result = training.fit(training.TrainConfig(epochs=3, **FAST), tiny())
    progress = result.progress
    assert progress.test is not None and progress.test.checkpoint == "best"
    assert progress.test.epoch == progress.best_epoch
    assert progress.test.evaluation is result.test
    report = progress.test.report(progress.classes)
    assert report["checkpoint"] == "best" and report["epoch"] == progress.best_epoch
    assert report["accuracy"] == result.test.accuracy


def test_stop_ends_the_run_within_one_batch() -> None:
    stop = threading.Event()

    class StopAfterFirstReport:
        step = None

        def on_batch_end(self, progress: training.Progress) -> None:
            if self.step is None:
                self.step = progress.step
                stop.set()

    watcher = StopAfterFirstReport()
    result = training.fit(training.TrainConfig(epochs=50, **{**FAST, "batch_size": 2}), tiny(), [watcher], stop=stop)
    assert result.progress.status == "stopped"
    assert result.progress.step == watcher.step  # not one batch more
    assert result.test is not None  # what was learned is evaluated: the last weights, nothing validated yet
    assert result.progress.test.checkpoint == "last" and result.progress.test.step == watcher.step
    assert any("Stopped" in m for m in result.progress.messages)


def test_a_subscriber_can_stop_training() -> None:
    class Enough:
        def on_epoch_end(self, progress: training.Progress) -> None:
            raise training.StopTraining("enough")

    result = training.fit(training.TrainConfig(epochs=5, **FAST), tiny(), [Enough()])
    assert result.progress.status == "stopped" and result.progress.epoch == 1 and "enough" in result.progress.messages


def test_non_finite_loss_fails_the_run_with_a_reason() -> None:
    config = training.TrainConfig(epochs=3, optimizer="sgd", lr=1e30, momentum=0.0, weight_decay=0.0, batch_size=8)
    result = training.fit(config, tiny())
    assert result.progress.status == "failed"
    assert any("diverged" in m for m in result.progress.messages)
    assert result.test is None and result.progress.history == ()  # it failed in epoch 1: nothing validated


class OutOfMemoryOnce(LeNet5):
    """LeNet-5 that runs out of memory once, at its ``at``-th training batch, if that batch is larger than 8."""

    def __init__(self, at: int = 1) -> None:
        super().__init__(num_classes=3, in_channels=1)
        self.at = at
        self.calls = 0
        self.raised: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        if self.training and self.calls >= self.at and len(x) > 8 and not self.raised:
            self.raised.append(len(x))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x)


def test_out_of_memory_halves_the_batch_and_re_plans_one_cycle() -> None:
    model = OutOfMemoryOnce()
    config = training.TrainConfig(epochs=3, optimizer="adam", lr=1e-2, batch_size=16, weight_decay=0.0,
                                  schedule="onecycle")
    result = training.fit(config, tiny(), model=model)
    progress = result.progress
    assert model.raised == [16]
    assert progress.status == "completed" and progress.batch_size == 8
    assert any("Out of memory at batch size 16" in m for m in progress.messages)
    # The schedule was planned again for the smaller batch: the run takes exactly the steps it planned, and
    # the rate is still high after epoch 1 (the old plan, 2 steps an epoch, would be at its floor by then).
    assert progress.step == progress.total_steps == 3 * progress.steps_per_epoch
    assert progress.history[0].lr > config.lr / 2
    assert progress.history[-1].lr < config.lr / 1000  # one-cycle ends at its floor, at the end


def test_out_of_memory_mid_epoch_continues_where_it_was() -> None:
    model = OutOfMemoryOnce(at=3)  # the third batch of epoch 1 runs out of memory
    small = tiny(per_class=48)
    train = len(small.train)
    assert train // 16 >= 3
    result = training.fit(training.TrainConfig(epochs=2, schedule="onecycle", **FAST), small, model=model)
    progress = result.progress
    assert model.raised == [16] and progress.status == "completed"
    # Epoch 1: two batches of 16, then the rest of the same order in batches of 8; epoch 2: batches of 8
    # (every image, the last batch topped up: -(-train // 8) of them).
    whole = -(-train // 8) * 8
    assert progress.images_seen == 32 + (whole - 32) + whole
    assert progress.step == progress.total_steps == 2 + (whole - 32) // 8 + whole // 8
    assert [row.epoch for row in progress.history] == [1, 2]


def test_early_stopping() -> None:
    # A learning rate too small to change a float32 weight: the validation loss never improves after epoch 1.
    config = training.TrainConfig(epochs=40, patience=2, optimizer="sgd", lr=1e-15, momentum=0.0, batch_size=16)
    result = training.fit(config, tiny())
    assert result.progress.epoch == 3 and result.progress.best_epoch == 1
    assert result.progress.status == "completed"
    assert any("Early stop" in m for m in result.progress.messages)


@pytest.mark.parametrize("schedule", training.SCHEDULES)
@pytest.mark.parametrize("optimizer", training.OPTIMIZERS)
def test_every_optimizer_and_schedule_trains(optimizer: str, schedule: str) -> None:
    config = training.TrainConfig(epochs=2, optimizer=optimizer, schedule=schedule, lr=1e-3, batch_size=16,
                                  label_smoothing=0.1, grad_clip=1.0, augment=True)
    result = training.fit(config, tiny())
    assert result.progress.status == "completed" and len(result.progress.history) == 2


def test_auxiliary_loss_through_the_model_interface() -> None:
    """Inception-v3 trains with its auxiliary head: the trainer asks the model, not the architecture name."""
    result = training.fit(training.TrainConfig(arch="inception_v3", epochs=1, **{**FAST, "batch_size": 4}),
                          tiny(classes=2, per_class=4))
    assert result.progress.status == "completed"
    assert result.progress.input_size == 299 and any("resized to 299×299" in m for m in result.progress.messages)


def test_models_adapt_to_the_data() -> None:
    result = training.fit(training.TrainConfig(arch="resnet18", epochs=1, **FAST), tiny(channels=3))
    assert result.model.num_classes == 3 and result.model.in_channels == 3
    result = training.fit(training.TrainConfig(arch="alexnet", epochs=1, **FAST), tiny(classes=2, per_class=4))
    assert result.progress.input_size == 67  # AlexNet's computed minimum


@pytest.mark.parametrize("name", training.PRESETS)
def test_every_preset_trains(name: str) -> None:
    config = training.preset(name, epochs=2, batch_size=16)  # the preset's optimizer, rate, schedule, augmentation
    result = training.fit(config, tiny())
    assert result.progress.status == "completed", result.progress.messages
    assert all(math.isfinite(row.train_loss) for row in result.progress.history)


def test_image_folder_trains_through_the_dataloader_path(tmp_path) -> None:
    folder = make_image_folder(tmp_path / "shapes")
    loaded = data.image_folder(folder, size=32)
    assert loaded.classes == ("circle", "square") and loaded.skipped == 4
    assert len(loaded.train) + len(loaded.val) + len(loaded.test) == 12
    assert loaded.train.image(0).shape == (3, 32, 32)
    config = training.TrainConfig(arch="lenet5", dataset=f"folder:{folder}", epochs=2, **FAST)
    result = training.fit(config, data.image_folder(folder, size=28))
    assert result.progress.status == "completed" and result.model.in_channels == 3
    assert result.test is not None and len(result.test.predictions) == len(loaded.test)


@pytest.mark.parametrize("bfloat16", ["1", "0"])
def test_cpu_training_runs_channels_last_and_in_bfloat16_where_the_cpu_has_it(
        monkeypatch: pytest.MonkeyPatch, bfloat16: str) -> None:
    monkeypatch.setenv(paths.CPU_BFLOAT16_ENV, bfloat16)
    seen: list[torch.dtype] = []
    config = training.TrainConfig(epochs=4, device="cpu", **FAST)
    trainer = training.Trainer(config, tiny())
    conv = trainer.model.features[0]
    conv.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    result = trainer.fit()
    assert result.progress.status == "completed" and result.test is not None and result.test.accuracy > 0.9
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # the model, as its batches
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast: the weights stay float32
    native = devices.cpu_bfloat16()
    assert ("bfloat16" in result.progress.device) is native and (native is False or bfloat16 == "1")
    assert not any("bfloat16" in message for message in result.progress.messages)  # they say how the run went
    assert (torch.bfloat16 in seen) is native  # the training steps
    assert torch.float32 in seen  # validation and test, in float32 on a CPU
