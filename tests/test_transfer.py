"""Transfer learning: strategies freeze exactly what they should; the feature cache changes nothing but speed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import paths, training, transfer
from core.errors import InvalidArgumentError
from tests.conftest import tiny


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_notes_head() -> None:
    model = transfer.build("resnet50", num_classes=3)
    assert [type(m).__name__ for m in model.head] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert model.head[1].in_features == 2048 and model.head[1].out_features == 256 and model.head[3].p == 0.5
    assert model.num_classes == 3 and model.get_classifier() is model.head[4]
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "xception", "inception_v3"])
def test_feature_extraction_trains_only_the_head(name: str) -> None:
    model = transfer.build(name, num_classes=4)
    trainable = transfer.apply_strategy(model, "feature_extraction")
    assert trainable == count(model.head) == model.num_features * 256 + 256 + 256 * 4 + 4
    assert model.frozen_backbone


def test_full_fine_tuning_trains_everything() -> None:
    model = transfer.build("resnet18", num_classes=4)
    assert transfer.apply_strategy(model, "full") == count(model)
    assert not model.frozen_backbone


def test_partial_fine_tuning_unfreezes_the_last_blocks() -> None:
    model = transfer.build("resnet18", num_classes=4)
    blocks = transfer.feature_blocks(model.backbone, 224)
    assert blocks[:2] == ["conv1", "bn1"] and blocks[-2:] == ["layer4.0", "layer4.1"]
    assert "fc" not in blocks  # the backbone's own classifier is not part of its features
    one = transfer.apply_strategy(model, "partial", unfreeze_last=1)
    assert one == count(model.head) + count(model.backbone.layer4[1])
    two = transfer.apply_strategy(model, "partial", unfreeze_last=2)
    assert two == count(model.head) + count(model.backbone.layer4)
    with pytest.raises(InvalidArgumentError, match="1 to"):
        transfer.apply_strategy(model, "partial", unfreeze_last=len(blocks) + 1)
    with pytest.raises(InvalidArgumentError):
        transfer.apply_strategy(model, "everything")


def test_frozen_batch_norm_stays_in_eval_mode() -> None:
    model = transfer.build("resnet18", num_classes=2)
    transfer.apply_strategy(model, "partial", unfreeze_last=1)
    model.train()
    assert not model.backbone.bn1.training  # frozen: keeps ImageNet statistics
    assert model.backbone.layer4[1].bn1.training  # unfrozen: trains
    assert model.head.training


def test_the_feature_cache_gives_the_same_head_as_the_naive_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # In float32: bfloat16 training steps would round the naive loop's backbone features (batch 8) other than the
    # cache's (computed once, in float32); the cache is the same arithmetic, done once.
    monkeypatch.setenv(paths.CPU_BFLOAT16_ENV, "0")
    data = tiny(channels=3, size=32)
    heads = {}
    for cached in (True, False):
        torch.manual_seed(0)
        model = transfer.build("resnet18", num_classes=3)
        transfer.apply_strategy(model, "feature_extraction")
        config = training.TrainConfig(arch="resnet18", epochs=2, optimizer="adam", lr=1e-3, batch_size=8,
                                      weight_decay=0.0, feature_cache=cached)
        result = training.fit(config, data, model=model)
        assert result.progress.status == "completed"
        assert any("feature cache" in m for m in result.progress.messages) == cached
        heads[cached] = {k: v.clone() for k, v in result.model.head.state_dict().items()}
    for key in heads[True]:
        torch.testing.assert_close(heads[True][key], heads[False][key], rtol=1e-4, atol=1e-5)


def test_the_strategies_are_the_literal_type() -> None:
    import typing

    assert tuple(transfer.STRATEGIES) == typing.get_args(transfer.Strategy) == ("feature_extraction", "partial", "full")
    assert transfer.STRATEGIES == {"feature_extraction": 1e-3, "partial": 1e-5, "full": 1e-6}  # the notes' rates
    assert transfer.is_strategy("partial") and not transfer.is_strategy("everything")


# Honest results: a run on random weights says so ---------------------------------------------------------------


def test_a_run_without_imagenet_weights_is_labelled_with_the_reason_and_the_remedy(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from core import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    random = {"arch": "resnet18", "strategy": "partial", "pretrained": False}
    assert transfer.random_start(random)
    assert not transfer.random_start({**random, "pretrained": True}) and not transfer.random_start({"strategy": ""})
    assert transfer.start_label(random) == transfer.RANDOM_SHORT
    assert transfer.start_label({**random, "pretrained": True}) == "ImageNet weights"
    assert transfer.start_label({"strategy": ""}) == "from scratch"
    note = transfer.random_weights_note("resnet18")
    assert note.startswith("random weights — no ImageNet file for ResNet-18 on this machine")
    assert "resnet18-f37072fd.pth" in note and "$TORCH_HOME/hub/checkpoints" in note and "Classify" in note
    weights.cache_dir().mkdir(parents=True)
    weights.expected_file("resnet18").write_bytes(b"")  # the file arrived after the run: a new run will use it
    assert "start a new run" in transfer.random_weights_note("resnet18")


def test_classify_lists_a_random_weights_run_as_such(run_store) -> None:
    from core import classifiers

    config = training.TrainConfig(arch="resnet18", dataset="shapes", strategy="full", optimizer="adam", lr=1e-6)
    random_id = run_store.create_run(config)
    scratch_id = run_store.create_run(training.TrainConfig(arch="lenet5"))
    for run_id in (random_id, scratch_id):
        run_store.checkpoint_dir(run_id).mkdir(parents=True)
        run_store.checkpoint_path(run_id).write_bytes(b"")
    choices = {c.key: c for c in classifiers.choices(run_store)}
    assert transfer.RANDOM_SHORT in choices[f"run:{random_id}"].label
    assert choices[f"run:{random_id}"].note == transfer.random_weights_note("resnet18")
    assert transfer.RANDOM_SHORT not in choices[f"run:{scratch_id}"].label and not choices[f"run:{scratch_id}"].note
