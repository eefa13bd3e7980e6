"""CUDA graphs for the training step and the evaluation (core.training.graphs).

Where they apply is decided everywhere (CPU included); what they compute is checked where CUDA is present
(the GPU machine: ``bash benchmarks/device_check.sh``) and skipped elsewhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import training
from core.training import graphs
from tests.conftest import make_image_folder, tiny

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
GPU = torch.device("cuda")


@pytest.mark.parametrize(("device", "fixed", "distributed", "expected"), [
    ("cuda", True, False, None),
    ("cpu", True, False, "CUDA device"),
    ("cuda", False, False, "DataLoader"),
    ("cuda", True, True, "several processes"),
])
def test_a_step_is_captured_only_where_it_can_be(device, fixed, distributed, expected) -> None:
    reason = graphs.why_not_captured(torch.device(device), fixed, distributed)
    assert (reason is None) if expected is None else (expected in reason)


def test_on_the_cpu_the_trainer_runs_eagerly_and_says_nothing_of_graphs() -> None:
    trainer = training.Trainer(training.TrainConfig(epochs=1, optimizer="adam", lr=3e-3, batch_size=16, device="cpu"),
                               tiny())
    assert trainer.captured_step is None and trainer.eval_forward is None
    assert not any("graph" in message.lower() or "eagerly" in message for message in trainer.messages)


def _twins(steps: int) -> list[tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]:
    """Two equal float32 MLPs on the GPU, each with Adam (fused, as the trainer makes it on CUDA) and a
    one-cycle schedule, which changes the rate and beta1 at every step."""
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(GPU)
    second = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(GPU)
    second.load_state_dict(first.state_dict())
    twins = []
    for model in (first, second):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
        twins.append((model, optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)))
    return twins


@cuda
def test_a_captured_step_computes_what_the_eager_step_computes() -> None:
    steps = 12
    (eager, eager_opt, eager_schedule), (graphed, graph_opt, graph_schedule) = _twins(steps)

    def forward_backward_of(model: nn.Module):
        def forward_backward(x: torch.Tensor, y: torch.Tensor) -> None:
            nn.functional.cross_entropy(model(x), y).backward()
        return forward_backward

    captured = graphs.CapturedStep(forward_backward_of(graphed), graph_opt, GPU)
    reference = graphs.CapturedStep(forward_backward_of(eager), eager_opt, GPU)
    generator = torch.Generator(device=GPU).manual_seed(1)
    for _ in range(steps - 1):
        x = torch.randn(32, 8, device=GPU, generator=generator)
        y = torch.randint(0, 3, (32,), device=GPU, generator=generator)
        reference.eager(x, y)
        captured(x, y)
        eager_schedule.step()
        graph_schedule.step()
    torch.cuda.synchronize()
    assert captured.captured and captured.replays == steps - 1 - graphs.WARMUP_STEPS
    for ours, theirs in zip(graphed.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


@cuda
def test_a_run_trains_through_graphs_to_the_eager_runs_figures() -> None:
    config = training.preset("Fast", arch="lenet5", epochs=5, batch_size=16, device="cuda")
    graphed = training.Trainer(config, tiny())
    result = graphed.fit()
    eager = training.fit(training.preset("Fast", arch="lenet5", epochs=5, batch_size=16, device="cuda",
                                         cuda_graphs=False), tiny())
    assert result.progress.status == "completed", result.progress.messages
    assert graphed.captured_step is not None and graphed.captured_step.replays == graphed.step - graphs.WARMUP_STEPS
    assert graphed.eval_forward is not None and graphed.eval_forward.replays > 0  # validation and test were replayed
    assert result.test is not None and eager.test is not None
    assert result.test.accuracy > 0.9 and abs(result.test.accuracy - eager.test.accuracy) <= 0.1
    # The figures a graph gives are those of the eager model with the same weights.
    forward = graphs.CapturedForward(graphed.step_model, GPU)
    replayed = training.evaluate(graphed.step_model, graphed.val_batches, 1024, 3, forward)
    direct = training.evaluate(graphed.step_model, graphed.val_batches, 1024, 3)
    assert forward.replays > 0
    assert replayed.predictions == direct.predictions and replayed.loss == pytest.approx(direct.loss, rel=1e-3)


@cuda
def test_a_stopped_graph_run_resumes_and_the_switch_turns_graphs_off(tmp_path) -> None:
    config = training.TrainConfig(arch="lenet5", epochs=2, optimizer="adam", lr=3e-3, batch_size=4, device="cuda")
    first = training.Trainer(config, tiny(), checkpoint_dir=tmp_path)

    class StopAtFirstReport:  # after LOG_EVERY steps: some of them replayed from the graph
        def on_batch_end(self, progress: training.Progress) -> None:
            first.stop.set()

    first.callbacks.append(StopAtFirstReport())
    assert first.fit().progress.status == "stopped" and first.captured_step is not None
    assert first.captured_step.replays > 0
    resumed = training.Trainer(config, tiny(), checkpoint_dir=tmp_path, resume_from=tmp_path)
    assert resumed.fit().progress.status == "completed" and resumed.captured_step is not None
    off = training.Trainer(training.TrainConfig(arch="lenet5", epochs=1, optimizer="adam", device="cuda",
                                                cuda_graphs=False), tiny())
    assert off.captured_step is None and off.eval_forward is None


@cuda
def test_sgd_is_captured_and_an_image_folder_runs_eagerly_saying_why(tmp_path) -> None:
    sgd = training.Trainer(training.TrainConfig(arch="lenet5", epochs=3, batch_size=8, device="cuda"), tiny())
    assert sgd.fit().progress.status == "completed" and sgd.captured_step is not None
    assert sgd.captured_step.replays == sgd.step - graphs.WARMUP_STEPS
    folder = make_image_folder(tmp_path / "shapes")
    from core import data

    config = training.TrainConfig(arch="lenet5", dataset=f"folder:{folder}", epochs=1, optimizer="adam",
                                  batch_size=4, device="cuda")
    loader = training.Trainer(config, data.image_folder(folder, size=28))
    assert loader.captured_step is None and any("DataLoader" in message for message in loader.messages)
