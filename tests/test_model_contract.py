"""The model contract as data: a model declares its structure, its registry entry carries every other fact, and
a newly registered model goes through every registry-parametrized analysis with no special case.

The throwaway model below has a residual block and a two-branch block whose names say nothing (``res``,
``split``: no ``residual`` attribute, no ``branch…`` children), no course-notes figures and no weights.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from core import explain, fidelity, models, structure, transfer, weights
from core.analysis import summarize
from core.errors import InvalidArgumentError, UnknownModelError
from core.models.base import DeclaredBlock, ExplorerModel, check_model_args
from tests.footprint import MARGIN
from tests.footprint import footprint as _footprint
from tests.footprint import linearised as _linearised

NAME = "tiny_contract_net"
ROOT = Path(__file__).resolve().parent.parent


class _Residual(DeclaredBlock):
    """Two 3×3 convolutions and a skip connection."""

    merge = "add"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


class _TwoWay(DeclaredBlock):
    """A 1×1 and a 3×3 convolution side by side, concatenated."""

    merge = "concat"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.narrow = nn.Conv2d(channels, channels // 2, 1)
        self.wide = nn.Conv2d(channels, channels // 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.narrow(x), self.wide(x)], 1)


class _Tiny(ExplorerModel):
    """Stem (3×3 /2), a residual block, a two-branch block, global average pool, one dense layer."""

    classifier_name = "fc"
    stages = (("stem", "stem"), ("body", "split"))
    num_features = 8

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        self.stem = nn.Conv2d(in_channels, 8, 3, stride=2)
        self.act = nn.ReLU()
        self.res = _Residual(8)
        self.split = _TwoWay(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.split(self.res(self.act(self.stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        return x if pre_logits else self.fc(x)


SPEC = models.ModelSpec(name=NAME, display_name="Tiny contract net", family="Test", builder=_Tiny, year=2026,
                        authors="the tests", paper_title="", paper_url="", task="a test", dataset="digits",
                        input_size=28, in_channels=1, num_classes=10, mean=(0.5,), std=(0.5,))


@pytest.fixture
def registered() -> Iterator[str]:
    models.register(SPEC)
    try:
        yield NAME
    finally:
        models.unregister(NAME)
    assert NAME not in models.names()


def test_the_registry_lists_it_and_builds_it(registered: str) -> None:
    assert models.names()[-1] == registered and models.spec(registered) is SPEC
    model = models.build(registered).eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert models.input_size_range(registered)[0] <= 28


def test_layer_table_and_parameters(registered: str) -> None:
    summary = summarize(registered)
    assert summary.total_params == sum(p.numel() for p in models.build(registered).parameters())
    assert {"stem", "res.conv1", "res.conv2", "split.narrow", "split.wide", "fc"} <= {r.name for r in summary.rows}


def test_traits_come_from_the_declared_structure(registered: str) -> None:
    found = structure.traits(registered)
    assert found.residual_block_names == ("res",) and found.residual_blocks == 1
    assert found.blocks_with_skip_choice == 1
    assert found.branching_blocks == 1
    assert set(found.kernels) == {"3×3", "1×1"}


def test_topology_draws_the_skip_and_the_branches(registered: str) -> None:
    graph = structure.topology(registered)
    kinds = {node.id: node.kind for node in graph.nodes}
    assert kinds["res/add"] == "add"
    assert kinds["split/concat"] == "concat"
    assert sorted(n for n, k in kinds.items() if k == "branch") == ["split/branch1", "split/branch2"]
    assert any(edge.skip for edge in graph.edges)
    assert "act" not in kinds  # a declared pass-through module is drawn as the edge it sits on


def test_receptive_field_equals_the_gradient_footprint(registered: str) -> None:
    assert summarize(registered).receptive_field == (15, 15)  # 3, then + 2·(2+2) in res, + 2·2 in split
    tall, narrow = 15 + 2 * MARGIN, 32
    top, bottom, _, _ = _footprint(_linearised(registered), 1, tall, narrow)
    assert bottom - top + 1 == 15


def test_no_notes_figures_no_fidelity_rows(registered: str) -> None:
    assert fidelity.notes_figures(registered) == []
    assert fidelity.compare(registered) == []


def test_no_weights_declared_none_offered(registered: str) -> None:
    assert weights.pretrained(registered) is None
    assert registered not in weights.names_with_weights()


def test_grad_cam_layers_are_the_declared_ones(registered: str) -> None:
    model = models.build(registered).eval()
    layers = explain.conv_layers(model)
    assert layers == list(model.structure().cam_layers) == ["stem", "res.conv1", "res.conv2", "split.narrow",
                                                            "split.wide"]
    x = torch.rand(1, 1, 28, 28)
    assert explain.default_cam_layer(model, x) == "split.wide"
    assert explain.grad_cam(model, x, "res.conv2").shape[-2:] == (28, 28)


def test_transfer_unfreezes_the_declared_blocks(registered: str) -> None:
    backbone = models.build(registered)
    assert transfer.feature_blocks(backbone, 28) == ["stem", "res", "split"]
    model = transfer.build(registered, num_classes=3, backbone=backbone)
    trainable = transfer.apply_strategy(model, "partial", unfreeze_last=1, input_size=28)
    head = sum(p.numel() for p in model.head.parameters())
    assert trainable == head + sum(p.numel() for p in backbone.split.parameters())


def test_registering_twice_or_removing_an_unknown_model_is_refused(registered: str) -> None:
    with pytest.raises(InvalidArgumentError):
        models.register(SPEC)
    with pytest.raises(UnknownModelError):
        models.unregister("no_such_model")


def test_unregistering_forgets_the_cached_facts() -> None:
    models.register(SPEC)
    try:
        assert summarize(NAME).total_params > 0 and structure.traits(NAME).residual_blocks == 1
    finally:
        models.unregister(NAME)
    with pytest.raises(UnknownModelError):
        summarize(NAME)
    with pytest.raises(UnknownModelError):
        structure.traits(NAME)


def _name_branches(path: Path, names: set[str], tables: bool = True) -> list[str]:
    """Places in ``path`` that decide something from a model's name: a comparison with a model name or one of
    its prefixes (``name == "xception"``, ``name.startswith("resnet")``), or (if ``tables``) a dict keyed by
    model names."""
    prefixes = {n.rstrip("0123456789_v") for n in names} | names
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        strings: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            strings = [node.left, *node.comparators]
            strings += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set)) for e in c.elts]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "startswith", "removeprefix"):
            strings = [arg for arg in node.args if isinstance(arg, ast.Constant) and arg.value in prefixes]
        elif isinstance(node, ast.Dict) and tables:
            strings = [key for key in node.keys if key is not None]
        found += [f"{path.relative_to(ROOT)}:{s.lineno}" for s in strings
                  if isinstance(s, ast.Constant) and (s.value in names or isinstance(node, ast.Call))]
    return found


def test_nothing_outside_the_registry_branches_on_a_model_name() -> None:
    """The registry (its entries in zoo.py) may; a model's own file and the notes' data may key their tables by
    variant (VGG's and ResNet's configs as data, the figures each registry entry carries), but compare with no
    name."""
    names = set(models.names())
    models_folder = ROOT / "core" / "models"
    files = [p for folder in ("core", "explorer", "pages") for p in sorted((ROOT / folder).rglob("*.py"))]
    registry_room = {models_folder / "registry.py", models_folder / "zoo.py"}
    found = [place for path in files if path not in registry_room
             for place in _name_branches(path, names, tables=path.parent != models_folder)]
    assert found == []
