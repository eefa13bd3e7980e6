"""Checkpoints written as sets with a commit record (issue 19, defects 2 and 7): a save killed or out of disk at
any moment leaves the previous complete set to resume from; a damaged best checkpoint never blocks Resume, Classify
falls back to the last one and says so, and a damaged file is never offered for download."""

from __future__ import annotations

import errno
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import checkpoint_sets, checkpoints, classifiers, runs, training
from tests.apptest import open_page
from tests.conftest import finished_run, tiny
from tests.saving_loop import CONFIG as LOOP_CONFIG

ROOT = Path(__file__).resolve().parents[1]
CONFIG = training.TrainConfig(optimizer="adam", lr=3e-3, batch_size=16, weight_decay=0.0, epochs=3)


class StopAfterEpochOne:
    def on_epoch_end(self, progress: training.Progress) -> None:
        raise training.StopTraining("enough for now")


def _stopped_after_epoch_one(folder: Path) -> training.FitResult:
    """A run of CONFIG stopped at the end of its first epoch: best and last checkpoints of epoch 1 in ``folder``."""
    first = training.fit(CONFIG, tiny(), [StopAfterEpochOne()], checkpoint_dir=folder)
    assert first.progress.status == "stopped" and len(first.progress.history) == 1
    return first


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # a byte of the last tensor: still a readable safetensors file, with other numbers
    path.write_bytes(bytes(data))


def _full_disk_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make flushing the temporary file of ``name`` fail once with ENOSPC, as a full disk does."""
    fsync = os.fsync
    failed = []

    def fsync_or_full(descriptor: int) -> None:
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if not failed and Path(target).name.startswith(f".{name}."):
            failed.append(target)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync_or_full)


def _left_over(folder: Path) -> list[str]:
    """Files a save leaves only while it is in progress: temporary files and the previous set's."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".prev." in p.name)


@pytest.mark.parametrize("failing", ["last.json", "last.state.pt", "last.commit.json"])
def test_a_full_disk_in_the_middle_of_a_save_keeps_the_previous_set(tmp_path: Path, failing: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = _stopped_after_epoch_one(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _full_disk_at(monkeypatch, failing)  # the weights of epoch 2 are written, then the disk is full
    with pytest.raises(checkpoints.CheckpointError, match=r"Saving the last checkpoint failed \(No space left on "
                                                          r"device\); the previous one \(epoch 1, step \d+\) is kept"):
        training.fit(CONFIG, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    monkeypatch.undo()
    assert not _left_over(tmp_path)  # partial files cleaned up
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the folder as it was
    resume = checkpoints.read_resume(tmp_path, CONFIG)  # the failed save is ignored: epoch 1 resumes
    assert resume.state["epochs_done"] == 1 and resume.sidecar["epoch"] == 1 and not resume.note
    resumed = training.fit(CONFIG, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    assert [row.epoch for row in resumed.progress.history] == [1, 2, 3]
    assert resumed.progress.history[0] == first.progress.history[0]


def test_a_legacy_folder_loads_and_its_first_failed_save_keeps_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder written before commit records (the same files, no ``*.commit.json``) loads as it did; the first
    save into it records the old set first, so a full disk in that save still leaves it to resume from."""
    _stopped_after_epoch_one(tmp_path)
    for record in tmp_path.glob("*.commit.json"):
        record.unlink()
    assert checkpoints.read_resume(tmp_path, CONFIG).state["epochs_done"] == 1
    model, sidecar, note = checkpoints.load_preferred(tmp_path)
    assert sidecar["which"] == "best" and not note
    _full_disk_at(monkeypatch, "last.state.pt")
    with pytest.raises(checkpoints.CheckpointError, match="the previous one .epoch 1"):
        training.fit(CONFIG, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    monkeypatch.undo()
    assert checkpoints.read_resume(tmp_path, CONFIG).state["epochs_done"] == 1
    assert (tmp_path / "last.commit.json").exists()  # adopted by its run's writer
    resumed = training.fit(CONFIG, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    assert resumed.progress.status == "completed" and resumed.progress.epoch == 3


class Killed(BaseException):
    """The process dies here (nothing after this point runs, no ``except Exception`` catches it)."""


def _loop_progress(step: int) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(config=LOOP_CONFIG, classes=["a", "b"], model=SimpleNamespace(in_channels=1),
                           input_size=28, history=[], epoch=1, step=step, status="running")


def _save_loop_step(folder: Path, step: int) -> None:
    from tests.saving_loop import state

    writer = checkpoints.Writer(folder, "loop", (0.1,), (0.3,))
    writer.save("last", {"weight": torch.full((8,), float(step))}, _loop_progress(step),  # type: ignore[arg-type]
                complete=False, training_state={**state(step), "moments": torch.full((4,), float(step))})
    writer.update("last", status="ended")


def _consistent_step(folder: Path) -> int:
    """The step of the last checkpoint that resumes, after checking its weights, state and sidecar agree."""
    resume = checkpoints.read_resume(folder, LOOP_CONFIG)
    step = resume.state["step"]
    assert resume.sidecar["step"] == step and bool((resume.weights["weight"] == step).all())
    assert bool((resume.state["moments"] == step).all()) and resume.state["weights_sha256"] == resume.sidecar["sha256"]
    return step


def _die_at(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Make the ``count``-th rename or hard link from now on kill the process (as far as the save can tell)."""
    calls = []

    def counted(original):
        def call(*args, **kwargs):
            calls.append(args)
            if len(calls) == count:
                raise Killed
            return original(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "replace", counted(os.replace))
    monkeypatch.setattr(os, "link", counted(os.link))


def test_a_save_that_dies_at_any_file_operation_leaves_a_complete_set(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Die at the 1st, 2nd, … rename or link of a save (and of the sidecar update after it) until one completes:
    after each, a reader resumes from step 1 or 2 whole, and the next writer puts the folder back in order."""
    _save_loop_step(tmp_path, 1)
    for dying_at in range(1, 100):
        _die_at(monkeypatch, dying_at)
        try:
            _save_loop_step(tmp_path, 2)
            completed = True
        except Killed:
            completed = False
        monkeypatch.undo()
        assert _consistent_step(tmp_path) in (1, 2), dying_at
        checkpoints.Writer(tmp_path, "loop", (0.1,), (0.3,))  # the next writer cleans up
        assert not _left_over(tmp_path) and _consistent_step(tmp_path) in (1, 2)
        if completed:
            break
        for name in ("last.safetensors", "last.json", "last.state.pt", "last.commit.json"):  # back to step 1
            (tmp_path / name).unlink(missing_ok=True)
        _save_loop_step(tmp_path, 1)
    assert completed and dying_at > 8 and _consistent_step(tmp_path) == 2


def _wait_for_line(child: subprocess.Popen, timeout: float) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    assert ready, f"no save within {timeout} s"
    return child.stdout.readline()


def test_sigkill_during_saves_always_leaves_the_newest_complete_set(tmp_path: Path) -> None:
    """A process saving 8 MB checkpoints in a loop is SIGKILLed at random moments, six times: each time the last
    checkpoint resumes, with weights and training state of the same step, never older than the time before."""
    chance = random.Random(19)
    newest = 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-m", "tests.saving_loop", str(tmp_path)], cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert _wait_for_line(child, 120).startswith("saved")  # a save completed: the next ones may die
            time.sleep(chance.uniform(0.0, 0.6))  # not a wait for something: the moment of the kill, at random
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(60)
            assert child.stdout is not None
            child.stdout.close()
        step = _consistent_step(tmp_path)
        assert step >= newest
        newest = step


def test_a_damaged_best_does_not_block_resume(tmp_path: Path) -> None:
    _stopped_after_epoch_one(tmp_path)
    _flip_a_byte(checkpoints.weights_path(tmp_path, "best"))
    resume = checkpoints.read_resume(tmp_path, CONFIG)
    assert resume.best_weights is None
    assert resume.note.startswith("The best checkpoint is damaged (best.safetensors does not match the SHA-256")
    assert "resuming from the last one (epoch 1) without it" in resume.note
    resumed = training.fit(CONFIG, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    assert resumed.progress.status == "completed" and [row.epoch for row in resumed.progress.history] == [1, 2, 3]
    assert any(message.startswith("The best checkpoint is damaged") for message in resumed.progress.messages)


def test_classify_falls_back_to_the_last_checkpoint_and_says_so(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    run_id = finished_run(store)
    folder = store.checkpoint_dir(run_id)
    _flip_a_byte(checkpoints.weights_path(folder, "best"))
    model, sidecar, note = checkpoints.load_preferred(folder)
    assert sidecar["which"] == "last" and not model.training
    assert note.startswith("The best checkpoint is damaged (") and note.endswith("; using the last one, epoch 2.")
    loaded = classifiers.load(f"run:{run_id}", store)
    assert loaded.note == note and loaded.classes == tuple(sidecar["classes"])
    offered = checkpoints.downloads(folder)
    assert offered["last"].weights == checkpoints.weights_path(folder, "last").read_bytes()
    assert not offered["best"].weights and "does not match the SHA-256" in offered["best"].problem
    _flip_a_byte(checkpoints.weights_path(folder, "last"))
    with pytest.raises(checkpoints.CheckpointError, match="Neither checkpoint of run .* can be used"):
        checkpoints.load_preferred(folder)


def test_the_pages_refuse_a_damaged_download_and_classify_with_the_last() -> None:
    from explorer import export_view, services

    run_id = finished_run(services.run_store())
    _flip_a_byte(checkpoints.weights_path(services.run_store().checkpoint_dir(run_id), "best"))
    training_page = open_page("training", run=run_id)
    offered = {button.proto.label for button in training_page.get("download_button")}
    assert "Last checkpoint" in offered and "Best checkpoint" not in offered
    warnings = " ".join(str(w.value) for w in training_page.warning)
    assert "The best checkpoint is damaged and is not offered for download" in warnings, warnings
    classify = open_page("classify")
    classify.selectbox(key="classify-model").set_value(f"run:{run_id}").run()
    assert not classify.exception and not classify.error
    warnings = " ".join(str(w.value) for w in classify.warning)
    assert "The best checkpoint is damaged" in warnings and "using the last one, epoch 2" in warnings, warnings
    assert "Prediction" in {metric.label for metric in classify.metric}
    training_page.button(key=f"export-code-{run_id}").click().run()  # the export says so too
    warnings = " ".join(str(w.value) for w in training_page.warning)
    assert "using the last one, epoch 2" in warnings and "last" in export_view.make(run_id, "code").file_name


def test_a_set_whose_files_do_not_match_its_record_is_ignored(tmp_path: Path) -> None:
    """The newest record names files that are not what is on disk (a save cut short): the previous set is read."""
    _save_loop_step(tmp_path, 1)
    previous = checkpoint_sets.read_record(tmp_path, "last")
    assert previous is not None
    checkpoint_sets._copy_set(previous, "last" + checkpoint_sets.PREVIOUS)  # as a save of step 2 begins
    checkpoints.atomic_write(tmp_path / "last.safetensors", b"new weights, cut short")
    assert _consistent_step(tmp_path) == 1


def test_a_legacy_folder_with_a_stale_training_state_keeps_its_weights(tmp_path: Path) -> None:
    """An old interrupted write left a training state of other weights: the run cannot resume (said as before), but
    its writer records the weights and sidecar, which a save then keeps until it is complete."""
    _stopped_after_epoch_one(tmp_path)
    for record in tmp_path.glob("*.commit.json"):
        record.unlink()
    state = checkpoints.load_training_state(tmp_path)
    checkpoints.save_training_state(tmp_path, {**state, "weights_sha256": "0" * 64})
    checkpoints.Writer(tmp_path, None, (0.1,), (0.3,))
    recorded = checkpoint_sets.read_record(tmp_path, "last")
    assert recorded is not None and sorted(recorded.files) == ["last.json", "last.safetensors"]
    with pytest.raises(checkpoints.CheckpointError, match="belongs to other weights"):
        checkpoints.read_resume(tmp_path, CONFIG)
    assert checkpoints.read_checkpoint(tmp_path, "last").sidecar["epoch"] == 1


def test_the_ray_store_service_keeps_the_previous_set_when_a_sent_one_fails(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints trained on another node arrive as bytes: the server writes each set's record last, and a full disk
    while the files of a newer set arrive leaves the one it had."""
    from core import executors

    node = tmp_path / "node"
    _save_loop_step(node, 1)
    service = executors.StoreService(str(tmp_path / "server"), 30.0)
    sent = {path.name: path.read_bytes() for path in node.iterdir()}
    service.put_files("run-1", sent)
    server = tmp_path / "server" / "checkpoints" / "run-1"
    assert _consistent_step(server) == 1
    _save_loop_step(node, 2)
    _full_disk_at(monkeypatch, "last.state.pt")
    with pytest.raises(OSError):
        service.put_files("run-1", {path.name: path.read_bytes() for path in node.iterdir()})
    monkeypatch.undo()
    assert _consistent_step(server) == 1 and {p.name: p.read_bytes() for p in server.iterdir()} == sent
    service.put_files("run-1", {path.name: path.read_bytes() for path in node.iterdir()})
    assert _consistent_step(server) == 2 and not _left_over(server)
