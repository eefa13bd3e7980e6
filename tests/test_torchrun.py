"""One run across two nodes: torchrun's c10d rendezvous on localhost, one process per node, gloo on the CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core import runs

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_train_one_run_that_only_the_first_node_records(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    nodes = []
    for node in range(2):  # as on two machines: each runs the same command, pointed at the same endpoint
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes",
                   "-m", "core.train", "--arch", "lenet5", "--dataset", "digits", "--epochs", "2",
                   "--optimizer", "adam", "--lr", "0.003", "--batch-size", "32", "--dist-timeout", "120",
                   "--state-dir", str(tmp_path / f"node-{node}")]
        nodes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in nodes:
            output, _ = process.communicate(timeout=400)
            outputs.append(output)
    finally:
        for process in nodes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in nodes] == [0, 0], "\n---\n".join(o[-2000:] for o in outputs)
    # Whichever node the rendezvous made rank 0 recorded the run; the other wrote nothing.
    stores = [runs.RunStore(tmp_path / f"node-{n}") for n in range(2)]
    (store,) = [store for store in stores if store.db_path.exists() and store.runs()]
    (run,) = store.runs()
    assert run.status == "completed" and run.test["accuracy"] > 0.5
    assert [row["epoch"] for row in store.metrics(run.id, "epoch")] == [1, 2]
