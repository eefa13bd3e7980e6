"""Shared fixtures: a fixed seed and the registry's names."""

from __future__ import annotations

import pytest
import torch

from core import models

NAMES = models.names()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
