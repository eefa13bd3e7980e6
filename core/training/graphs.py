"""The training step and the evaluation replayed from CUDA graphs: one launch instead of a hundred.

A small network on a GPU is bound by kernel launches, not arithmetic: an eager LeNet-5 step is about a
hundred launches (3.4 ms on an H200 whatever the batch), the same step replayed from a CUDA graph about
0.7 ms. ``CapturedStep`` follows PyTorch's whole-network capture recipe:

1. the first ``WARMUP_STEPS`` steps run eagerly on a side stream (cuDNN picks its kernels, autograd creates
   its state: nothing may allocate or synchronise while a graph is captured);
2. the next step's forward and backward pass are captured on static input tensors; from then on every step
   copies its batch into them, replays the graph and runs the optimiser's update.

The warm-up steps are real training steps on real batches, and the update is the eager one, so a captured
run does the same arithmetic as an eager run. The update stays outside the graph because the schedules
change it every step in ways a graph cannot follow: one-cycle moves Adam's beta1 with the rate, and the
update takes beta1 as a host number (PyTorch's capturable Adam turns a beta held in a tensor into a host
number too, which a capture refuses: seen on an H200 with torch 2.11). On CUDA that update is one fused
kernel for Adam and AdamW, a few multi-tensor kernels for SGD, so every optimiser and schedule is captured.
``CapturedForward`` does the same for evaluation, one graph per batch shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

WARMUP_STEPS = 3  # eager steps before the capture (PyTorch's recipe warms up on a side stream first)

Step = Callable[[torch.Tensor, torch.Tensor], Any]


def why_not_captured(device: torch.device, fixed_shapes: bool, distributed: bool) -> str | None:
    """Why a run cannot capture its training step in a CUDA graph, or None when it can."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if not fixed_shapes:
        return "image folders are read through a DataLoader (CUDA graphs need the in-memory fast path)"
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
    """A training step whose forward and backward pass are replayed from a CUDA graph after the warm-up.

    ``forward_backward(x, y)`` does the work on the device that the graph records: forward, loss, backward
    (the gradients land in the graph's buffers), gradient clipping, the epoch's running sums; it must not
    synchronise with the host. The optimiser's update runs after each replay, outside the graph.
    """

    def __init__(self, forward_backward: Step, optimizer: torch.optim.Optimizer, device: torch.device,
                 warmup: int = WARMUP_STEPS, say: Callable[[str], None] = print) -> None:
        self.forward_backward = forward_backward
        self.optimizer = optimizer
        self.device = device
        self.warmup_left = warmup
        self.say = say  # where a failed capture is reported (the run then goes on eagerly)
        self.failed = False
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_y: torch.Tensor | None = None
        self.replays = 0

    @property
    def captured(self) -> bool:
        """Whether the step is a graph now (after the warm-up)."""
        return self.graph is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One training step on the batch ``(x, y)``."""
        if self.failed:
            self.eager(x, y)
        elif self.graph is None and self.warmup_left > 0:
            self.warmup_left -= 1
            on_side_stream(self.device, self.eager, x, y)
        elif self.graph is None and not self._capture(x, y):
            self.eager(x, y)
        else:
            assert self.graph is not None and self.static_x is not None and self.static_y is not None
            self.static_x.copy_(x)
            self.static_y.copy_(y)
            self.graph.replay()  # the gradients are now in the graph's buffers, which ``p.grad`` are
            self.replays += 1
            self.optimizer.step()

    def release(self) -> None:
        """Free the graph and its memory (the run has ended); the step runs eagerly if called again."""
        self.graph = self.static_x = self.static_y = None
        self.failed = True

    def eager(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The same step without the graph."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_backward(x, y)
        self.optimizer.step()

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """Record ``forward_backward`` on static inputs; False (and said why) when it cannot be captured."""
        self.static_x, self.static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        # No gradients before the capture: backward allocates them in the graph's memory and every replay
        # writes them anew (with gradients present it would record adding to them). Nothing sets them to
        # None afterwards, so the optimiser keeps reading the graph's buffers.
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with torch.cuda.graph(graph):
                self.forward_backward(self.static_x, self.static_y)
        except RuntimeError as error:  # an operation that cannot be captured: the run goes on eagerly
            self.failed = True
            self.say(f"The training step could not be captured in a CUDA graph and runs eagerly ({error}).")
            return False
        self.graph = graph
        return True


class CapturedForward:
    """``model(x)`` for evaluation, replayed from CUDA graphs: one per input shape (a split's last, smaller
    batch gets its own). The model must stay in eval mode while it is called; the output is the graph's
    static tensor, valid until the next call."""

    def __init__(self, model: torch.nn.Module, device: torch.device, say: Callable[[str], None] = print) -> None:
        self.model = model
        self.device = device
        self.say = say
        self.failed = False  # a capture failed: evaluate eagerly from then on
        self.replays = 0
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
        self.replays += 1
        return static_out

    def release(self) -> None:
        """Free the graphs and their memory (the run has ended); later calls run the model eagerly."""
        self.graphs.clear()
        self.failed = True

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        on_side_stream(self.device, self.model, x)  # warm-up: cuDNN's choice of kernels happens outside the capture
        static_x, graph = x.clone(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_x)
        return graph, static_x, static_out
