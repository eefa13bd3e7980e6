"""Checkpoints: what is saved when, what the sidecar records, and what loading refuses."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from core import checkpoints, models, runs, training
from tests.conftest import FAST, tiny


def _sidecar(arch: str = "lenet5", classes: int = 10, channels: int = 1) -> dict:
    return {"arch": arch, "classes": [str(i) for i in range(classes)], "in_channels": channels, "input_size": 28,
            "mean": [0.1], "std": [0.3]}


def test_checkpoint_round_trip_with_its_hash(tmp_path: Path) -> None:
    model = models.build("lenet5")
    path = tmp_path / "best.safetensors"
    written = checkpoints.save(model, path, _sidecar())
    loaded, sidecar = checkpoints.load(path, expected_arch="lenet5")
    assert sidecar["classes"][0] == "0" and sidecar["sha256"] == written["sha256"] and len(sidecar["sha256"]) == 64
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(),
                                                   strict=True))
    assert not loaded.training


def test_checkpoint_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.safetensors"
    checkpoints.save(models.build("lenet5"), path, _sidecar())
    before = path.read_bytes()

    def disk_full(descriptor: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.os, "fsync", disk_full)
    with pytest.raises(OSError):
        checkpoints.save(models.build("lenet5"), path, _sidecar())
    assert path.read_bytes() == before  # the good checkpoint survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]  # no temp files left


def test_flipped_bytes_are_refused_by_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "best.safetensors"
    checkpoints.save(models.build("lenet5"), path, _sidecar())
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one byte of the last tensor: still a readable safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoints.CheckpointError, match="does not match the SHA-256"):
        checkpoints.load(path)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    model = models.build("lenet5")
    with torch.no_grad():
        next(model.parameters())[0] = math.nan
    path = tmp_path / "last.safetensors"
    checkpoints.save(model, path, _sidecar())  # the hash matches: the weights were saved that way
    with pytest.raises(checkpoints.CheckpointError, match="non-finite weights"):
        checkpoints.load(path)


def test_corrupt_or_mismatched_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"this is not a safetensors file")
    path.with_suffix(".json").write_text(json.dumps(_sidecar()))  # an old sidecar, without a hash
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors"):
        checkpoints.load(path)
    checkpoints.save(models.build("lenet5"), path, _sidecar(arch="resnet18", channels=3))
    with pytest.raises(checkpoints.CheckpointError, match="does not fit .resnet18."):
        checkpoints.load(path)
    checkpoints.save(models.build("lenet5"), path, _sidecar())
    with pytest.raises(checkpoints.CheckpointError, match="not a vgg16"):
        checkpoints.load(path, expected_arch="vgg16")
    path.with_suffix(".json").write_text("{")
    with pytest.raises(checkpoints.CheckpointError, match="not valid JSON"):
        checkpoints.load(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="No sidecar"):
        checkpoints.load(path)


@pytest.mark.parametrize(("field", "value"), [("classes", 5), ("classes", [1, 2]), ("classes", []),
                                            ("classes", "cat"), ("arch", 5), ("in_channels", "1"),
                                            ("input_size", True), ("mean", 0.1), ("std", ["x"])])
def test_a_sidecar_field_of_the_wrong_type_is_a_checkpoint_error(tmp_path: Path, field: str, value: object) -> None:
    """Issue 18: ``"classes": 5`` raised an uncaught TypeError (a generic error box on Classify)."""
    path = tmp_path / "best.safetensors"
    checkpoints.save(models.build("lenet5"), path, {**_sidecar(), field: value})
    with pytest.raises(checkpoints.CheckpointError, match=f"has '{field}' of the wrong type"):
        checkpoints.load(path)


def test_float64_weights_that_overflow_float32_are_refused(tmp_path: Path) -> None:
    """Issue 18: finite in the file's float64, infinite once cast to the model's float32."""
    state = {name: tensor.double() for name, tensor in models.build("lenet5").state_dict().items()}
    next(iter(state.values()))[0] = 1e300
    path = tmp_path / "best.safetensors"
    checkpoints.save(state, path, _sidecar())
    checkpoints.load_weights(path)  # the file's own values are finite
    with pytest.raises(checkpoints.CheckpointError, match="non-finite values .* as torch.float32"):
        checkpoints.load(path)


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    old = tmp_path / ".last.safetensors.1a2b3c4d.tmp"
    fresh = tmp_path / ".best.json.5e6f7a8b.tmp"
    old.write_bytes(b"half a checkpoint")
    fresh.write_bytes(b"a write in progress")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    checkpoints.save(models.build("lenet5"), tmp_path / "best.safetensors", _sidecar())
    checkpoints.load(tmp_path / "best.safetensors")  # a reader removes what no write can still be doing
    assert not old.exists() and fresh.exists()
    checkpoints.Writer(tmp_path, "run", (0.1,), (0.3,))  # the run's own writer: every temporary file is stale
    assert not fresh.exists()


def _train(tmp_path: Path, callbacks=(), stop=None, **overrides) -> tuple[training.FitResult, runs.RunStore, str]:
    store = runs.RunStore(tmp_path)
    config = training.TrainConfig(**{**FAST, "epochs": 3, **overrides})
    run_id = store.create_run(config)
    result = training.fit(config, tiny(), [runs.StoreCallback(store, run_id), *callbacks], stop=stop,
                          checkpoint_dir=store.checkpoint_dir(run_id), run_id=run_id)
    return result, store, run_id


def _test_accuracy_of(path: Path) -> float:
    """The test accuracy of a saved checkpoint, computed from the file alone."""
    model, sidecar = checkpoints.load(path)
    data = tiny()
    preprocess = training.Preprocess.of(data, torch.device("cpu"), sidecar["input_size"], sidecar["in_channels"])
    return training.evaluate(model, training.make_batches(data.test, preprocess)).accuracy


def test_a_completed_run_keeps_best_and_last_each_with_its_own_figures(tmp_path: Path) -> None:
    result, store, run_id = _train(tmp_path)
    folder = store.checkpoint_dir(run_id)
    best, last = checkpoints.read_sidecar(folder / "best.safetensors"), checkpoints.read_sidecar(folder / "last.safetensors")
    assert last["epoch"] == 3 and last["epoch_complete"] and last["status"] == best["status"] == "completed"
    assert best["config"] == training.config_dict(result.progress.config) and best["run_id"] == run_id
    assert best["epoch"] == result.progress.best_epoch and best["metrics"]["val_loss"] == result.progress.best_val_loss
    for sidecar, path in ((best, folder / "best.safetensors"), (last, folder / "last.safetensors")):
        assert sidecar["test"]["accuracy"] == _test_accuracy_of(path)
    shown = store.run(run_id).test
    assert shown["checkpoint"] == "best" and shown["epoch"] == best["epoch"] and shown["saved"]
    assert shown["accuracy"] == best["test"]["accuracy"]


def test_stop_in_epoch_one_keeps_a_last_checkpoint_whose_figures_are_shown(tmp_path: Path) -> None:
    stop = threading.Event()

    class StopAfterOneBatch:
        def on_batch_end(self, progress: training.Progress) -> None:
            stop.set()

    result, store, run_id = _train(tmp_path, [StopAfterOneBatch()], stop, batch_size=2)
    progress = result.progress
    assert progress.status == "stopped" and progress.epoch == 1 and progress.history == ()
    folder = store.checkpoint_dir(run_id)
    assert not (folder / "best.safetensors").exists()  # nothing was validated
    last = checkpoints.read_sidecar(folder / "last.safetensors")
    assert (last["epoch"], last["step"], last["epoch_complete"], last["status"]) == (1, progress.step, False,
                                                                                      "stopped")
    shown = store.run(run_id).test
    assert (shown["checkpoint"], shown["epoch"], shown["step"]) == ("last", 1, progress.step)
    assert shown["accuracy"] == last["test"]["accuracy"] == _test_accuracy_of(folder / "last.safetensors")
    assert checkpoints.preferred(folder) == folder / "last.safetensors"
    assert "Kept: the last checkpoint (epoch 1, step" in store.run(run_id).message


def test_a_run_that_diverges_in_epoch_one_says_nothing_was_saved(tmp_path: Path) -> None:
    result, store, run_id = _train(tmp_path, optimizer="sgd", lr=1e30, momentum=0.0, batch_size=8)
    assert result.progress.status == "failed" and result.test is None
    message = store.run(run_id).message
    assert "diverged" in message and "No checkpoint was saved." in message and "last good" not in message
    assert checkpoints.preferred(store.checkpoint_dir(run_id)) is None
    assert store.run(run_id).test is None


def test_a_run_that_diverges_later_keeps_its_last_good_checkpoints(tmp_path: Path) -> None:
    class Poison:
        def on_epoch_end(self, progress: training.Progress) -> None:
            if progress.epoch == 1:  # from epoch 2 on the loss is NaN
                with torch.no_grad():
                    next(progress.model.parameters()).fill_(math.nan)

    result, store, run_id = _train(tmp_path, [Poison()])
    assert result.progress.status == "failed"
    message = store.run(run_id).message
    assert "Kept: the last checkpoint (end of epoch 1) and the best checkpoint (end of epoch 1)." in message
    folder = store.checkpoint_dir(run_id)
    last = checkpoints.read_sidecar(folder / "last.safetensors")
    assert last["epoch"] == 1 and last["status"] == "failed"
    checkpoints.load(folder / "last.safetensors")  # saved before the poison: finite, and its hash holds
    shown = store.run(run_id).test
    assert shown["checkpoint"] == "best" and shown["accuracy"] == _test_accuracy_of(folder / "best.safetensors")


GOOD_TEST = {"accuracy": 0.5, "loss": 1.0, "confusion": [[1, 0], [1, 0]], "classes": ["a", "b"],
             "per_class": [{"precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1}] * 2,
             "misclassified": [3], "predicted": [0], "checkpoint": "best", "epoch": 1, "step": 4, "saved": True}


@pytest.mark.parametrize("spoil", [
    {"accuracy": "x"}, {"loss": None}, {"classes": 3}, {"classes": ["a", 2]}, {"confusion": [[1, 0]]},
    {"confusion": [[1, 0], [1, "0"]]}, {"per_class": [{}]}, {"misclassified": [-1]}, {"predicted": [2]},
    {"predicted": [0, 1]}], ids=str)
def test_test_figures_of_the_wrong_shape_are_left_out(spoil: dict) -> None:
    """A rebuilt run's figures come from a sidecar anyone with the folder can edit: the pages read only sound ones."""
    assert checkpoints.sound_test_figures(GOOD_TEST) == GOOD_TEST
    assert checkpoints.sound_test_figures({**GOOD_TEST, **spoil}) is None
