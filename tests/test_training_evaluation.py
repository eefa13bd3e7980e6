"""Evaluation of a split: per-class scores, and figures checked against a plain computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core import models, training
from tests.conftest import tiny


def test_per_class_scores() -> None:
    evaluation = training.Evaluation(loss=0.1, accuracy=0.75, confusion=[[2, 0], [1, 1]], predictions=[0, 0, 0, 1])
    first, second = evaluation.per_class()
    assert first == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert second["precision"] == 1.0 and second["recall"] == 0.5


def test_evaluate_matches_a_plain_computation() -> None:
    small = tiny()
    model = models.build("lenet5", num_classes=3, in_channels=1)
    preprocess = training.Preprocess.of(small, torch.device("cpu"), 28, 1)
    result = training.evaluate(model, training.make_batches(small.val, preprocess), batch_size=5)
    with torch.no_grad():
        logits = model.eval()(preprocess(small.val.images))
    assert result.loss == pytest.approx(float(F.cross_entropy(logits, small.val.labels)), rel=1e-5)
    assert result.predictions == logits.argmax(1).tolist()
    assert result.accuracy == pytest.approx(float((logits.argmax(1) == small.val.labels).float().mean()))
    assert sum(map(sum, result.confusion)) == len(small.val)
