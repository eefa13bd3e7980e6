"""The GPU machine's one prepared run (benchmarks/device_check.sh) starts and goes through every step: its CPU
dry run, with tiny sizes and the GPU image's packages only, before any device time is spent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_device_check_runs_every_step_on_the_cpu(tmp_path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(["bash", "benchmarks/device_check.sh", "--cpu-dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    tables = {path.stem: path.read_text() for path in tmp_path.glob("*.txt")}
    assert set(tables) == {"machine", "tests", "train_mnist", "inference", "train_cifar"}
    assert "tests collected" in tables["tests"] and "test_training_graphs.py::" in tables["tests"]
    assert "tutorial DataLoader" in tables["train_mnist"] and "channels-last" in tables["train_mnist"]  # CPU rows
    assert "published recipe" in tables["train_mnist"]
    assert "xception" in tables["inference"] and "resnet18" in tables["inference"]
    assert "torchvision, plain loop" in tables["train_cifar"]


def test_the_dry_run_refuses_what_the_gpu_image_lacks(tmp_path) -> None:
    """A step that imports a package the GPU machine lacks fails in the dry run (the blocker works)."""
    script = (ROOT / "benchmarks" / "device_check.sh").read_text()
    blocker = script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    (tmp_path / "sitecustomize.py").write_text(blocker)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for module, fails in (("streamlit", True), ("torchinfo", True), ("torch.nn", False)):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert (done.returncode != 0) == fails, (module, done.stderr[-500:])
        if fails:
            assert "not on the GPU machine's image" in done.stderr
