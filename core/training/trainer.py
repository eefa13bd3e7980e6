"""The trainer: model, optimiser, schedule and batches of one run, and the loop that trains them.

The loop reads top to bottom: an epoch is an order of examples cut into batches; each batch is forward,
loss, backward, step; each epoch ends with a validation pass under ``torch.no_grad()``. Subscribers get a
frozen ``Progress`` at named hook points (see ``core.training.progress``). What is not the loop lives
beside it: running out of device memory is a restart policy (``fit``), saving checkpoints is
``core.checkpoints``.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from core import checkpoints, devices, models
from core.data import FolderData, InMemoryData
from core.models.base import ExplorerModel
from core.training import ranks
from core.training.batches import (
    BatchSource,
    DeviceBatches,
    HeadView,
    Preprocess,
    Shard,
    feature_cache,
    make_batches,
    training_order,
    training_steps,
)
from core.training.config import TrainConfig, config_dict
from core.training.evaluation import Evaluation, evaluate, training_loss
from core.training.graphs import CapturedForward, CapturedStep, why_not_captured
from core.training.progress import LOG_EVERY, EpochFigures, Progress, Status, StopTraining, TestFigures, Which
from core.training.schedule import LearningRate, make_optimizer

Data = InMemoryData | FolderData


@dataclass(frozen=True)
class FitResult:
    """The trained model (its final weights), the final progress and the test evaluation shown for the run."""

    model: ExplorerModel
    progress: Progress
    test: Evaluation | None


def build_model(config: TrainConfig, num_classes: int, in_channels: int) -> ExplorerModel:
    """The model a config trains: a zoo model from scratch, or a transfer model with its strategy applied."""
    if not config.strategy:
        return models.build(config.arch, num_classes=num_classes, in_channels=in_channels)
    from core import transfer, weights

    backbone = weights.load_pretrained(config.arch)[0] if config.pretrained else models.build(config.arch)
    model = transfer.TransferModel(cast(ExplorerModel, backbone), num_classes)
    transfer.apply_strategy(model, config.strategy, config.unfreeze_last)
    return model


def training_input_size(arch: str, data_size: int) -> int:
    """The size images are fed at: the data's own, or the model's minimum if the images are smaller."""
    minimum, maximum = models.input_size_range(arch, training=True)
    if maximum is not None and data_size > maximum:
        return maximum
    return max(data_size, minimum)


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


class Trainer:
    """One run: everything ``fit`` needs, its counters, and the loop."""

    def __init__(self, config: TrainConfig, data: Data, callbacks: list[Any] | tuple = (),
                 stop: threading.Event | None = None, model: ExplorerModel | None = None,
                 shard: Shard = (0, 1), wrap: Any = None, checkpoint_dir: Path | None = None,
                 run_id: str | None = None, resume_from: Path | None = None,
                 fence: Callable[[], None] | None = None) -> None:
        self.config = config.validate()
        self.data = data
        self.callbacks = list(callbacks)
        # Subscribers called every batch, without a snapshot (so they must be cheap): core.activity.ThreadShare.
        # Looked up on the class: a subscriber that answers any hook by __getattr__ takes snapshots only.
        self.on_step = [callback.on_step for callback in self.callbacks if hasattr(type(callback), "on_step")]
        self.stop = stop or threading.Event()
        self.shard = shard
        self.messages: list[str] = []
        resume = checkpoints.read_resume(Path(resume_from), config) if resume_from is not None else None
        # The device, and the random state every run of the same config starts from.
        self.device = devices.pick_device(config.device)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
        # The model, in the memory format its convolutions are fastest in.
        self.model: ExplorerModel = model if model is not None else build_model(config, len(data.classes),
                                                                                 data.channels)
        self.model.to(self.device)
        channels_last = devices.channels_last(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if resume is not None:  # before the feature cache: it runs the (restored) backbone
            self.model.load_state_dict(resume.weights)
        self.input_size = training_input_size(config.arch, data.size)
        if self.input_size != data.size:
            self.say(f"{models.spec(config.arch).display_name} needs at least {self.input_size}×{self.input_size} "
                     f"px: the {data.size}×{data.size} images are resized to {self.input_size}×{self.input_size}.")
        # The batches, and the module a training step runs (the head alone on cached features).
        self.preprocess = Preprocess.of(data, self.device, self.input_size, self.model.in_channels, channels_last)
        self.train_batches: BatchSource = make_batches(data.train, self.preprocess)
        self.val_batches: BatchSource = make_batches(data.val, self.preprocess)
        self.step_model: ExplorerModel | HeadView = self.model
        if config.feature_cache and getattr(self.model, "frozen_backbone", False) and not config.augment:
            self.say("The backbone is frozen and augmentation is off: its features are computed once and only "
                     "the head trains on them (feature cache).")
            self.train_batches = feature_cache(self.model, self.train_batches)
            self.val_batches = feature_cache(self.model, self.val_batches)
            self.step_model = HeadView(self.model)
        self.trained = wrap(self.step_model) if wrap else self.step_model  # DistributedDataParallel, or as is
        self.autocast = devices.training_autocast(self.device)
        # Said with the device (not in the run's messages, which say how the run went).
        self.precision = " · training steps in bfloat16" if devices.trains_cpu_in_bfloat16(self.device) else ""
        # Optimiser and schedule, planned for the whole run.
        self.batch_size = config.batch_size
        self.eval_batch_size = 1024  # no gradients: larger batches fit
        self.steps_per_epoch = training_steps(self.train_batches, self.batch_size, shard)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer = make_optimizer(self.model, config)
        self.schedule = LearningRate(self.optimizer, config, self.total_steps)
        # Counters. An epoch in progress has an order (its examples) and a position in it.
        self.epochs_done = 0
        self.step = 0
        self.order: torch.Tensor | None = None
        self.position = 0  # examples of ``order`` trained on so far
        self.epoch_loss = torch.zeros((), device=self.device)  # summed on the device: .item() would sync
        self.epoch_correct = torch.zeros((), device=self.device, dtype=torch.int64)
        self.epoch_seen = 0
        self.train_loss = self.train_acc = self.val_loss = self.val_acc = math.nan
        self.history: list[EpochFigures] = []
        self.best_val_loss, self.best_epoch, self.epochs_without_improvement = math.inf, 0, 0
        self.best_step = 0
        self.best_weights: dict[str, torch.Tensor] | None = None  # a CPU copy, taken when validation improves
        self.saved_step: int | None = None  # the step of the last "last" save (taken part in, on ranks above 0)
        self.images_seen = 0
        self.elapsed_before = 0.0  # seconds trained before a resume
        self.started = time.perf_counter()
        self.status: Status = "running"
        self.test: TestFigures | None = None
        self.checkpoints = (checkpoints.Writer(Path(checkpoint_dir), run_id, data.mean, data.std, guard=fence)
                            if checkpoint_dir is not None else None)
        if resume is not None:
            self.restore(resume)
        self.captured_step: CapturedStep | None = None
        self.eval_forward: CapturedForward | None = None
        self.plan_graphs()

    # The loop ---------------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train to the end, a stop, early stopping or divergence; then test and report."""
        self.started = time.perf_counter()
        try:
            self.emit("on_fit_start")
            restart_on_out_of_memory(self)
        except StopTraining as signal:
            self.status = "stopped"
            self.say(str(signal) or "Stopped.")
        return self.finish()

    def train(self) -> None:
        """Epochs until the last one, or until the status is no longer "running"."""
        while self.status == "running" and self.epochs_done < self.config.epochs:
            if self.order is None:  # a new epoch (a restarted one keeps its order and position)
                self.order = training_order(self.train_batches, self.batch_size, self.generator, self.shard)
                self.emit("on_epoch_start")
            self.train_epoch()
            if self.status == "running":
                self.end_epoch()

    def train_epoch(self) -> None:
        """Train on the rest of this epoch's order, one full batch at a time."""
        assert self.order is not None
        self.trained.train()
        usable = self.steps_per_epoch * self.batch_size  # full batches only (see training_steps)
        batches_left = max(usable - self.position, 0) // self.batch_size  # also after an out-of-memory restart
        end = min(self.position + batches_left * self.batch_size, len(self.order))
        remaining = self.order[self.position:end]
        self.check_stop()
        for x, y in self.train_batches.batches(remaining, self.batch_size, self.config.augment, self.generator):
            (self.captured_step or self.eager_step)(x, y)
            self.schedule.after_batch()
            for on_step in self.on_step:
                on_step()
            self.step += 1
            self.position += len(y)
            self.images_seen += len(y) * self.shard[1]
            self.epoch_seen += len(y)
            report = self.step % LOG_EVERY == 0 or self.position >= end
            diverged = False
            if report:
                self.train_loss = float(self.epoch_loss) / self.epoch_seen  # a sync point on a GPU
                self.train_acc = float(self.epoch_correct) / self.epoch_seen
                diverged = not math.isfinite(self.train_loss)
                if not diverged:
                    self.emit("on_batch_end")  # the store's subscriber may ask for a stop here
            stop, diverged = self.agree(self.stop.is_set(), diverged, at=report)
            if diverged:
                self.status = "failed"
                what = (f"The loss became {self.train_loss}" if not math.isfinite(self.train_loss)
                        else "The loss became non-finite in another process of this run")
                self.say(f"{what} at epoch {self.epoch}, batch {self.step}: training diverged (try a lower learning "
                         "rate).")
                return
            if stop:  # before the next batch is drawn: a resumed run draws it from the same random state
                raise StopTraining(getattr(self.stop, "reason", None) or "Stopped by the user.")  # or its server left

    def eager_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One training step without a CUDA graph: clear the gradients, forward and backward, update."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_backward(x, y)
        self.optimizer.step()

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, loss, backward, clipping, and the epoch's running sums: all on the device, with no wait for
        it (what ``CapturedStep`` records in a CUDA graph; the optimiser's update follows it)."""
        with self.autocast:
            loss, logits = training_loss(self.step_model, self.trained(x), y, self.config.label_smoothing)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.epoch_loss += loss.detach() * len(y)
        self.epoch_correct += (logits.argmax(1) == y).sum()

    def end_epoch(self) -> None:
        """Validate, record the epoch, keep the best weights, step the schedule, report, stop early."""
        result = evaluate(self.step_model, self.val_batches, self.eval_batch_size, len(self.data.classes),
                          self.eval_forward)
        self.train_loss = float(self.epoch_loss) / max(self.epoch_seen, 1)
        self.train_acc = float(self.epoch_correct) / max(self.epoch_seen, 1)
        self.val_loss, self.val_acc = result.loss, result.accuracy
        self.history.append(EpochFigures(self.epoch, self.train_loss, self.train_acc, result.loss, result.accuracy,
                                         self.schedule.lr, self.elapsed))
        improved = result.loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.best_step = result.loss, self.epoch, self.step
            self.best_weights = _cpu_copy(self.model)
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        self.schedule.after_epoch(result.loss)
        self.epochs_done += 1
        self.order, self.position = None, 0
        self.epoch_loss.zero_()
        self.epoch_correct.zero_()
        self.epoch_seen = 0
        self.save("last")
        if improved:
            self.save("best")
        self.emit("on_epoch_end")
        if self.config.patience and self.epochs_without_improvement >= self.config.patience:
            self.say(f"Early stop: no better validation loss for {self.config.patience} epochs "
                     f"(best at epoch {self.best_epoch}).")
            self.status = "completed"

    def finish(self) -> FitResult:
        """Set the final status, save where training ended, evaluate the test split, report ``on_fit_end``."""
        if self.status == "running":
            self.status = "completed"
        if self.status != "failed" and self.saved_step != self.step:  # the same on every rank: a gather follows
            self.save("last")  # where it stopped, mid-epoch too (a failed run's weights are not worth keeping)
        self.test = self.test_figures()
        if self.checkpoints is not None:
            for which in ("best", "last"):
                self.checkpoints.update(which, status=self.status)  # how the run ended, for whoever reads one
            if self.status != "completed":
                self.say(self.checkpoints.describe())
        self.emit("on_fit_end")
        for graphed in (self.captured_step, self.eval_forward):
            if graphed is not None:  # their memory goes now, not whenever the collector finds the trainer's cycle
                graphed.release()
        return FitResult(model=self.model, progress=self.progress(), test=self.test.evaluation if self.test else None)

    def test_figures(self) -> TestFigures | None:
        """Evaluate the test split on the saved weights: the best by validation (if an epoch was validated)
        and the last (where training ended, unless it diverged). Each checkpoint's sidecar gets its own
        figures; the run is shown those of the best, else of the last."""
        if not len(self.data.test):
            return None
        figures: dict[Which, TestFigures] = {}
        if self.best_weights is not None:
            figures["best"] = self._test("best", self.best_epoch, self.best_step, self.best_weights)
        if self.status != "failed" and (self.checkpoints is not None or not figures):
            same = figures.get("best") if self.best_step == self.step else None
            figures["last"] = (replace(same, checkpoint="last", saved=self._saved("last")) if same is not None
                               else self._test("last", self.epoch, self.step, None))
        if self.checkpoints is not None:
            for which, figure in figures.items():
                self.checkpoints.update(which, test=figure.report(tuple(self.data.classes)))
        return figures.get("best") or figures.get("last")

    def _test(self, which: Which, epoch: int, step: int, weights: dict[str, torch.Tensor] | None) -> TestFigures:
        """Test figures of ``weights`` (None: the model as it is), leaving the model as it was."""
        current = _cpu_copy(self.model) if weights is not None else None
        if weights is not None:
            self.model.load_state_dict(weights)
        test_batches: BatchSource = make_batches(self.data.test, self.preprocess)
        if isinstance(self.step_model, HeadView):
            test_batches = feature_cache(self.model, test_batches)
        result = evaluate(self.step_model, test_batches, self.eval_batch_size, len(self.data.classes),
                          self.eval_forward)
        if current is not None:
            self.model.load_state_dict(current)
        return TestFigures(which, epoch, step, result, tuple(self.data.test.labels.tolist()), self._saved(which))

    def _saved(self, which: Which) -> bool:
        return self.checkpoints is not None and which in self.checkpoints.written

    # Checkpoints and resuming -------------------------------------------------------------------------

    def save(self, which: Which) -> None:
        """Write the ``which`` checkpoint, if this run keeps checkpoints; the last one with its training state.

        Saving the last one is a collective in a distributed run: every rank hands rank 0 its own part of the
        training state (``core.training.ranks``), whichever rank writes."""
        parts = ranks.gather(self.own_state(), self.shard) if which == "last" else None
        if which == "last":
            self.saved_step = self.step
        if self.checkpoints is None:
            return
        progress = self.progress()
        if which == "best":
            assert self.best_weights is not None
            self.checkpoints.save("best", self.best_weights, progress, complete=True)
        else:
            self.checkpoints.save("last", self.model, progress, complete=self.order is None,
                                  training_state=self.training_state(parts))

    def own_state(self) -> dict[str, Any]:
        """This rank's own part of the training state (its order, running sums and random generators)."""
        return ranks.own_state(self.order, (self.epoch_loss, self.epoch_correct, self.epoch_seen),
                               (self.train_loss, self.train_acc), self.generator, self.device)

    def training_state(self, parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything besides the weights that continuing this run needs (tensors and plain values only): what
        the ranks share, and under ``ranks`` every rank's own part (``parts``, by rank; else this one's)."""
        return {
            "config": config_dict(self.config), "shard": list(self.shard),
            "ranks": parts if parts is not None else [self.own_state()],
            "epochs_done": self.epochs_done, "step": self.step, "position": self.position,
            "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "val_loss": self.val_loss, "val_acc": self.val_acc, "history": [row.as_dict() for row in self.history],
            "best_val_loss": self.best_val_loss, "best_epoch": self.best_epoch, "best_step": self.best_step,
            "epochs_without_improvement": self.epochs_without_improvement, "images_seen": self.images_seen,
            "elapsed": self.elapsed, "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
        }

    def restore(self, resume: checkpoints.Resume) -> None:
        """Continue from a saved training state: counters, history, optimiser, schedule, random generators."""
        state = resume.state
        own = ranks.own_part(state, self.shard)  # this rank's order, sums and generators
        for name in ("epochs_done", "step", "position", "batch_size", "eval_batch_size", "steps_per_epoch",
                     "total_steps", "val_loss", "val_acc", "best_val_loss", "best_epoch", "best_step",
                     "epochs_without_improvement", "images_seen"):
            setattr(self, name, state[name])
        self.epoch_seen, self.train_loss, self.train_acc = own["epoch_seen"], own["train_loss"], own["train_acc"]
        self.order = own["order"].to(self.device) if own["order"] is not None else None
        self.epoch_loss.fill_(own["epoch_loss"])
        self.epoch_correct.fill_(own["epoch_correct"])
        self.history = [EpochFigures(**row) for row in state["history"]]
        self.elapsed_before = state["elapsed"]
        self.best_weights = resume.best_weights
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(own["rng_cpu"])
        self.generator.set_state(own["rng_generator"])
        if self.device.type == "cuda" and own["rng_cuda"] is not None:
            torch.cuda.set_rng_state(own["rng_cuda"], self.device)
        where = f"end of epoch {self.epochs_done}" if self.order is None else f"epoch {self.epoch}, step {self.step}"
        self.say(f"Resumed from the last checkpoint ({where}).")
        if resume.note:  # a damaged best checkpoint: resumed without it
            self.say(resume.note)

    # Helpers ----------------------------------------------------------------------------------------

    def plan_graphs(self) -> None:
        """On CUDA, replay the training step and the evaluation passes from CUDA graphs (``config.cuda_graphs``)
        when the run allows it; else run them eagerly and say why. Called again after the batch size changes."""
        reason = why_not_captured(self.device, isinstance(self.train_batches, DeviceBatches),
                                  self.trained is not self.step_model or self.shard[1] > 1)
        if not self.config.cuda_graphs or reason is not None:
            if self.config.cuda_graphs and self.device.type == "cuda" and self.captured_step is None:
                self.say(f"The training step runs eagerly: {reason}.")
            self.captured_step = self.eval_forward = None
            return
        self.autocast = devices.autocast(self.device, cache=False)  # no cast weights may outlive a capture
        self.captured_step = CapturedStep(self.forward_backward, self.optimizer, self.device, say=self.say)
        self.eval_forward = CapturedForward(self.step_model, self.device, say=self.say)

    def check_stop(self) -> None:
        """End the run here if the user asked to stop (every process of a distributed run agrees on it)."""
        stop, _ = self.agree(self.stop.is_set(), False, at=True)
        if stop:
            raise StopTraining(getattr(self.stop, "reason", None) or "Stopped by the user.")  # or its server left

    def agree(self, stop: bool, diverged: bool, at: bool) -> tuple[bool, bool]:
        """Whether any process of the run asked to stop or saw its loss diverge; ``(stop, diverged)``.

        In a distributed run only rank 0 hears the store's stop request, and a loss can turn non-finite on one
        rank's data alone; every rank must end at the same batch, or the others wait in their next all-reduce
        until the process-group timeout. So the ranks agree (an all-reduce of both flags) at ``at`` points
        only: the start of an epoch and each progress report, where a GPU synchronises anyway. In between, a
        distributed rank goes on; a single process decides at once."""
        if ranks.distributed(self.shard):
            if not at:
                return False, False
            on = self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
            flags = torch.tensor([float(stop), float(diverged)], device=on)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            stop, diverged = bool(flags[0].item()), bool(flags[1].item())
        return stop, diverged

    @property
    def epoch(self) -> int:
        """The epoch running (1-based), or the last one that ran (0 before the first)."""
        return self.epochs_done + (self.order is not None)

    @property
    def elapsed(self) -> float:
        """Seconds of training, including those before a resume."""
        return self.elapsed_before + time.perf_counter() - self.started

    def say(self, message: str) -> None:
        """Record a message for the user (resizing, out-of-memory restarts, stops, divergence)."""
        self.messages.append(message)

    def halve_batch(self) -> None:
        """Continue the current epoch where it was with half the batch size; re-plan the schedule for the
        steps left, so that it still ends with the run."""
        if self.order is not None and self.position >= self.steps_per_epoch * self.batch_size:
            self.position = len(self.order)  # its batches were all trained: it was validating, not training
        self.batch_size //= 2
        self.eval_batch_size = max(self.eval_batch_size // 2, 1)
        self.steps_per_epoch = training_steps(self.train_batches, self.batch_size, self.shard)
        left_this_epoch = (self.steps_per_epoch * self.batch_size - self.position) // self.batch_size
        epochs_after = self.config.epochs - self.epochs_done - (self.order is not None)
        self.total_steps = self.step + max(left_this_epoch, 0) + epochs_after * self.steps_per_epoch
        self.schedule.replan(self.step, self.total_steps)
        if self.captured_step is not None:
            self.plan_graphs()  # new shapes: new graphs
        self.say(f"Out of memory at batch size {self.batch_size * 2}: epoch {max(self.epoch, 1)} continues with "
                 f"batch size {self.batch_size}; the learning-rate schedule is re-planned for the "
                 f"{self.total_steps - self.step} steps left.")

    def progress(self) -> Progress:
        """A frozen snapshot of where the run is."""
        return Progress(
            config=self.config, device=devices.describe(self.device) + self.precision, classes=tuple(self.data.classes),
            input_size=self.input_size, epoch=self.epoch, step=self.step, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps, batch_size=self.batch_size, lr=self.schedule.lr,
            train_loss=self.train_loss, train_acc=self.train_acc, val_loss=self.val_loss, val_acc=self.val_acc,
            best_val_loss=self.best_val_loss, best_epoch=self.best_epoch, images_seen=self.images_seen,
            elapsed=self.elapsed, status=self.status, messages=tuple(self.messages), history=tuple(self.history),
            model=self.model, test=self.test)

    def emit(self, hook: str) -> None:
        """Hand one snapshot to every subscriber that implements ``hook``."""
        progress = self.progress()
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(progress)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is the device running out of memory."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def restart_on_out_of_memory(trainer: Trainer) -> None:
    """Run the trainer's loop; when the device runs out of memory, free what can be freed, halve the batch
    (down to 1) and continue where the failed batch was."""
    while True:
        try:
            return trainer.train()
        except RuntimeError as error:
            if not is_out_of_memory(error) or trainer.batch_size == 1:
                raise
            gc.collect()
            if trainer.device.type == "cuda":
                torch.cuda.empty_cache()
            trainer.halve_batch()


def fit(config: TrainConfig, data: Data, callbacks: list[Any] | tuple = (), stop: threading.Event | None = None,
        model: ExplorerModel | None = None, shard: Shard = (0, 1), wrap: Any = None,
        checkpoint_dir: Path | None = None, run_id: str | None = None, resume_from: Path | None = None,
        fence: Callable[[], None] | None = None) -> FitResult:
    """Train ``config.arch`` on ``data``; evaluate on validation each epoch and on test at the end.

    Stops early on ``stop`` (within one batch), on a StopTraining from a subscriber, on early stopping,
    or on a non-finite loss (status "failed", with the reason). Running out of device memory halves the
    batch size and continues. ``shard``/``wrap`` serve distributed training (see core.train).
    With ``checkpoint_dir`` the run keeps a last checkpoint (every epoch end, and where it stopped) and a
    best one there; ``resume_from`` (a run's checkpoint folder) continues a run from its last checkpoint.
    ``fence`` raises when this process no longer holds the run (core.claims): it is called right before every
    checkpoint write, and what it raises ends the run at once, with nothing more written.
    """
    return Trainer(config, data, callbacks, stop, model, shard, wrap, checkpoint_dir, run_id, resume_from,
                   fence).fit()
