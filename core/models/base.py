"""The one interface every model of the zoo implements.

Pages, the trainer, Grad-CAM and the layer analysis talk to models only through
this surface (modelled on timm's), so none of them ever branches on the
architecture's name.

Adding a model (a from-scratch file in ``core/models/``):

1. Subclass :class:`ExplorerModel`; implement ``forward_features`` and ``forward_head``; set
   ``classifier_name``, ``stages`` and ``num_features`` (``auxiliary_classifier_names`` and
   ``aux_loss_weight`` if it has auxiliary heads).
2. Declare its structure: a block whose output adds a shortcut to its body subclasses
   :class:`DeclaredBlock` with ``merge = "add"``; a block whose parallel branches are concatenated,
   ``merge = "concat"``; a block that could have a skip connection but has none (MobileNetV2's strided
   blocks), ``merge = "none"``. Nothing is guessed from attribute names. A model whose modules cannot
   subclass (an adapter around another library's network) overrides :meth:`ExplorerModel.structure`.
   ``pass_through`` lists the module types that keep their input's shape and are drawn as the edge they
   sit on (activations, dropout).
3. Register a :class:`core.models.registry.ModelSpec` with ``registry.register`` (its builder, paper
   facts, and optionally its pretrained source and the course notes' figures), and add its row to the
   equivalence test. Every registry-parametrized test then runs on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn

from core.errors import InvalidArgumentError

if TYPE_CHECKING:
    from typing_extensions import Self


class ModelOutput(NamedTuple):
    """What a model with auxiliary classifiers returns in training mode."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


def check_positive(value: int, what: str) -> int:
    """Return ``value`` if it is an integer ≥ 1, else raise InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{what} must be a whole number ≥ 1, got {value!r}.")
    return value


def check_model_args(num_classes: int, in_channels: int) -> None:
    """Raise InvalidArgumentError unless both are integers ≥ 1."""
    check_positive(num_classes, "num_classes")
    check_positive(in_channels, "in_channels")


def dense_classifier(in_features: int, num_classes: int, hidden: int = 4096, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet's and VGG's head: two hidden dense layers with ReLU and dropout, then the classifier."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def init_conv_batchnorm(model: nn.Module) -> None:
    """He initialisation for convolutions (fan-out, ReLU); batch norm starts as the identity."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


Merge = Literal["add", "concat", "none"]
PASS_THROUGH: tuple[type[nn.Module], ...] = (nn.ReLU, nn.Dropout, nn.Flatten, nn.Identity)


class DeclaredBlock(nn.Module):
    """A block that declares how its data paths merge.

    ``merge`` is ``"add"`` (a residual block: body + shortcut), ``"concat"`` (parallel branches
    concatenated) or ``"none"`` (a block of a residual family that has no shortcut). A subclass sets it
    as a class attribute, or per instance where it depends on the block's shape.
    """

    merge: Merge = "none"


def block_modules(model: nn.Module) -> dict[nn.Module, str]:
    """Modules at block level, with their names: expand containers and the model itself, stop at anything else."""
    found: dict[nn.Module, str] = {}

    def visit(module: nn.Module, prefix: str) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}{child_name}"
            if isinstance(child, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
                visit(child, name + ".")
            else:
                found[child] = name

    visit(model, "")
    return found


@dataclass(frozen=True)
class Structure:
    """What a model declares about its shape beyond its layers (module names are dotted, as ``named_modules``).

    * ``blocks``: the units a diagram draws closed and a fine-tuner unfreezes, in registration order;
    * ``residual``: blocks that add a shortcut to their body's output;
    * ``branching``: blocks whose parallel branches are concatenated;
    * ``skip_choice``: blocks that declare whether they have a shortcut (``residual`` and those without);
    * ``pass_through``: module types that keep their input's shape, drawn as the edge they sit on;
    * ``cam_layers``: the layers Grad-CAM and the feature maps may read (the convolutions).
    """

    blocks: tuple[str, ...]
    residual: tuple[str, ...] = ()
    branching: tuple[str, ...] = ()
    skip_choice: tuple[str, ...] = ()
    pass_through: tuple[type[nn.Module], ...] = PASS_THROUGH
    cam_layers: tuple[str, ...] = ()

    def merge_of(self, block: str) -> Merge:
        """How ``block``'s paths merge as declared: ``"add"``, ``"concat"`` or ``"none"``."""
        return "add" if block in self.residual else "concat" if block in self.branching else "none"


def declared_structure(model: nn.Module, pass_through: tuple[type[nn.Module], ...] = PASS_THROUGH) -> Structure:
    """The structure ``model``'s :class:`DeclaredBlock` modules declare (the default of ``ExplorerModel``)."""
    declared = [(name, module.merge) for name, module in model.named_modules() if isinstance(module, DeclaredBlock)]
    return Structure(
        blocks=tuple(block_modules(model).values()),
        residual=tuple(name for name, merge in declared if merge == "add"),
        branching=tuple(name for name, merge in declared if merge == "concat"),
        skip_choice=tuple(name for name, merge in declared if merge in ("add", "none")),
        pass_through=pass_through,
        cam_layers=tuple(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)),
    )


class ExplorerModel(nn.Module):
    """Base class: ``forward = forward_head(forward_features(x))``.

    Subclasses set:
      * ``classifier_name``: dotted name of the final ``nn.Linear``;
      * ``auxiliary_classifier_names``: dotted names of auxiliary ``nn.Linear`` heads;
      * ``stages``: ``(label, last module name)`` pairs that split the network into
        the stages a fine-tuner can unfreeze and a chart can group by;
      * ``num_features``: channels of the map ``forward_features`` returns;
      * ``aux_loss_weight``: weight of the auxiliary losses in training;
      * ``pass_through``: module types that keep the shape (see :class:`Structure`).

    Its blocks declare their structure by subclassing :class:`DeclaredBlock`; ``structure()`` reads it.
    """

    pass_through: ClassVar[tuple[type[nn.Module], ...]] = PASS_THROUGH
    classifier_name: str = "fc"
    auxiliary_classifier_names: tuple[str, ...] = ()
    stages: tuple[tuple[str, str], ...] = ()
    num_features: int = 0
    aux_loss_weight: float = 0.0

    def structure(self) -> Structure:
        """The declared blocks, residual and branching blocks, pass-through types and Grad-CAM layers."""
        return declared_structure(self, self.pass_through)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last feature map, before global pooling (N × C × H × W)."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map features to logits, or to the vector fed to the classifier if ``pre_logits``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        """Return the logits (N × num_classes); a model with auxiliary heads returns a ModelOutput in training."""
        return self.forward_head(self.forward_features(x))

    def _linear(self, name: str) -> nn.Linear:
        """The ``nn.Linear`` at dotted ``name``."""
        layer = self.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"{type(self).__name__}.{name} is a {type(layer).__name__}, not the nn.Linear classifier")
        return layer

    def get_classifier(self) -> nn.Linear:
        """Return the final linear layer."""
        return self._linear(self.classifier_name)

    @property
    def num_classes(self) -> int:
        """Number of classes the classifier predicts."""
        return self.get_classifier().out_features

    @property
    def in_channels(self) -> int:
        """Channels of the input images (those of the first convolution)."""
        return next(m for m in self.modules() if isinstance(m, nn.Conv2d)).in_channels

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final (and any auxiliary) classifier with fresh ones of ``num_classes`` outputs."""
        check_positive(num_classes, "num_classes")
        for name in (self.classifier_name, *self.auxiliary_classifier_names):
            old = self._linear(name)
            new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
            self.set_submodule(name, new)

    def split_output(self, output: torch.Tensor | ModelOutput) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Split what ``forward`` returned into main logits and a list of auxiliary logits."""
        if isinstance(output, ModelOutput):
            return output.logits, [output.aux_logits]
        return output, []


@runtime_checkable
class Model(Protocol):
    """The model interface (timm's surface) that the trainer, the views and the tools rely on.

    Every ``ExplorerModel`` (the zoo and ``TransferModel``) satisfies it; code that takes a ``Model``
    never branches on an architecture's name.
    """

    classifier_name: str
    auxiliary_classifier_names: tuple[str, ...]
    stages: tuple[tuple[str, str], ...]
    num_features: int
    aux_loss_weight: float
    training: bool

    @property
    def num_classes(self) -> int:
        """Number of classes the classifier predicts."""
        ...

    @property
    def in_channels(self) -> int:
        """Channels of the input images."""
        ...

    def __call__(self, x: torch.Tensor) -> Any:
        """``forward``: logits, or a ModelOutput in training mode for models with auxiliary heads."""
        ...

    def structure(self) -> Structure:
        """Residual and branching blocks, pass-through types and Grad-CAM layers, as the model declares them."""
        ...

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before global pooling (N × C × H × W)."""
        ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Features to logits, or to the classifier's input if ``pre_logits``."""
        ...

    def get_classifier(self) -> nn.Linear:
        """The final linear layer."""
        ...

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh final (and auxiliary) classifiers with ``num_classes`` outputs."""
        ...

    def split_output(self, output: torch.Tensor | ModelOutput) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main logits and the list of auxiliary logits."""
        ...

    # The parts of nn.Module that training and inspection use.
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The weights."""
        ...

    def named_modules(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, nn.Module]]:
        """Every submodule with its dotted name."""
        ...

    def get_submodule(self, target: str) -> nn.Module:
        """The submodule at a dotted name."""
        ...

    def train(self, mode: bool = True) -> Self:
        """Training mode (``eval()`` is ``train(False)``)."""
        ...

    def eval(self) -> Self:
        """Inference mode."""
        ...

    def to(self, *args: Any, **kwargs: Any) -> Self:
        """Move to a device or dtype."""
        ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The weights and buffers by name."""
        ...

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """Load weights and buffers by name."""
        ...


if TYPE_CHECKING:
    def _every_explorer_model_is_a_model(model: ExplorerModel) -> Model:
        """Fails type checking the day ExplorerModel stops satisfying the Model protocol."""
        return model
