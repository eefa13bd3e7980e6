"""Shared fixtures: a fixed seed and the registry's names."""

from __future__ import annotations

import pytest
import torch

from core import models

NAMES = models.names()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs, checkpoints and data sets of the whole test session go to a temporary state directory."""
    import os

    os.environ["CNN_EXPLORER_STATE"] = str(tmp_path_factory.mktemp("state"))
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch"))  # no weights but what a test puts there
