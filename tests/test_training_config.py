"""Training configs: validation, the presets, the choices as types."""

from __future__ import annotations

import pytest

from core import training
from core.errors import InvalidArgumentError


def test_presets_and_validation() -> None:
    notes = training.preset("LeNet-5 (course notes)")
    assert (notes.optimizer, notes.lr, notes.momentum, notes.batch_size, notes.weight_decay) == ("sgd", 0.01, 0.9,
                                                                                                128, 5e-4)
    resnet = training.preset("ResNet (course notes)")
    assert (resnet.lr, resnet.weight_decay, resnet.schedule) == (0.1, 1e-4, "step")
    with pytest.raises(InvalidArgumentError):
        training.preset("nope")
    for bad in (dict(epochs=0), dict(lr=-1.0), dict(optimizer="rmsprop"), dict(dataset="imagenet"),
                dict(label_smoothing=1.0), dict(arch="no_such_model"), dict(arch="design:input 1x4x4; conv 6 k5; fc 10"),
                dict(schedule="linear"), dict(strategy="some")):
        with pytest.raises(ValueError):
            training.TrainConfig(**bad).validate()


def test_choices_come_from_the_literal_types() -> None:
    assert training.OPTIMIZERS == ("sgd", "adam", "adamw")
    assert training.SCHEDULES == ("none", "step", "cosine", "onecycle", "plateau")
    for recipe in training.PRESETS.values():
        assert recipe.get("optimizer", "sgd") in training.OPTIMIZERS
        assert recipe.get("schedule", "none") in training.SCHEDULES


def test_a_stored_config_round_trips_and_unknown_keys_are_ignored() -> None:
    config = training.preset("Fast", epochs=3)
    stored = {**training.config_dict(config), "a_field_from_a_later_version": 1}
    assert training.config_from_dict(stored) == config
