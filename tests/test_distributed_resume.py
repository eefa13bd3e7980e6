"""A multi-process run stopped mid-epoch and resumed ends with the weights of one that never stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import checkpoints, runs
from core.training import ranks

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
# 1258 training images, 629 a rank, batches of 16: 40 steps an epoch, reports at 20, 40, 60, …; augmentation and
# one-cycle, so every rank's random generators, its share of the epoch and the schedule must all come back.
TRAIN = ["--arch", "lenet5", "--dataset", "digits", "--epochs", "3", "--optimizer", "adam", "--lr", "0.003",
         "--batch-size", "16", "--schedule", "onecycle", "--augment", "--dist-timeout", "120"]


def torchrun(module: str, *args: str, stop_at: int = 0) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", module, *args]
    result = subprocess.run(command, cwd=ROOT, env={**ENV, "STOP_AT_STEP": str(stop_at)}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def final_weights(store: runs.RunStore, run_id: str) -> dict[str, torch.Tensor]:
    return checkpoints.read_checkpoint(store.checkpoint_dir(run_id), "last").tensors


def test_each_rank_takes_its_own_part_and_a_state_of_rank_0_alone_is_refused_to_the_others() -> None:
    parts = [{"order": torch.arange(rank, 10, 2)} for rank in range(2)]
    state = {"shard": [0, 2], "ranks": parts}
    assert torch.equal(ranks.own_part(state, (1, 2))["order"], torch.arange(1, 10, 2))
    with pytest.raises(checkpoints.CheckpointError, match="trained by 2 processes; resume it with as many"):
        ranks.own_part(state, (0, 1))
    legacy = {"shard": [0, 2], "order": torch.arange(0, 10, 2)}  # saved before every rank's part was kept
    assert ranks.own_part(legacy, (0, 2)) is legacy
    with pytest.raises(checkpoints.CheckpointError, match="first process only"):
        ranks.own_part(legacy, (1, 2))
    assert ranks.gather({"order": None}, (0, 1)) == [{"order": None}]  # one process: no process group needed


@pytest.mark.slow  # separate Python processes
def test_a_torchrun_run_stopped_and_resumed_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = runs.RunStore(tmp_path / "whole")
    torchrun("core.train", *TRAIN, "--state-dir", str(whole.root))
    (expected,) = whole.runs()

    store = runs.RunStore(tmp_path / "stopped")
    torchrun("tests.stopping_rank", *TRAIN, "--state-dir", str(store.root), stop_at=60)  # epoch 2, mid-way
    (run,) = store.runs()
    assert run.status == "stopped", run
    last = checkpoints.read_sidecar(store.checkpoint_path(run.id, "last"))
    assert (last["epoch"], last["step"], last["epoch_complete"]) == (2, 60, False)

    result = torchrun("core.train", "--resume", run.id, "--state-dir", str(store.root))
    assert "Resumed from the last checkpoint (epoch 2, step 60)" in result.stderr
    run = store.run(run.id)
    assert run.status == "completed", run
    assert run.progress["step"] == expected.progress["step"] == 120
    assert [row["epoch"] for row in store.metrics(run.id, "epoch")] == [1, 2, 3]
    weights, reference = final_weights(store, run.id), final_weights(whole, expected.id)
    assert weights.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=1e-6, msg=name)
