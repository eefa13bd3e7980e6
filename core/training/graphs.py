"""The training step captured in a CUDA graph: one launch for forward, loss, backward and optimiser step.

A small network on a GPU is bound by kernel launches, not arithmetic: an eager LeNet-5 step is about a
hundred launches (3.4 ms on an H200 whatever the batch), the same step replayed from a CUDA graph about
0.7 ms. ``CapturedStep`` follows PyTorch's whole-network capture recipe:

1. the first ``WARMUP_STEPS`` steps run eagerly on a side stream (cuDNN picks its kernels, autograd and the
   optimiser create their state: nothing may allocate or synchronise while a graph is captured);
2. the next step is captured on static input tensors, then every step copies its batch into them and
   replays the graph.

The warm-up steps are real training steps on real batches, so a captured run does the same arithmetic as
an eager one. What changes between replays lives in tensors the graph reads: the batch, and the
optimiser's learning rate and betas (the schedule writes floats; ``push`` writes those that changed to
the device before each replay). Only an optimiser whose update can read those from the device is captured:
Adam and AdamW (``capturable=True``, not fused: the fused kernel takes its betas as host numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

WARMUP_STEPS = 3  # eager steps before the capture (PyTorch's recipe warms up on a side stream first)
CAPTURABLE_OPTIMIZERS = ("adam", "adamw")

Step = Callable[[torch.Tensor, torch.Tensor], Any]


def why_not_captured(device: torch.device, optimizer: str, fixed_shapes: bool, distributed: bool) -> str | None:
    """Why a run cannot capture its training step in a CUDA graph, or None when it can."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if not fixed_shapes:
        return "image folders are read through a DataLoader (CUDA graphs need the in-memory fast path)"
    if optimizer not in CAPTURABLE_OPTIMIZERS:
        return f"the {optimizer.upper()} update here reads its rate from the host (CUDA graphs need Adam or AdamW)"
    if distributed:
        return "a run over several processes all-reduces its gradients outside the graph"
    return None


def on_side_stream(device: torch.device, function: Callable[..., Any], *args: torch.Tensor) -> None:
    """Run ``function(*args)`` on a side stream, ordered after and before the current stream's work: how
    PyTorch's recipe warms up what it is about to capture."""
    main = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(main)
    with torch.cuda.stream(side):
        function(*args)
    main.wait_stream(side)


class CapturedStep:
    """Runs ``step(x, y)`` eagerly for the first steps, then as a replayed CUDA graph.

    ``step`` does everything one training step does on the device (forward, loss, backward, optimiser step,
    the epoch's running sums) and must not synchronise with the host. The optimiser must be capturable
    (``make_capturable``).
    """

    def __init__(self, step: Step, optimizer: torch.optim.Optimizer, device: torch.device,
                 warmup: int = WARMUP_STEPS, say: Callable[[str], None] = print) -> None:
        self.step = step
        self.say = say  # where a failed capture is reported (the run then goes on eagerly)
        self.failed = False
        self.optimizer = optimizer
        self.device = device
        self.warmup_left = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_y: torch.Tensor | None = None
        self.hyper: torch.Tensor | None = None  # groups × (lr, beta1, beta2), read by the captured update
        self.pushed: dict[tuple[int, int], float] = {}  # the values last written into ``hyper``
        self.replays = 0

    @property
    def captured(self) -> bool:
        """Whether the step is a graph now (after the warm-up)."""
        return self.graph is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One training step on the batch ``(x, y)``."""
        if self.failed:
            self.step(x, y)
            return
        if self.graph is None and self.warmup_left > 0:
            self.warmup_left -= 1
            on_side_stream(self.device, self.step, x, y)
            return
        if self.graph is None:
            try:
                self._capture(x, y)
            except RuntimeError as error:  # an operation that cannot be captured: the step stays eager
                self.failed = True
                self.say(f"The training step could not be captured in a CUDA graph and runs eagerly ({error}).")
                self.step(x, y)
                return
        assert self.graph is not None and self.static_x is not None and self.static_y is not None
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.push()
        self.graph.replay()
        self.replays += 1

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Record one step on static inputs; the optimiser reads its hyperparameters from ``self.hyper``."""
        self.static_x, self.static_y = x.clone(), y.clone()
        groups = self.optimizer.param_groups
        self.hyper = torch.zeros(len(groups), 3, device=self.device)
        self.push()
        host_values = [(group["lr"], group["betas"]) for group in groups]
        for row, group in zip(self.hyper, groups, strict=True):  # 0-d views: the update reads them on the device
            group["lr"], group["betas"] = row[0], (row[1], row[2])
        graph = torch.cuda.CUDAGraph()
        try:
            self.optimizer.zero_grad(set_to_none=True)  # the gradients are allocated in the graph's pool
            with torch.cuda.graph(graph):
                self.step(self.static_x, self.static_y)
        finally:  # the schedule goes on writing host numbers; ``push`` carries them over
            for group, (lr, betas) in zip(groups, host_values, strict=True):
                group["lr"], group["betas"] = lr, betas
        self.graph = graph

    def push(self) -> None:
        """Write the optimiser's current learning rates and betas (host numbers) into the tensors the graph
        reads: a fill per changed value (an ordinary copy from the host would wait for the device)."""
        if self.hyper is None:
            return
        for row, group in enumerate(self.optimizer.param_groups):
            for column, value in enumerate((group["lr"], *group["betas"])):
                value = float(value)
                if self.pushed.get((row, column)) != value:
                    self.hyper[row, column].fill_(value)
                    self.pushed[row, column] = value


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device, capturable: bool = True) -> None:
    """Switch an Adam/AdamW optimiser (fresh or restored from a checkpoint) to its capturable update:
    per-parameter step counters on the device, the multi-tensor kernels instead of the fused one.

    ``capturable=False`` undoes the flag where it does not apply (a CPU run resuming a GPU run's checkpoint)."""
    for group in optimizer.param_groups:
        if "capturable" not in group:  # SGD: nothing to switch
            continue
        group["capturable"] = capturable
        if capturable:
            group.update(foreach=True, fused=None)
    if capturable:
        for state in optimizer.state.values():
            if "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(device)


class CapturedForward:
    """``model(x)`` for evaluation, replayed from CUDA graphs: one per input shape (a split's last, smaller
    batch gets its own). The model must stay in eval mode while it is called; the output is the graph's
    static tensor, valid until the next call."""

    def __init__(self, model: torch.nn.Module, device: torch.device, say: Callable[[str], None] = print) -> None:
        self.model = model
        self.device = device
        self.say = say
        self.failed = False  # a capture failed: evaluate eagerly from then on
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}

    def __call__(self, x: torch.Tensor) -> Any:
        """The model's output for ``x`` (captured on the first batch of this shape, after one eager pass)."""
        shape = tuple(x.shape)
        if self.failed:
            return self.model(x)
        if shape not in self.graphs:
            try:
                self.graphs[shape] = self._capture(x)
            except RuntimeError as error:
                self.failed = True
                self.say(f"The evaluation could not be captured in a CUDA graph and runs eagerly ({error}).")
                return self.model(x)
        graph, static_x, static_out = self.graphs[shape]
        static_x.copy_(x)
        graph.replay()
        return static_out

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        on_side_stream(self.device, self.model, x)  # warm-up: cuDNN's choice of kernels happens outside the capture
        static_x, graph = x.clone(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_x)
        return graph, static_x, static_out
