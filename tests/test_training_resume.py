"""Resuming: a stopped run continues from its last checkpoint as if it had never stopped."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from core import checkpoints, runs, training
from tests.conftest import tiny

# Augmentation and one-cycle: the random generators and the schedule have to be restored too.
CONFIG = training.TrainConfig(optimizer="adam", lr=3e-3, batch_size=4, weight_decay=0.0, epochs=3,
                              schedule="onecycle", augment=True)


def _data():
    return tiny(per_class=48)  # 86 images, 22 batches of 4 an epoch: reports at steps 20, 22, 40, 44, …


class StopAt:
    """Sets ``stop`` at the report of ``step`` (the run ends before the next batch)."""

    def __init__(self, stop: threading.Event, step: int) -> None:
        self.stop, self.step = stop, step

    def on_batch_end(self, progress: training.Progress) -> None:
        if progress.step == self.step:
            self.stop.set()


def _figures(history) -> list[tuple]:
    return [(row.epoch, row.train_loss, row.train_acc, row.val_loss, row.val_acc, row.lr) for row in history]


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    whole = training.fit(CONFIG, _data())

    store = runs.RunStore(tmp_path)
    run_id = store.create_run(CONFIG)
    folder = store.checkpoint_dir(run_id)
    stop = threading.Event()
    first = training.fit(CONFIG, _data(), [runs.StoreCallback(store, run_id), StopAt(stop, 40)], stop=stop,
                         checkpoint_dir=folder, run_id=run_id)
    assert first.progress.status == "stopped" and (first.progress.epoch, first.progress.step) == (2, 40)
    last = checkpoints.read_sidecar(folder / "last.safetensors")
    assert (last["epoch"], last["step"], last["epoch_complete"]) == (2, 40, False)

    resumed = training.fit(CONFIG, _data(), [runs.StoreCallback(store, run_id)], checkpoint_dir=folder,
                           run_id=run_id, resume_from=folder)
    progress = resumed.progress
    assert progress.status == "completed"
    assert any("Resumed from the last checkpoint (epoch 2, step 40)" in m for m in progress.messages)
    # Same counters, same curves, same weights as the run that never stopped.
    assert (progress.step, progress.images_seen) == (whole.progress.step, whole.progress.images_seen)
    assert _figures(progress.history) == _figures(whole.progress.history)
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    assert resumed.test is not None and resumed.test.accuracy == whole.test.accuracy
    # The store's curves continue: each epoch once, each step once, in order.
    assert [row["epoch"] for row in store.metrics(run_id, "epoch")] == [1, 2, 3]
    steps = [row["step"] for row in store.metrics(run_id, "step")]
    assert steps == sorted(set(steps)) and steps[-1] == progress.step
    assert store.run(run_id).status == "completed"


def test_a_run_stopped_at_an_epoch_end_resumes_at_the_next_epoch(tmp_path: Path) -> None:
    class StopAfterEpochOne:
        def on_epoch_end(self, progress: training.Progress) -> None:
            raise training.StopTraining("enough for now")

    config = training.TrainConfig(optimizer="adam", lr=3e-3, batch_size=16, weight_decay=0.0, epochs=3)
    first = training.fit(config, tiny(), [StopAfterEpochOne()], checkpoint_dir=tmp_path)
    assert first.progress.status == "stopped" and len(first.progress.history) == 1
    starts = []

    class Starts:
        def on_epoch_start(self, progress: training.Progress) -> None:
            starts.append(progress.epoch)

    resumed = training.fit(config, tiny(), [Starts()], checkpoint_dir=tmp_path, resume_from=tmp_path)
    assert starts == [2, 3]
    assert [row.epoch for row in resumed.progress.history] == [1, 2, 3]
    assert resumed.progress.history[0] == first.progress.history[0]
    # the clock goes on from the checkpoint (the first run's own clock also counted its test pass after it)
    assert resumed.progress.elapsed >= first.progress.history[0].elapsed


def test_resuming_refuses_what_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(checkpoints.CheckpointError, match="no last checkpoint"):
        training.fit(CONFIG, _data(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    config = training.TrainConfig(optimizer="adam", lr=3e-3, batch_size=16, weight_decay=0.0, epochs=1)
    training.fit(config, tiny(), checkpoint_dir=tmp_path)
    with pytest.raises(checkpoints.CheckpointError, match=r"other settings \(lr\)"):
        training.fit(training.TrainConfig(**{**training.config_dict(config), "lr": 1e-3}), tiny(),
                     resume_from=tmp_path)
    state = checkpoints.load_training_state(tmp_path)
    checkpoints.save_training_state(tmp_path, {**state, "weights_sha256": "0" * 64})
    with pytest.raises(checkpoints.CheckpointError, match="belongs to other weights"):
        training.fit(config, tiny(), resume_from=tmp_path)
    checkpoints.state_path(tmp_path).write_bytes(b"not a training state")
    with pytest.raises(checkpoints.CheckpointError, match="cannot be read"):
        training.fit(config, tiny(), resume_from=tmp_path)


def test_the_command_line_resumes_a_stopped_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from core import data
    from core import train as cli

    config = training.TrainConfig(optimizer="adam", lr=3e-3, batch_size=64, weight_decay=0.0, epochs=3)
    store = runs.RunStore(tmp_path)
    run_id = store.create_run(config, status="running")

    class StopAfterEpochOne:
        def on_epoch_end(self, progress: training.Progress) -> None:
            raise training.StopTraining("Stopped by the user.")

    training.fit(config, data.load("digits"), [runs.StoreCallback(store, run_id), StopAfterEpochOne()],
                 checkpoint_dir=store.checkpoint_dir(run_id), run_id=run_id)
    assert store.run(run_id).status == "stopped"
    assert cli.main(["--resume", run_id, "--state-dir", str(tmp_path)]) == 0
    assert "Resumed from the last checkpoint (end of epoch 1)" in capsys.readouterr().err
    run = store.run(run_id)
    assert run.status == "completed" and len(store.runs()) == 1  # the same run, not a new one
    assert [row["epoch"] for row in store.metrics(run_id, "epoch")] == [1, 2, 3]
    with pytest.raises(SystemExit):
        cli.main(["--resume", "no-such-run", "--state-dir", str(tmp_path)])
