"""The model zoo: ``names()``, ``build(name, num_classes=..., in_channels=...)`` and each model's facts."""

from core.models.base import ExplorerModel, Model, ModelOutput
from core.models.registry import (
    REGISTRY,
    ModelSpec,
    Reference,
    build,
    check_input_size,
    input_size_range,
    names,
    spec,
)

__all__ = [
    "REGISTRY",
    "ExplorerModel",
    "Model",
    "ModelOutput",
    "ModelSpec",
    "Reference",
    "build",
    "check_input_size",
    "input_size_range",
    "names",
    "spec",
]
