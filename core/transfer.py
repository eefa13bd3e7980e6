"""Transfer learning: a pretrained backbone, a new head, and the three strategies of the course notes.

* feature extraction: the backbone is frozen, only the head trains (Adam 1e-3);
* partial fine-tuning: the last N blocks of the backbone train too (Adam 1e-5);
* full fine-tuning: everything trains (Adam 1e-6).

The head is the notes' one: global average pooling → dense 256 → ReLU → dropout 0.5 → dense N.
Batch-norm layers whose parameters are frozen stay in eval mode, so their statistics do not drift.
When the backbone is frozen and augmentation is off, the trainer computes its features once and
trains the head on them (the feature cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeGuard, get_args

import torch
from torch import nn

from core import models, weights
from core.analysis import to_meta
from core.errors import InvalidArgumentError
from core.models.base import ExplorerModel, check_positive

Strategy = Literal["feature_extraction", "partial", "full"]
# Each strategy (in the Literal's order) with the notes' Adam learning rate: 1e-3, 1e-5, 1e-6.
STRATEGIES: dict[Strategy, float] = dict(zip(get_args(Strategy), (1e-3, 1e-5, 1e-6), strict=True))
NORMS = (nn.BatchNorm2d, nn.BatchNorm1d)


class TransferModel(ExplorerModel):
    """``backbone.forward_features`` → global average pool → dense 256 → ReLU → dropout → dense N."""

    classifier_name = "head.4"

    def __init__(self, backbone: ExplorerModel, num_classes: int, hidden: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive(num_classes, "num_classes")
        self.backbone = backbone
        self.num_features = backbone.num_features
        self.stages = tuple((label, f"backbone.{last}") for label, last in backbone.stages) + (("head", "head"),)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.head = nn.Sequential(
            nn.Flatten(),  # N x num_features
            nn.Linear(backbone.num_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map."""
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool (a no-op on cached 1×1 features), then the new head."""
        x = self.pool(x)
        return self.head[:-1](x) if pre_logits else self.head(x)

    @property
    def frozen_backbone(self) -> bool:
        """True when no backbone parameter trains (then its features can be cached)."""
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> TransferModel:
        """Train mode, except frozen batch-norm layers, which keep their ImageNet statistics."""
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, NORMS) and not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self


def feature_blocks(backbone: ExplorerModel, input_size: int) -> list[str]:
    """Names of the backbone's blocks that ``forward_features`` runs and that hold weights, in order.

    Read from a shape-only (meta) forward pass: blocks are those the backbone declares
    (``structure().blocks``: the children of the model and of its containers), as in the block diagram.
    """
    meta = to_meta(backbone).eval()
    candidates = {meta.get_submodule(block): block for block in meta.structure().blocks}
    order: list[str] = []
    handles = [m.register_forward_hook(lambda m, i, o: order.append(candidates[m])) for m in candidates]
    try:
        with torch.no_grad():
            meta.forward_features(torch.empty(1, backbone.in_channels, input_size, input_size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    with_weights = {name for module, name in candidates.items() if any(True for _ in module.parameters())}
    return [name for name in dict.fromkeys(order) if name in with_weights]


def is_strategy(text: str) -> TypeGuard[Strategy]:
    """True when ``text`` names one of the three strategies."""
    return text in STRATEGIES


def apply_strategy(model: TransferModel, strategy: Strategy, unfreeze_last: int = 0, input_size: int = 224) -> int:
    """Freeze and unfreeze for ``strategy``; return the number of trainable parameters.

    ``unfreeze_last`` counts backbone blocks from the end (partial fine-tuning only); an unknown
    strategy (a string from a form or a stored config) raises InvalidArgumentError.
    """
    if not is_strategy(strategy):
        raise InvalidArgumentError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    for parameter in model.backbone.parameters():
        parameter.requires_grad_(strategy == "full")
    if strategy == "partial":
        blocks = feature_blocks(model.backbone, input_size)
        if not 1 <= unfreeze_last <= len(blocks):
            raise InvalidArgumentError(f"Partial fine-tuning unfreezes 1 to {len(blocks)} blocks, not {unfreeze_last}.")
        for name in blocks[-unfreeze_last:]:
            for parameter in model.backbone.get_submodule(name).parameters():
                parameter.requires_grad_(True)
    for parameter in model.head.parameters():
        parameter.requires_grad_(True)
    return trainable_parameters(model)


def trainable_parameters(model: nn.Module) -> int:
    """Parameters that will train."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build(name: str, num_classes: int, backbone: ExplorerModel | None = None) -> TransferModel:
    """A TransferModel on ``backbone`` (default: a fresh, randomly initialised ``name``)."""
    return TransferModel(backbone if backbone is not None else models.build(name), num_classes)


RANDOM_SHORT = "random weights (no ImageNet file)"


def random_start(config: Mapping[str, Any]) -> bool:
    """True when a transfer run's backbone started from random weights: it asked for no ImageNet weights (the
    page asks for them only when their file is on this machine; a run that asks and cannot load them fails)."""
    return bool(config.get("strategy")) and not config.get("pretrained")


def start_label(config: Mapping[str, Any]) -> str:
    """How a run's model started, in a few words: "ImageNet weights", :data:`RANDOM_SHORT`, or "from scratch"."""
    if not config.get("strategy"):
        return "from scratch"
    return RANDOM_SHORT if random_start(config) else "ImageNet weights"


def random_weights_note(arch: str) -> str:
    """What a result of a transfer run on random weights must say: that, why, and how to get the ImageNet file."""
    name = models.spec(arch).display_name
    info = weights.pretrained(arch)
    if info is None:
        return f"random weights — {name} has no ImageNet weights in this app"
    if weights.is_cached(arch):
        return (f"random weights — the ImageNet file for {name} was not on this machine when this run started; "
                "it is now: start a new run to use it")
    return (f"random weights — no ImageNet file for {name} on this machine; put {info.file_name} in "
            f"{weights.cache_dir_label()} or use the weights panel on Classify")
