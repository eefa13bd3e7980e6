"""A trained model as ONNX and as a ``torch.export`` program, each verified by reloading it.

Every export is checked the moment it is made: the file is loaded back (ONNX with onnxruntime, ``.pt2`` with
``torch.export.load``), run on a fixed sample batch, and its outputs compared with the model's; the largest absolute
difference is returned beside the file, and an export that differs by more than the tolerance is refused. The
"as code" export, one runnable Python file with the model's source, is in ``core.export_code``; diagrams (Graphviz
DOT) become SVG and PNG through Graphviz's ``dot`` program.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from core.errors import ExplorerError

Format = Literal["onnx", "pt2"]
TOLERANCE = 1e-4  # float32 through another runtime: kernels sum in other orders (measured ≤ 1e-6 on ResNet-18)
RELATIVE = 1e-4  # and as much per unit of the largest output: an untrained Inception-v3's logits reach 1e11
SAMPLE_BATCH = 2  # two images: the exported batch dimension is dynamic, and a size of 1 would be specialised
SAMPLE_SEED = 0
MAX_PARAMETERS = 200_000_000  # VGG-19 (143 M) fits; anything larger would hold gigabytes in the server's memory


class ExportError(ExplorerError):
    """A model cannot be exported, or its export does not give the model's outputs back."""


@dataclass(frozen=True)
class Exported:
    """One verified export: the file's bytes, its name's suffix, and how closely it reproduced the model."""

    format: Format
    data: bytes
    max_difference: float  # the largest |export - model| over the sample batch's outputs
    tolerance: float = TOLERANCE  # max |export - model| ≤ tolerance + RELATIVE × max |model|

    @property
    def suffix(self) -> str:
        """The file name's extension, with its dot."""
        return f".{self.format}"


def describe(tolerance: float = TOLERANCE) -> str:
    """The tolerance in words: an absolute part and a part relative to the largest output."""
    return f"{tolerance:g} + {RELATIVE:g}×max|output|"


def sample_batch(in_channels: int, input_size: int, batch: int = SAMPLE_BATCH, seed: int = SAMPLE_SEED) -> torch.Tensor:
    """The fixed batch an export is checked on: standard normal values from a seeded generator (the same in the
    "as code" file, which rebuilds it from the seed)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, in_channels, input_size, input_size, generator=generator)


def sample_for(sidecar: dict[str, Any]) -> torch.Tensor:
    """The sample batch of a checkpoint's model, at the input size and channels it was trained on."""
    try:
        return sample_batch(int(sidecar["in_channels"]), int(sidecar["input_size"]))
    except (KeyError, TypeError, ValueError):
        raise ExportError("The checkpoint's sidecar does not say the model's input size and channels.") from None


def _first_line(error: Exception, limit: int = 200) -> str:
    """The start of an exporter's message (its later lines print whole graphs)."""
    line = (str(error).splitlines() or [type(error).__name__])[0]
    return line if len(line) <= limit else line[:limit].rstrip() + "…"


def _outputs(model: nn.Module, sample: torch.Tensor) -> torch.Tensor:
    """The model's logits on ``sample``, in eval mode, on the CPU."""
    with torch.no_grad():
        return model.eval()(sample).detach().float()


def _checked(model: nn.Module) -> nn.Module:
    """The model on the CPU in eval mode, if it is small enough to export here."""
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise ExportError(f"The model has {count:,} parameters; exports are offered up to {MAX_PARAMETERS:,}.")
    return model.cpu().eval()


def _compare(what: str, reloaded: torch.Tensor, expected: torch.Tensor, tolerance: float) -> float:
    """The largest absolute difference of two outputs; an ExportError if it is over the tolerance."""
    if reloaded.shape != expected.shape:
        raise ExportError(f"The reloaded {what} gives outputs of shape {tuple(reloaded.shape)}, the model "
                          f"{tuple(expected.shape)}.")
    gaps = (reloaded.float() - expected).abs()
    difference = float(gaps.max())
    if not math.isfinite(difference) or difference > tolerance + RELATIVE * float(expected.abs().max()):
        raise ExportError(f"The reloaded {what} differs from the model by {difference:.3g} on the sample batch "
                          f"(tolerance {describe(tolerance)}); it is not offered.")
    return difference


def to_onnx(model: nn.Module, sample: torch.Tensor, tolerance: float = TOLERANCE) -> Exported:
    """The model as ONNX (opset 17, a dynamic batch dimension), reloaded in onnxruntime and checked on ``sample``."""
    model = _checked(model)
    expected = _outputs(model, sample)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes, not faults
            torch.onnx.export(model, (sample,), buffer,  # type: ignore[arg-type]  # a file object works too
                              dynamo=False, opset_version=17, input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as error:  # the exporter raises many kinds (unsupported operator, missing onnx package)
        raise ExportError(f"The model cannot be exported as ONNX: {_first_line(error)}") from None
    data = buffer.getvalue()
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError:
        raise ExportError("onnxruntime is not installed, so the ONNX file cannot be checked; install the app's "
                          "requirements.") from None
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        reloaded = torch.from_numpy(session.run(None, {"images": sample.numpy()})[0])
    except Exception as error:  # onnxruntime's own exception types
        raise ExportError(f"onnxruntime cannot run the exported file: {_first_line(error)}") from None
    return Exported("onnx", data, _compare("ONNX file", reloaded, expected, tolerance), tolerance)


def to_pt2(model: nn.Module, sample: torch.Tensor, tolerance: float = TOLERANCE) -> Exported:
    """The model as a ``torch.export`` program (``.pt2``, a dynamic batch dimension), loaded back with
    ``torch.export.load`` and checked on ``sample``."""
    model = _checked(model)
    expected = _outputs(model, sample)
    batch = torch.export.Dim("batch", min=1, max=4096)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (sample,), dynamic_shapes=({0: batch},))
            torch.export.save(program, buffer)
    except Exception as error:  # torch.export raises many kinds (data-dependent control flow, guards)
        raise ExportError(f"The model cannot be exported with torch.export: {_first_line(error)}") from None
    data = buffer.getvalue()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            reloaded = torch.export.load(io.BytesIO(data)).module()(sample)
    except Exception as error:
        raise ExportError(f"The exported program cannot be loaded back: {_first_line(error)}") from None
    return Exported("pt2", data, _compare(".pt2 program", reloaded, expected, tolerance), tolerance)


def export(model: nn.Module, sidecar: dict[str, Any], format: Format, tolerance: float = TOLERANCE) -> Exported:
    """The checkpoint's model in ``format`` ("onnx" or "pt2"), verified on its sample batch."""
    exporters = {"onnx": to_onnx, "pt2": to_pt2}
    if format not in exporters:
        raise ExportError(f"Unknown export format {format!r}; choose onnx or pt2.")
    return exporters[format](model, sample_for(sidecar), tolerance)


DOT_TIMEOUT = 60.0  # seconds; Inception-v3 with every block open draws in well under one


def render_dot(source: str, format: Literal["svg", "png"]) -> bytes:
    """A Graphviz DOT diagram drawn as SVG or PNG (144 dpi on white) by the ``dot`` program; an ExportError if
    Graphviz is not installed or cannot draw it."""
    program = shutil.which("dot")
    if program is None:
        raise ExportError("Graphviz's dot program is not installed here (apt-get install graphviz), so the diagram "
                          "cannot be drawn as SVG or PNG; its DOT source can still be downloaded.")
    options = ["-Tsvg"] if format == "svg" else ["-Tpng", "-Gdpi=144", "-Gbgcolor=white"]
    try:
        drawn = subprocess.run([program, *options], input=source.encode(), capture_output=True, timeout=DOT_TIMEOUT,
                               check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ExportError(f"Graphviz could not draw the diagram: {_first_line(error)}") from None
    if drawn.returncode != 0 or not drawn.stdout:
        message = drawn.stderr.decode(errors="replace").strip() or f"dot exited with {drawn.returncode}"
        raise ExportError(f"Graphviz could not draw the diagram: {message.splitlines()[0][:200]}")
    return drawn.stdout
