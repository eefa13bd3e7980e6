"""The course notes' figures beside the live model's: the fidelity panel.

Each figure the notes print is stored as printed, with the tolerance its
rounding implies, and compared with the number computed from the live model
(or, for accuracies, which no forward pass can compute, with the published
references of the registry). Where they differ, the reason says why; reasons
may quote live numbers through ``{placeholders}`` so no number is typed twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core import models, structure
from core.analysis import ModelSummary, format_count, is_within, summarize
from core.models.notes import NotesFigure

NOTES = "course notes"
NOTES_SOURCE = (
    "The course notes are “CNN Architecture Documentation”, the Markdown document this project was built from: "
    "one chapter per architecture (LeNet-5, AlexNet, VGG, Inception-v3, Xception, ResNet) and a comparison. "
    "Each figure below is quoted as printed there, with the section it comes from."
)


@dataclass(frozen=True)
class FidelityRow:
    """One line of the fidelity panel."""

    label: str
    notes: str
    live: str
    published: str
    agrees: bool
    explanation: str
    where: str


def notes_figures(name: str) -> list[NotesFigure]:
    """The figures the course notes give for model ``name``, as its registry entry carries them (possibly none)."""
    return list(models.spec(name).notes_figures)


def format_reference(reference: models.Reference) -> str:
    """A published figure in the unit its metric uses."""
    if reference.metric == "macs":  # K/M/G, at the precision the source printed (torchvision: 4.089 G)
        scale, suffix = (1e9, "G") if reference.value >= 1e9 else (1e6, "M")
        return f"{reference.value / scale:g} {suffix} MACs"
    if reference.metric in ("top1", "top5", "mnist_accuracy"):
        return f"{reference.value:g} %"
    return f"{reference.value:,.0f}"


def _hwc(shape: tuple[int, ...]) -> str:
    """C×H×W (PyTorch) → H×W×C (the notes' convention); vectors stay as they are."""
    if len(shape) == 3:
        channels, height, width = shape
        return f"{height}×{width}×{channels}"
    return "×".join(map(str, shape))


def _computed(name: str, summary: ModelSummary, metric: str) -> tuple[Any, str]:
    """(value, display) of ``metric`` computed from the live model."""
    model_spec = models.spec(name)
    kind, _, argument = metric.partition(":")
    if kind == "params":
        return summary.total_params, f"{summary.total_params:,}"
    if kind == "backbone_params":
        classifier = next(r for r in reversed(summary.rows) if r.type == "Linear")
        value = summary.total_params - classifier.params
        return value, f"{value:,}"
    if kind == "macs":
        return summary.total_macs, f"{format_count(summary.total_macs, digits=4)} MACs"  # as precise as torchvision
    if kind == "depth":
        return summary.weight_layers, f"{summary.weight_layers} weight layers"
    if kind in ("conv_layers", "dense_layers"):
        wanted = "Conv2d" if kind == "conv_layers" else "Linear"
        value = len({r.name for r in summary.rows if r.type == wanted})
        return value, str(value)
    if kind == "weight_mb":
        megabytes = summary.weight_bytes / 1e6
        return megabytes, f"{megabytes:.{1 if megabytes >= 1 else 2}f} MB (float32)"
    if kind == "input":
        text = f"{model_spec.input_size}×{model_spec.input_size}×{model_spec.in_channels}"
        return text, text
    if kind == "layer_params":
        value = sum(r.params for r in summary.rows if r.name == argument)
        return value, f"{value:,}"
    if kind in ("layer_output", "stage_output"):
        rows = [r for r in summary.rows if (r.name == argument if kind == "layer_output" else is_within(r.name, argument))]
        text = _hwc(rows[-1].output_shape)
        return text, text
    if kind == "kernels":
        found = structure.traits(name)
        text = ", ".join(found.kernels)
        return text, text + (" (depthwise separable)" if found.depthwise else "")
    if kind == "regularisation":
        found = structure.traits(name)
        parts = (["Dropout"] if found.dropout else []) + [
            {"LocalResponseNorm": "LRN", "BatchNorm2d": "Batch Norm"}[n] for n in found.normalisation]
        text = ", ".join(parts) or "None"
        return text, text
    if kind == "skip":
        found = structure.traits(name)
        if found.residual_blocks == 0:
            return "none", "none"
        text = "every block" if found.residual_blocks == found.blocks_with_skip_choice else "some blocks"
        return text, f"{text} ({found.residual_blocks} residual blocks)"
    if kind == "blocks":
        counts = structure.residual_blocks_per_stage(name)
        text = "+".join(str(count) for count in counts if count)
        return text, text
    if kind == "authors":
        return model_spec.authors, model_spec.authors
    raise KeyError(metric)


def agrees_after_rounding(value: float, printed: float, resolution: float) -> bool:
    """True if ``value`` printed at ``resolution`` gives ``printed``, rounded to nearest or truncated
    (25,557,032 at 0.1 M is 25.6 M rounded, 25.5 M truncated: both are that figure, written by its source)."""
    if resolution <= 0:
        return abs(value - printed) <= 1e-9 * max(1.0, abs(printed))
    steps, target = value / resolution, printed / resolution
    tolerance = 1e-6
    return abs(round(steps) - target) <= tolerance or abs(math.floor(steps + tolerance) - target) <= tolerance


def _agrees(figure: NotesFigure, value: Any) -> bool:
    kind = figure.metric.split(":")[0]
    if kind == "kernels":
        return all(token.strip() in value for token in str(figure.value).split(","))
    if isinstance(figure.value, str):
        return str(value).strip().lower() == figure.value.strip().lower()
    return agrees_after_rounding(float(value), float(figure.value), figure.resolution)


def _placeholders(name: str, summary: ModelSummary, figure: NotesFigure) -> dict[str, Any]:
    """Live numbers a reason may quote."""
    conv_macs = sum(r.macs for r in summary.rows if r.type == "Conv2d")
    classifier = next(r for r in reversed(summary.rows) if r.type == "Linear")
    values: dict[str, Any] = {
        "params": summary.total_params,
        "params_m_1": f"{summary.total_params / 1e6:.1f}",
        "backbone_m": f"{(summary.total_params - classifier.params) / 1e6:.1f}",
        "buffers": summary.buffers,
        "macs_g": f"{summary.total_macs / 1e9:.2f}",
        "flops_g": f"{2 * summary.total_macs / 1e9:.2f}",
        "macs_m": f"{summary.total_macs / 1e6:.2f}",
        "flops_m": f"{2 * summary.total_macs / 1e6:.2f}",
        "conv_macs_g": f"{conv_macs / 1e9:.2f}",
        "dense_macs_g": f"{(summary.total_macs - conv_macs) / 1e9:.2f}",
        "weight_mb": f"{summary.weight_bytes / 1e6:.{1 if summary.weight_bytes >= 1e6 else 2}f}",
    }
    for reference in models.spec(name).references:
        values[f"{reference.source}_{reference.metric}"] = f"{reference.value:g}"
    if figure.metric.startswith("layer_params:"):
        module = figure.metric.split(":", 1)[1]
        row = next(r for r in summary.rows if r.name == module)
        values["layer_params"] = row.params
        values["biases"] = row.output_shape[0]
    return values


def compare(name: str) -> list[FidelityRow]:
    """Every figure the notes give for ``name``, beside the live (or published) figure, with the reason."""
    summary = summarize(name)
    model_spec = models.spec(name)
    rows = []
    for figure in notes_figures(name):
        metric = figure.metric.split(":")[0]
        published_refs = [r for r in model_spec.references if r.metric == metric]
        published = "; ".join(f"{r.source}: {format_reference(r)}" for r in published_refs)
        if metric in ("top1", "top5", "mnist_accuracy"):
            live = "not computable from the architecture"
            agrees = any(agrees_after_rounding(r.value, figure.value, figure.resolution) for r in published_refs)
        else:
            value, live = _computed(name, summary, figure.metric)
            agrees = _agrees(figure, value)
        text = figure.note if agrees else " ".join(filter(None, [figure.reason, figure.note]))
        explanation = text.format(**_placeholders(name, summary, figure)) if text else ""
        rows.append(FidelityRow(figure.label, figure.printed, live, published, agrees, explanation, figure.where))
    return rows

