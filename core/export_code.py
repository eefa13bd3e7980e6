"""A run "as code": one runnable Python file with the model's source, its checkpoint's loader and the run's
training config.

The file needs only ``torch`` and ``safetensors``. It holds the source of ``core/models/base.py`` and of the
architecture's module (the app's own code, its ``core`` imports replaced by what they bring), the training
config as a literal with the optimiser and schedule it asks for, and the model's outputs on the export sample
batch: ``python FILE.py --check`` rebuilds the model, loads the checkpoint beside it and compares.
"""

from __future__ import annotations

import inspect
import pprint
import re
from types import ModuleType
from typing import Any

import torch
from torch import nn

from core import models
from core.export import RELATIVE, SAMPLE_BATCH, SAMPLE_SEED, TOLERANCE, ExportError, sample_for
from core.models import base

_CORE_IMPORT = re.compile(r"^from core\.[\w.]+ import (?P<names>.+)$", re.MULTILINE)
_FUTURE = "from __future__ import annotations\n"


def _inlined(module: ModuleType) -> str:
    """A module's source with ``from __future__`` removed and each ``from core… import`` line dropped; names
    of ``core.errors`` become plain ValueError subclasses (the app's errors are ValueErrors too)."""
    source = inspect.getsource(module).replace(_FUTURE, "")

    def replace(match: re.Match[str]) -> str:
        if not match.group(0).startswith("from core.errors"):
            return ""  # defined earlier in the file
        return "\n".join(f"class {name.strip()}(ValueError):\n    pass\n" for name in match.group("names").split(","))

    inlined = _CORE_IMPORT.sub(replace, source)
    if re.search(r"^\s*(from|import) core\b", inlined, re.MULTILINE):
        raise ExportError(f"{module.__name__} imports more of the app than the 'as code' file can hold.")
    return inlined.strip() + "\n"


def _builder(arch: str) -> tuple[ModuleType, str]:
    """The module that defines an architecture and its builder's name there."""
    builder = models.spec(arch).builder
    module = inspect.getmodule(builder)
    if module is None or getattr(module, builder.__name__, None) is not builder:
        raise ExportError(f"The builder of {arch} is not a plain function of its module.")
    return module, builder.__name__


def _literal(value: Any) -> str:
    """A Python literal of plain data, wrapped at 100 columns."""
    return pprint.pformat(value, width=100, sort_dicts=False)


def expected_outputs(model: nn.Module, sidecar: dict[str, Any]) -> list[list[float]]:
    """The model's logits on the export sample batch, as exact Python floats."""
    with torch.no_grad():
        return model.eval().cpu()(sample_for(sidecar)).double().tolist()


def as_code(model: nn.Module, sidecar: dict[str, Any], weights_file: str) -> str:
    """The runnable Python file of a checkpoint: its model's source, a loader for ``weights_file`` (found beside
    the file) and the run's training config; models trained by transfer are not offered (their backbone's
    ImageNet start is outside the file)."""
    from core.training import schedule  # lazily: the training package imports much of the core

    if sidecar.get("strategy"):
        raise ExportError("'As code' is offered for models trained from scratch; this run fine-tuned a backbone.")
    module, builder = _builder(str(sidecar["arch"]))
    facts = {"ARCH": sidecar["arch"], "RUN_ID": sidecar.get("run_id"), "WEIGHTS_FILE": weights_file,
             "CLASSES": list(sidecar["classes"]), "IN_CHANNELS": sidecar["in_channels"],
             "INPUT_SIZE": sidecar["input_size"], "MEAN": sidecar.get("mean"), "STD": sidecar.get("std"),
             "CONFIG": sidecar.get("config") or {}, "SAMPLE_BATCH": SAMPLE_BATCH, "SAMPLE_SEED": SAMPLE_SEED,
             "TOLERANCE": TOLERANCE, "RELATIVE": RELATIVE, "EXPECTED": expected_outputs(model, sidecar)}
    constants = "\n\n".join(f"{name} = {_literal(value)}" for name, value in facts.items())
    parts = [_HEADER.format(arch=sidecar["arch"], run=sidecar.get("run_id"), weights=weights_file), _FUTURE,
             "import argparse\nimport sys\nimport warnings\nfrom pathlib import Path\nfrom types import "
             "SimpleNamespace\nfrom typing import Any\n\nimport torch\nfrom torch import nn\n",
             "# The run " + "-" * 100, constants,
             "# core/models/base.py " + "-" * 90, _inlined(base),
             f"# {module.__name__.replace('.', '/')}.py " + "-" * 90, _inlined(module),
             "# The run's optimiser and schedule (core/training/schedule.py) " + "-" * 50,
             inspect.getsource(schedule.make_optimizer), inspect.getsource(schedule.LearningRate),
             _MAIN.replace("BUILDER", builder)]
    return "\n\n".join(part.strip("\n") + "\n" for part in parts)


_HEADER = '''"""{arch}, run {run}, as code: the model's source, its checkpoint and the run's training config.

Written by the CNN Architecture Explorer. Needs torch and safetensors. Put {weights} (the checkpoint's
weights) beside this file, then:

    python this_file.py            # rebuild the model, load the checkpoint, print what it is
    python this_file.py --check    # ... and compare its outputs on the export sample batch (exit 1 if they differ)
"""'''

_MAIN = '''
# Rebuild, load, check -------------------------------------------------------------------------------------------


def build_model() -> nn.Module:
    """The architecture with fresh weights, as the run built it."""
    return BUILDER(num_classes=len(CLASSES), in_channels=IN_CHANNELS)


def load_model(weights: Path | None = None) -> nn.Module:
    """The model with the checkpoint's weights, in eval mode."""
    from safetensors.torch import load_file

    model = build_model()
    model.load_state_dict(load_file(str(weights or Path(__file__).with_name(WEIGHTS_FILE))))
    return model.eval()


def training_setup(model: nn.Module, steps_per_epoch: int) -> tuple[Any, Any, nn.Module]:
    """The run's optimiser, learning-rate schedule and loss, from CONFIG."""
    config = SimpleNamespace(**CONFIG)
    optimizer = make_optimizer(model, config)
    rate = LearningRate(optimizer, config, total_steps=config.epochs * steps_per_epoch)
    return optimizer, rate, nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def sample_batch() -> torch.Tensor:
    """The batch the export was checked on: seeded standard normal values."""
    generator = torch.Generator().manual_seed(SAMPLE_SEED)
    return torch.randn(SAMPLE_BATCH, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE, generator=generator)


def check(model: nn.Module) -> tuple[float, bool]:
    """The largest difference between the model's outputs and the run's on the sample batch, and whether every
    is within TOLERANCE + RELATIVE × the run's largest output."""
    with torch.no_grad():
        outputs = model(sample_batch()).double()
    expected = torch.tensor(EXPECTED, dtype=torch.float64)
    gaps = (outputs - expected).abs()
    difference = float(gaps.max())
    return difference, difference <= TOLERANCE + RELATIVE * float(expected.abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help=f"the checkpoint (default: {WEIGHTS_FILE} beside this file)")
    parser.add_argument("--check", action="store_true", help="compare the outputs with the run's")
    arguments = parser.parse_args()
    model = load_model(arguments.weights)
    print(f"{ARCH} (run {RUN_ID}): {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(CLASSES)} classes, {IN_CHANNELS}×{INPUT_SIZE}×{INPUT_SIZE} input")
    print("training config:", ", ".join(f"{key}={value}" for key, value in CONFIG.items()))
    if arguments.check:
        difference, ok = check(model)
        print(f"max |difference| on the sample batch: {difference:.3g} "
              f"(tolerance {TOLERANCE:g} + {RELATIVE:g}×max|output|): "
              + ("same outputs" if ok else "DIFFERENT"))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    warnings.simplefilter("default")
    sys.exit(main())
'''
