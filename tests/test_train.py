"""The command line trainer: SIGTERM stops a run like Ctrl-C, a frozen rank ends a distributed run in time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core import checkpoints, runs
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CNN_EXPLORER_HEARTBEAT_TIMEOUT": "5"}
TRAIN = ["--arch", "lenet5", "--dataset", "digits", "--epochs", "500", "--optimizer", "adam", "--lr", "0.003"]


def stop_after_an_epoch(command: list[str], store: runs.RunStore,
                        stop: Callable[[subprocess.Popen, dict], None]) -> tuple[dict, str]:
    """Start ``command``, wait until its run has finished an epoch, ``stop(process, run)``; the run as it was
    then, and the command's output once it has exited (killed if the test fails first)."""
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: store.db_path.exists() and store.runs() and store.metrics(store.runs()[0].id), 240,
                   f"the run of {command[2]} to finish an epoch")
        (run,) = store.runs()
        stop(process, run)
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output[-3000:]
    return run, output


@pytest.mark.slow  # separate Python processes
def test_sigterm_stops_a_command_line_run_and_keeps_its_checkpoint(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path, heartbeat_timeout=5)
    run, _ = stop_after_an_epoch([sys.executable, "-m", "core.train", *TRAIN, "--state-dir", str(tmp_path)], store,
                                 lambda process, run: process.send_signal(signal.SIGTERM))
    assert run.status == "running" and run.worker.startswith("cli-")
    run = store.run(run.id)
    assert run.status == "stopped" and "Stopped" in (run.message or "")
    assert "last" in store.checkpoints(run.id)
    assert checkpoints.read_sidecar(store.checkpoint_path(run.id, "last"))["run_id"] == run.id


@pytest.mark.slow  # separate Python processes
def test_a_frozen_rank_ends_a_distributed_run_within_the_process_group_timeout(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "tests.frozen_rank", "--arch", "lenet5", "--dataset", "digits", "--epochs", "2",
               "--optimizer", "adam", "--lr", "0.003", "--batch-size", "32", "--dist-timeout", "5",
               "--state-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert result.returncode != 0  # the run ended (here, or torchrun's deadline above would fail the test)
    (run,) = runs.RunStore(tmp_path).runs()
    assert run.status == "failed", (run, result.stderr[-3000:])
    assert run.message


@pytest.mark.slow  # separate Python processes
def test_a_stop_from_the_store_ends_every_rank_of_a_torchrun_run(tmp_path: Path) -> None:
    """Only rank 0 reads the store; the ranks agree on the stop at a progress report, so rank 1 ends with it
    instead of waiting in its next all-reduce for the process-group timeout (600 s here: the test would time out)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "core.train", *TRAIN, "--batch-size", "32", "--dist-timeout", "600", "--state-dir", str(tmp_path)]
    store = runs.RunStore(tmp_path)
    run, _ = stop_after_an_epoch(command, store, lambda process, run: store.request_stop(run.id))
    run = store.run(run.id)
    assert run.status == "stopped", run
    assert "last" in store.checkpoints(run.id)


@pytest.mark.slow  # separate Python processes
def test_a_loss_that_diverges_on_one_rank_ends_every_rank(tmp_path: Path) -> None:
    """Rank 1's loss reads infinite, rank 0's stays finite: the ranks agree on the divergence at the first
    progress report, so rank 0 fails with rank 1 instead of waiting in its next all-reduce for the
    process-group timeout (600 s here: the test would time out)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "tests.diverging_rank", *TRAIN, "--batch-size", "32", "--dist-timeout", "600",
               "--state-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    (run,) = runs.RunStore(tmp_path).runs()
    assert run.status == "failed", (run, result.stderr[-3000:])
    assert "non-finite in another process" in run.message  # rank 0 records; its own loss was finite
    assert run.progress["epoch"] == 1 and run.progress["step"] < 50
