"""The model zoo: ``names()``, ``build(name, num_classes=..., in_channels=...)``, each model's facts, and
``register(spec)`` to add one (see ``core.models.base`` for the interface a model implements)."""

from core.models import registry
from core.models.base import DeclaredBlock, ExplorerModel, Model, ModelOutput, Structure
from core.models.notes import NotesFigure
from core.models.registry import (
    REGISTRY,
    ModelSpec,
    PretrainedSource,
    Reference,
    build,
    check_input_size,
    input_size_range,
    names,
    register,
    spec,
    unregister,
)

__all__ = [
    "REGISTRY",
    "DeclaredBlock",
    "ExplorerModel",
    "Model",
    "ModelOutput",
    "ModelSpec",
    "NotesFigure",
    "PretrainedSource",
    "Reference",
    "Structure",
    "build",
    "check_input_size",
    "input_size_range",
    "names",
    "register",
    "registry",
    "spec",
    "unregister",
]
