"""The training engine and the data sets, on tiny data."""

from __future__ import annotations

import gzip
import math
import struct
import threading

import pytest
import torch

from core import data, engine
from core.errors import InvalidArgumentError


def tiny(classes: int = 3, per_class: int = 24, size: int = 28, channels: int = 1) -> data.InMemoryData:
    """A learnable toy set: each class is a bright square in its own corner."""
    generator = torch.Generator().manual_seed(0)
    images, labels = [], []
    for label in range(classes):
        for _ in range(per_class):
            image = torch.randint(0, 40, (channels, size, size), generator=generator, dtype=torch.uint8)
            row, column = divmod(label, 2)
            image[:, row * 14:row * 14 + 10, column * 14:column * 14 + 10] = 250
            images.append(image)
            labels.append(label)
    images, labels = torch.stack(images), torch.tensor(labels)
    train, val, test = data._split(images, labels, (0.6, 0.2), seed=0)
    return data.InMemoryData("tiny", tuple(map(str, range(classes))), train, val, test, (0.2,) * channels,
                             (0.3,) * channels)


FAST = dict(optimizer="adam", lr=3e-3, batch_size=16, weight_decay=0.0)


class Recorder:
    """A subscriber that records every hook call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda state: self.calls.append(name)
        raise AttributeError(name)


def test_loss_falls_and_every_hook_fires() -> None:
    recorder = Recorder()
    result = engine.fit(engine.TrainConfig(epochs=6, **FAST), tiny(), [recorder])
    history = result.state.history
    assert result.state.status == "completed"
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert result.test is not None and result.test.accuracy > 0.9
    assert recorder.calls[0] == "on_fit_start" and recorder.calls[-1] == "on_fit_end"
    assert recorder.calls.count("on_epoch_end") == 6 and "on_batch_end" in recorder.calls
    assert sum(map(sum, result.test.confusion)) == len(tiny().test)


def test_per_class_scores() -> None:
    evaluation = engine.Evaluation(loss=0.1, accuracy=0.75, confusion=[[2, 0], [1, 1]], predictions=[0, 0, 0, 1])
    first, second = evaluation.per_class()
    assert first == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert second["precision"] == 1.0 and second["recall"] == 0.5


def test_stop_ends_the_run_within_one_batch() -> None:
    stop = threading.Event()

    class StopAfterFirstReport:
        step = None

        def on_batch_end(self, state: engine.TrainState) -> None:
            if self.step is None:
                self.step = state.step
                stop.set()

    watcher = StopAfterFirstReport()
    result = engine.fit(engine.TrainConfig(epochs=50, **{**FAST, "batch_size": 2}), tiny(), [watcher], stop=stop)
    assert result.state.status == "stopped"
    assert result.state.step == watcher.step  # not one batch more
    assert result.test is not None  # what was learned is kept and evaluated
    assert any("Stopped" in m for m in result.state.messages)


def test_a_subscriber_can_stop_training() -> None:
    class Enough:
        def on_epoch_end(self, state: engine.TrainState) -> None:
            raise engine.StopTraining("enough")

    result = engine.fit(engine.TrainConfig(epochs=5, **FAST), tiny(), [Enough()])
    assert result.state.status == "stopped" and result.state.epoch == 1 and "enough" in result.state.messages


def test_non_finite_loss_fails_the_run_with_a_reason() -> None:
    config = engine.TrainConfig(epochs=3, optimizer="sgd", lr=1e30, momentum=0.0, weight_decay=0.0, batch_size=8)
    result = engine.fit(config, tiny())
    assert result.state.status == "failed"
    assert any("diverged" in m for m in result.state.messages)
    assert result.test is None


def test_out_of_memory_halves_the_batch_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    real_loss = engine._loss
    raised = []

    def loss_that_runs_out_of_memory(model, output, labels, smoothing):
        if len(labels) > 8 and not raised:
            raised.append(len(labels))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_loss(model, output, labels, smoothing)

    monkeypatch.setattr(engine, "_loss", loss_that_runs_out_of_memory)
    result = engine.fit(engine.TrainConfig(epochs=2, **FAST), tiny())
    assert raised == [16]
    assert result.state.status == "completed" and result.state.batch_size == 8
    assert any("Out of memory at batch size 16" in m for m in result.state.messages)


def test_early_stopping() -> None:
    # A learning rate too small to change a float32 weight: the validation loss never improves after epoch 1.
    config = engine.TrainConfig(epochs=40, patience=2, optimizer="sgd", lr=1e-15, momentum=0.0, batch_size=16)
    result = engine.fit(config, tiny())
    assert result.state.epoch == 3 and result.state.best_epoch == 1
    assert any("Early stop" in m for m in result.state.messages)


@pytest.mark.parametrize("schedule", engine.SCHEDULES)
@pytest.mark.parametrize("optimizer", engine.OPTIMIZERS)
def test_every_optimizer_and_schedule_trains(optimizer: str, schedule: str) -> None:
    config = engine.TrainConfig(epochs=2, optimizer=optimizer, schedule=schedule, lr=1e-3, batch_size=16,
                                label_smoothing=0.1, grad_clip=1.0, augment=True)
    result = engine.fit(config, tiny())
    assert result.state.status == "completed" and len(result.state.history) == 2


def test_auxiliary_loss_through_the_model_interface() -> None:
    """Inception-v3 trains with its auxiliary head: the engine asks the model, not the architecture name."""
    result = engine.fit(engine.TrainConfig(arch="inception_v3", epochs=1, **{**FAST, "batch_size": 4}),
                        tiny(classes=2, per_class=4))
    assert result.state.status == "completed"
    assert result.state.input_size == 299 and any("resized to 299×299" in m for m in result.state.messages)


def test_models_adapt_to_the_data() -> None:
    result = engine.fit(engine.TrainConfig(arch="resnet18", epochs=1, **FAST), tiny(channels=3))
    assert result.model.num_classes == 3 and result.model.in_channels == 3
    result = engine.fit(engine.TrainConfig(arch="alexnet", epochs=1, **FAST), tiny(classes=2, per_class=4))
    assert result.state.input_size == 67  # AlexNet's computed minimum


def test_presets_and_validation() -> None:
    notes = engine.preset("LeNet-5 (course notes)")
    assert (notes.optimizer, notes.lr, notes.momentum, notes.batch_size, notes.weight_decay) == ("sgd", 0.01, 0.9,
                                                                                                128, 5e-4)
    resnet = engine.preset("ResNet (course notes)")
    assert (resnet.lr, resnet.weight_decay, resnet.schedule) == (0.1, 1e-4, "step")
    with pytest.raises(InvalidArgumentError):
        engine.preset("nope")
    for bad in (dict(epochs=0), dict(lr=-1.0), dict(optimizer="rmsprop"), dict(dataset="imagenet"),
                dict(label_smoothing=1.0), dict(arch="googlenet")):
        with pytest.raises(ValueError):
            engine.TrainConfig(**bad).validate()


@pytest.mark.parametrize(("images", "batch", "world"), [(131, 64, 2), (130, 64, 2), (129, 32, 1), (20, 64, 1)])
def test_training_batches_are_full_and_every_rank_takes_as_many(images: int, batch: int, world: int) -> None:
    labels = torch.arange(images) % 3
    split = data.Split(torch.zeros(images, 1, 28, 28, dtype=torch.uint8), labels)
    batches = engine.Batches(split, tiny(), torch.device("cpu"), 28, 1)
    sizes = [[len(y) for _, y in batches.epoch(batch, shuffle=True, shard=(rank, world))] for rank in range(world)]
    assert len({len(ranks) for ranks in sizes}) == 1  # same number of steps on every rank
    assert all(len(set(ranks)) == 1 for ranks in sizes)  # fixed shapes
    assert sizes[0][0] == min(batch, images // world)
    evaluated = [len(y) for rank in range(world) for _, y in batches.epoch(batch, shuffle=False, shard=(rank, world))]
    assert sum(evaluated) == images  # evaluation sees every image


@pytest.mark.parametrize("name", engine.PRESETS)
def test_every_preset_trains(name: str) -> None:
    config = engine.preset(name, epochs=2, batch_size=16)  # the preset's optimizer, rate, schedule, augmentation
    result = engine.fit(config, tiny())
    assert result.state.status == "completed", result.state.messages
    assert all(math.isfinite(row["train_loss"]) for row in result.state.history)


def test_digits_is_the_offline_default() -> None:
    digits = data.digits()
    assert (digits.channels, digits.size, len(digits.classes)) == (1, 28, 10)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert digits.train.images.dtype == torch.uint8


def _idx(path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as handle:
        handle.write(header + payload)


def test_mnist_from_a_local_copy_of_the_official_gz_files(tmp_path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 24), ("t10k", 6)):
        images = torch.randint(0, 255, (count, 28, 28), dtype=torch.uint8)
        labels = torch.arange(count, dtype=torch.uint8) % 10
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", 2051, (count, 28, 28), images.numpy().tobytes())
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", 2049, (count,), labels.numpy().tobytes())
    mnist = data.torchvision_set("mnist", tmp_path, download=False)
    assert len(mnist.train) + len(mnist.val) == 24 and len(mnist.test) == 6
    assert mnist.channels == 1 and mnist.size == 28


def test_missing_data_set_offline_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(data.DatasetUnavailableError, match="digits"):
        data.torchvision_set("fashion_mnist", tmp_path, download=False)


def make_image_folder(root, classes=("circle", "square"), per_class: int = 6):
    """A tiny generated image folder: one sub-folder per class, plus files that are not images."""
    from PIL import Image, ImageDraw

    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            picture = Image.new("RGB", (40 + i, 36), "white")
            draw = ImageDraw.Draw(picture)
            box = (8, 8, 30, 28)
            (draw.ellipse if label == 0 else draw.rectangle)(box, fill=(200, 30 * i, 40))
            picture.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
        (folder / "notes.txt").write_text("not an image")
        (folder / ".DS_Store").write_bytes(b"\0")
    (root / "__MACOSX").mkdir()
    return root


def test_image_folder_trains_through_the_dataloader_path(tmp_path) -> None:
    folder = make_image_folder(tmp_path / "shapes")
    loaded = data.image_folder(folder, size=32)
    assert loaded.classes == ("circle", "square") and loaded.skipped == 4
    assert len(loaded.train) + len(loaded.val) + len(loaded.test) == 12
    assert loaded.train.image(0).shape == (3, 32, 32)
    config = engine.TrainConfig(arch="lenet5", dataset=f"folder:{folder}", epochs=2, **FAST)
    result = engine.fit(config, data.image_folder(folder, size=28))
    assert result.state.status == "completed" and result.model.in_channels == 3
    assert result.test is not None and len(result.test.predictions) == len(loaded.test)


def test_bad_image_folders_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        data.image_folder(tmp_path / "missing")
    (tmp_path / "one").mkdir()
    with pytest.raises(ValueError, match="at least two class folders"):
        data.image_folder(tmp_path)
    make_image_folder(tmp_path / "few", per_class=2)
    with pytest.raises(ValueError, match="too few in: circle, square"):
        data.image_folder(tmp_path / "few")


def test_generated_shapes_and_health() -> None:
    shapes = data.load("shapes")
    assert shapes.classes == ("circle", "square", "triangle") and (shapes.channels, shapes.size) == (3, 64)
    report = data.health(shapes)
    assert sum(sum(s.values()) for s in report.per_class.values()) == 900
    assert report.sizes == {"64×64": 900} and report.duplicates == 0


def test_health_finds_duplicates_across_splits(tmp_path) -> None:
    import shutil

    folder = make_image_folder(tmp_path / "shapes")
    loaded = data.image_folder(folder)
    assert data.health(loaded).duplicates == 0
    shutil.copy(loaded.train.paths[0], loaded.val.paths[0])  # leak a training image into validation
    assert data.health(loaded).duplicates == 1
    assert data.health(loaded).skipped == 4


def test_augmentation_preview_is_what_training_sees() -> None:
    images = data.load("shapes").train.images[:4]
    preview = engine.augmentation_preview(images, flip=True, seed=1)
    assert preview.shape == images.shape and preview.dtype == torch.uint8
    assert not torch.equal(preview, images)
    assert torch.equal(preview, engine.augmentation_preview(images, flip=True, seed=1))
