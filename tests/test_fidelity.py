"""The fidelity panel: every figure of the course notes is checked, and every difference explained."""

from __future__ import annotations

import pytest

from core import fidelity, models
from core.models import notes
from tests.conftest import NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_difference_has_a_reason(name: str) -> None:
    for row in fidelity.compare(name):
        assert row.live and row.notes and row.where
        if not row.agrees:
            assert len(row.explanation) > 20, row
        assert "{" not in row.explanation, row  # every placeholder was filled


def test_every_model_with_figures_in_the_notes_has_a_panel() -> None:
    """Each model the notes cover carries its figures in its registry entry, and gets one row per figure;
    a model the notes do not cover has none, and no panel."""
    covered = set(notes._FIGURES)
    assert covered <= set(NAMES)
    for name in NAMES:
        assert (name in covered) == bool(fidelity.notes_figures(name))
        assert list(models.spec(name).notes_figures) == fidelity.notes_figures(name)
        assert len(fidelity.compare(name)) == len(fidelity.notes_figures(name))


def test_vgg16_layer_table_of_the_notes_is_right() -> None:
    rows = [r for r in fidelity.compare("vgg16") if "(features." in r.label or "(classifier." in r.label]
    assert len(rows) == 21 + 16
    assert all(r.agrees for r in rows)


def test_lenet_shapes_in_the_notes_are_inconsistent() -> None:
    rows = {r.label: r for r in fidelity.compare("lenet5")}
    assert not rows["Conv1 (features.0) output"].agrees
    assert rows["Conv1 (features.0) output"].live == "28×28×6"
    assert rows["Conv3 (features.6) output"].agrees and rows["Conv3 (features.6) output"].live == "1×1×120"
    assert "5×5" in rows["Conv1 (features.0) output"].explanation


def test_alexnet_table_counts_weights_without_biases() -> None:
    rows = {r.label: r for r in fidelity.compare("alexnet")}
    conv1 = rows["Conv1 (features.0) parameters"]
    assert not conv1.agrees and conv1.live == "34,944" and "96 biases" in conv1.explanation
    assert rows["Conv5 (features.12) parameters"].agrees  # conv5's line includes its biases
    assert rows["Dense3 (classifier.6) parameters"].agrees


def test_xception_figures() -> None:
    rows = {(r.label, r.notes): r for r in fidelity.compare("xception")}
    assert rows[("Depth", "71 layers")].agrees
    assert rows[("Total parameters", "22.9M")].agrees
    assert "54,528" in rows[("Total parameters", "22.9M")].explanation
    assert not rows[("Skip connections", "Yes (early)")].agrees
    assert not rows[("Base model parameters", "22.9 million")].agrees


def test_published_accuracies_are_compared_with_references() -> None:
    rows = {(r.label, r.notes): r for r in fidelity.compare("vgg19")}
    top1 = rows[("ImageNet top-1", "71.0%")]
    assert not top1.agrees and "72.376" in top1.published
    assert {(r.label, r.notes): r for r in fidelity.compare("xception")}[("ImageNet top-1", "79.0%")].agrees


def test_unknown_model() -> None:
    with pytest.raises(ValueError):
        fidelity.notes_figures("nope")


def test_reference_formatting() -> None:
    assert fidelity.format_reference(models.Reference("macs", 4.089e9, "torchvision")) == "4.089 G MACs"
    assert fidelity.format_reference(models.Reference("top1", 76.13, "torchvision")) == "76.13 %"
    assert fidelity.format_reference(models.Reference("params", 22_910_480, "Keras")) == "22,910,480"


def test_a_figure_that_agrees_after_its_sources_rounding_agrees() -> None:
    assert fidelity.agrees_after_rounding(25_557_032, 25.5e6, 0.1e6)  # truncated
    assert fidelity.agrees_after_rounding(25_557_032, 25.6e6, 0.1e6)  # rounded
    assert not fidelity.agrees_after_rounding(25_557_032, 25.4e6, 0.1e6)
    assert not fidelity.agrees_after_rounding(15.47e9, 15.3e9, 0.1e9)
    parameters = {r.label: r for r in fidelity.compare("resnet50")}["Parameters"]
    assert parameters.agrees and parameters.notes == "25.5M" and "truncate" in parameters.explanation


def test_the_notes_source_is_said_once() -> None:
    assert "CNN Architecture Documentation" in fidelity.NOTES_SOURCE
