"""The layer analysis against independent oracles (torchvision metadata, torchinfo) and known results."""

from __future__ import annotations

import pytest
import torch
import torchinfo
import torchvision

from core import analysis, models
from core.errors import InputSizeError, UnknownModelError
from tests.conftest import NAMES


# torchvision's weight metadata (offline: the enums carry it); its "GFLOPS" are MACs. Every registered model whose
# pretrained source is a torchvision weights enum is checked against it.
def _torchvision_enum(dotted: str) -> torchvision.models.WeightsEnum:
    enum_name, _, member = dotted.partition(".")
    return getattr(getattr(torchvision.models, enum_name), member)


TORCHVISION_WEIGHTS = {
    name: _torchvision_enum(source.torchvision_weights)
    for name in NAMES
    if (source := models.spec(name).pretrained) is not None and source.torchvision_weights
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_WEIGHTS))
def test_params_and_macs_match_torchvision_metadata(name: str) -> None:
    meta = TORCHVISION_WEIGHTS[name].meta
    summary = analysis.summarize(name)
    published = models.spec(name).reference("params", "torchvision")
    # GoogLeNet's count leaves out the auxiliary heads, which an evaluation forward does not use (summary.unused)
    left_out = sum(n for _, n in summary.unused) if published and "without the auxiliary heads" in published.detail else 0
    assert summary.total_params - left_out == meta["num_params"]
    assert summary.total_macs / 1e9 == pytest.approx(meta["_ops"], abs=0.0006)


@pytest.mark.parametrize("name", NAMES)
def test_totals_agree_with_torchinfo(name: str) -> None:
    spec = models.spec(name)
    model = models.build(name).eval()
    reference = torchinfo.summary(model, input_size=(1, spec.in_channels, spec.input_size, spec.input_size),
                                  device="cpu", verbose=0)
    summary = analysis.analyse(model, (spec.in_channels, spec.input_size, spec.input_size), name)
    assert summary.total_params == reference.total_params
    assert summary.trainable_params == reference.trainable_params
    # torchinfo also counts bias and batch-norm additions as mult-adds; convolutions and dense layers dominate.
    assert summary.total_macs == pytest.approx(reference.total_mult_adds, rel=0.02)
    assert summary.total_macs <= reference.total_mult_adds


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_consistent(name: str) -> None:
    summary = analysis.summarize(name)
    assert [row.index for row in summary.rows] == list(range(1, len(summary.rows) + 1))
    assert sum(row.params for row in summary.rows) + sum(n for _, n in summary.unused) == summary.total_params
    assert summary.output_shape == (models.spec(name).num_classes,)
    assert all(row.stage for row in summary.rows)
    assert summary.rows[-1].stage == "head"
    assert all(row.activation_bytes == 4 * torch.Size(row.output_shape).numel() for row in summary.rows)
    assert all(row.receptive_field[0] >= 1 and row.jump[0] >= 1 for row in summary.rows)
    assert summary.weight_layers <= summary.weight_layer_count <= summary.module_count
    assert len(summary.records()) == len(summary.rows)


@pytest.mark.parametrize(("name", "depth"), [
    ("lenet5", 5), ("alexnet", 8), ("vgg16", 16), ("vgg19", 19), ("resnet18", 18), ("resnet34", 34),
    ("resnet50", 50), ("resnet101", 101), ("resnet152", 152),
    ("xception", 71),  # separable convolutions count as two layers, as in the notes' "71 layers"
])
def test_depth_as_papers_count_it(name: str, depth: int) -> None:
    assert analysis.summarize(name).weight_layers == depth


@pytest.mark.parametrize(("name", "field"), [
    ("lenet5", 32),  # the paper's 32×32 input, exactly
    ("alexnet", 195),
    ("vgg16", 212),
    ("resnet50", 427),
    ("inception_v3", 1311),  # the concatenation of Mixed_7c's branches, not its last branch (1247)
])
def test_receptive_field_of_the_last_feature_map(name: str, field: int) -> None:
    assert analysis.summarize(name).receptive_field == (field, field)


def test_receptive_field_grows_layer_by_layer_in_vgg() -> None:
    rows = {row.name: row for row in analysis.summarize("vgg16").rows}
    assert rows["features.0"].receptive_field == (3, 3)
    assert rows["features.2"].receptive_field == (5, 5)  # two 3×3 see 5×5
    assert rows["features.4"].receptive_field == (6, 6) and rows["features.4"].jump == (2, 2)
    assert rows["features.5"].receptive_field == (10, 10)


def test_branches_merge_to_the_widest_field() -> None:
    rows = analysis.summarize("inception_v3").rows
    first_mixed = [row for row in rows if row.name.startswith("Mixed_5b")]
    widest = max(row.receptive_field for row in first_mixed)
    after = next(row for row in rows if row.name.startswith("Mixed_5c"))
    assert after.receptive_field >= widest


def test_keras_counts_batch_norm_statistics_as_parameters() -> None:
    summary = analysis.summarize("xception")
    assert summary.total_params + summary.buffers == 22_910_480  # Keras' figure


def test_inception_auxiliary_head_is_reported_as_unused_at_inference() -> None:
    summary = analysis.summarize("inception_v3")
    assert dict(summary.unused) == {"AuxLogits": 27_161_264 - 23_834_568}


def test_frozen_parameters_are_counted_as_non_trainable() -> None:
    model = models.build("resnet18")
    for parameter in model.layer1.parameters():
        parameter.requires_grad_(False)
    summary = analysis.analyse(model, (3, 224, 224))
    frozen = sum(p.numel() for p in model.layer1.parameters())
    assert summary.non_trainable_params == frozen
    assert sum(row.non_trainable_params for row in summary.rows) == frozen


def test_analysis_leaves_the_model_untouched() -> None:
    model = models.build("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    analysis.analyse(model.train(), (1, 28, 28))
    assert model.training
    assert all(torch.equal(before[k], v) and v.device.type == "cpu" for k, v in model.state_dict().items())


def test_macs_follow_the_input_size() -> None:
    native = analysis.summarize("resnet50")
    double = analysis.summarize("resnet50", 448)
    assert double.total_macs == pytest.approx(4 * native.total_macs, rel=0.01)
    assert double.total_params == native.total_params


def test_stages() -> None:
    stages = {row.name: row.stage for row in analysis.summarize("resnet50").rows}
    assert stages["conv1"] == "stem" and stages["maxpool"] == "stem"
    assert stages["layer3.5.conv3"] == "layer3"
    assert stages["fc"] == "head"
    by_stage = analysis.summarize("resnet50").params_by("stage")
    assert list(by_stage) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert sum(by_stage.values()) == 25_557_032


def test_params_by_kind() -> None:
    kinds = analysis.summarize("vgg16").params_by("kind")
    assert kinds["dense"] == 102_764_544 + 16_781_312 + 4_097_000
    assert kinds["convolution"] == 138_357_544 - kinds["dense"]


def test_bad_input_gives_typed_errors() -> None:
    with pytest.raises(UnknownModelError):
        analysis.summarize("no_such_model")
    with pytest.raises(InputSizeError, match="75"):
        analysis.summarize("inception_v3", 60)


def test_summaries_are_cached() -> None:
    assert analysis.summarize("resnet152") is analysis.summarize("resnet152")
    assert analysis.summarize("resnet152", 224) is not analysis.summarize("resnet152", 160)


def test_formatting() -> None:
    assert analysis.format_pair((7, 7)) == "7"
    assert analysis.format_pair((1, 7)) == "1×7"
    assert analysis.format_shape((64, 56, 56)) == "64×56×56"
    assert analysis.format_count(416_520) == "417 K"
    assert analysis.format_count(4_089_184_256) == "4.09 G"
    assert analysis.format_count(15_470_264_320) == "15.5 G" and analysis.format_count(25_557_032) == "25.6 M"
    assert analysis.format_count(999_950) == "1.00 M" and analysis.format_count(61_706) == "61.7 K"
    assert analysis.format_count(850) == "850" and analysis.format_count(0) == "0"
    assert analysis.format_count(None) == "—" and analysis.format_count(float("nan")) == "—"
