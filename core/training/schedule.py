"""The optimiser and the learning-rate schedule a config asks for.

``LearningRate`` is the one place the schedule is stepped: the trainer tells it when a batch and when an
epoch ended, and it steps the schedules that move at that granularity (one-cycle every batch, the others
every epoch, plateau on the validation loss).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from core.training.config import TrainConfig


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over the parameters that train."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    # On CUDA the fused kernel updates every parameter in one launch: small models are launch-bound there.
    fused = bool(parameters) and all(p.is_cuda and p.is_floating_point() for p in parameters)
    return optimizer_class(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


class LearningRate:
    """The schedule of one run, planned for ``total_steps`` optimiser steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> None:
        self.optimizer = optimizer
        self.config = config
        self.scheduler: Any = self._plan(total_steps)

    def _plan(self, total_steps: int) -> Any:
        config, optimizer = self.config, self.optimizer
        if config.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
        if config.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        if config.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(total_steps, 1))
        if config.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma, patience=2)
        return None

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.optimizer.param_groups[0]["lr"])

    def after_batch(self) -> None:
        """One optimiser step done: one-cycle moves on (and stays at its floor if a run overshoots its plan)."""
        if self.config.schedule == "onecycle" and self.scheduler.last_epoch < self.scheduler.total_steps - 1:
            self.scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        """One epoch validated: the epoch-wise schedules move on, plateau on ``val_loss``."""
        if self.config.schedule == "plateau":
            self.scheduler.step(val_loss)
        elif self.config.schedule in ("step", "cosine"):
            self.scheduler.step()

    def replan(self, steps_done: int, total_steps: int) -> None:
        """The number of steps changed (a smaller batch after running out of memory): one-cycle is planned
        again over ``total_steps`` and continues from ``steps_done``, so it still ends at the run's end."""
        if self.config.schedule != "onecycle":
            return
        self.scheduler = self._plan(max(total_steps, steps_done + 1))
        if steps_done:
            self.scheduler.last_epoch = steps_done - 1
            with warnings.catch_warnings():  # stepping the fresh scheduler to where the old one was
                warnings.simplefilter("ignore", UserWarning)
                self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (empty without a schedule)."""
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a schedule saved by ``state_dict``."""
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)
