"""The loss a model trains on, and its evaluation on a split (loss, accuracy, confusion, per-class scores)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core import devices
from core.models.base import ExplorerModel
from core.training.batches import BatchSource, HeadView, epoch


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and per-class figures on one split."""

    loss: float
    accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted
    predictions: list[int]

    def per_class(self) -> list[dict[str, float]]:
        """Precision, recall, F1 and support of each class."""
        matrix = torch.tensor(self.confusion, dtype=torch.float64)
        true_positive = matrix.diag()
        precision = true_positive / matrix.sum(0).clamp(min=1)
        recall = true_positive / matrix.sum(1).clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        return [
            {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for p, r, f, s in zip(precision, recall, f1, matrix.sum(1), strict=True)
        ]


def training_loss(model: ExplorerModel | HeadView, output: Any, labels: torch.Tensor,
                  label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Main loss plus the model's auxiliary losses (through the model interface); returns (loss, main logits)."""
    logits, auxiliary = model.split_output(output)
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    for aux in auxiliary:
        loss = loss + model.aux_loss_weight * F.cross_entropy(aux, labels, label_smoothing=label_smoothing)
    return loss, logits


@torch.no_grad()
def evaluate(model: nn.Module, batches: BatchSource, batch_size: int = 1024, num_classes: int | None = None,
             forward: Callable[[torch.Tensor], Any] | None = None) -> Evaluation:
    """Loss, accuracy, confusion matrix and predictions on a split (eval mode, then back to train mode).

    ``forward`` runs the model on a batch (default: ``model`` itself; the trainer passes its CUDA graphs).
    Nothing here waits for the device before the end: the sums and the confusion matrix stay on it.
    """
    was_training = model.training
    model.eval()
    num_classes = num_classes or model_num_classes(model)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=batches.device)
    total_loss = torch.zeros((), device=batches.device)
    predictions = []
    autocast = devices.autocast(batches.device, cache=forward is None)
    for x, y in epoch(batches, batch_size, shuffle=False):
        with autocast:
            logits = (forward or model)(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        predicted = logits.argmax(1)
        predictions.append(predicted)
        confusion.index_put_((y, predicted), torch.ones_like(y), accumulate=True)  # bincount would sync
    model.train(was_training)
    count = max(len(batches), 1)
    matrix = confusion.cpu()
    return Evaluation(loss=float(total_loss) / count, accuracy=float(matrix.diag().sum()) / count,
                      confusion=matrix.tolist(), predictions=torch.cat(predictions).cpu().tolist() if predictions else [])


def model_num_classes(model: nn.Module) -> int:
    """Classes of a zoo model, also when wrapped in DistributedDataParallel."""
    base: Any = getattr(model, "module", model)
    return int(base.num_classes)
