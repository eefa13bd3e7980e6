"""Time to accuracy: LeNet-5 on MNIST to ≥ 99.2 % test accuracy, our trainer against the tutorial loop.

    python -m benchmarks.train_mnist --mnist ../shared/data          # folder holding MNIST/raw/*.gz (or idx files)
    python -m benchmarks.train_mnist --mnist ../shared/data --skip-baseline
    python -m benchmarks.train_mnist --mnist .data --seeds 3 --eager --recipe 512:10:0.01 --recipe 1024:8:0.02
    python -m benchmarks.train_mnist --mnist ../shared/data --seeds 3 --cpu-levers   # bf16, channels-last: off/on

Baselines, in the same run on the same device: the fastest published MNIST recipe (a smaller network to
99.0 %, ``benchmarks.mnist_published``; ``--skip-published`` leaves it out), and the loop a user would write
from a tutorial —
torchvision ``MNIST`` + ``DataLoader`` (ToTensor, Normalize, batch 128, shuffle, 2 workers),
SGD lr 0.01 momentum 0.9 weight decay 5e-4, evaluating the test set after each epoch.
Ours: the trainer's device-resident fast path with the preset made for the device: on a GPU
"Fast, large batch (GPU)" (a small model there is bound by kernel launches, so fewer, larger steps
win), on a CPU "Fast, few epochs (CPU)" (batch 256, 4 epochs, label smoothing 0.1: bound by arithmetic and
memory traffic, fewer images win; channels-last, and bfloat16 where the CPU computes in it).
Both clocks stop while the test set is evaluated (the target check), and run only while training
and validating. On CUDA our training step and evaluation replay CUDA graphs (``--eager`` adds the same
recipes without them); ``--recipe`` times variants of the preset, ``--seeds`` repeats each. ResNet-18 at
CIFAR-10 size is ``benchmarks.train_cifar``. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import statistics
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.mnist_published import TARGET as PUBLISHED_TARGET
from benchmarks.mnist_published import published
from core import data as datasets
from core import devices, models, paths, training

TARGET = 0.992
# The recipe per device type: (preset, overrides).
RECIPES = {
    "cuda": ("Fast, large batch (GPU)", {}),
    "cpu": ("Fast, few epochs (CPU)", {}),
}


def prepare_root(source: Path) -> Path:
    """A writable copy of ``source``/MNIST/raw (torchvision extracts archives next to them)."""
    raw = source / "MNIST" / "raw"
    if not raw.is_dir():
        raise SystemExit(f"no MNIST files in {raw}")
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-"))
    shutil.copytree(raw, root / "MNIST" / "raw")
    for path in (root / "MNIST" / "raw").iterdir():
        path.chmod(0o644)
    return root


def generated_root(count: int) -> Path:
    """MNIST's four files holding ``count`` random training images and a sixth as many test images: lets a dry
    run go through every step on a machine without the data (nothing to learn: the target is never met)."""
    root = Path(tempfile.mkdtemp(prefix="mnist-generated-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, size in (("train", count), ("t10k", max(count // 6, 1))):
        images = torch.randint(0, 256, (size, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (size,), dtype=torch.uint8, generator=generator)
        for kind, magic, tensor in (("images-idx3", 2051, images), ("labels-idx1", 2049, labels)):
            header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in tensor.shape)
            with gzip.open(raw / f"{prefix}-{kind}-ubyte.gz", "wb") as sink:
                sink.write(header + tensor.numpy().tobytes())
    return root


def recipe(device: torch.device, epochs: int | None, seed: int = 0, cuda_graphs: bool = True,
           custom: str | None = None) -> training.TrainConfig:
    """The preset for ``device`` (MPS takes the GPU one), optionally with another schedule length, or a
    ``custom`` "BATCH:EPOCHS:PEAK_LR" variant of it."""
    name, overrides = RECIPES["cpu" if device.type == "cpu" else "cuda"]
    overrides = {**overrides, **({"epochs": epochs} if epochs else {})}
    if custom:
        batch, length, peak = custom.split(":")
        overrides.update(batch_size=int(batch), epochs=int(length), lr=float(peak))
    return training.preset(name, arch="lenet5", dataset="mnist", device=device.type, seed=seed,
                           cuda_graphs=cuda_graphs, **overrides)


def describe(config: training.TrainConfig) -> str:
    """A recipe in one short line: batch, epochs, peak rate, and how the step runs (a CUDA graph or eagerly; on
    a CPU, in which precision and memory format)."""
    if config.device == "cpu":
        cpu = torch.device("cpu")
        mode = (f"{'bf16' if devices.cpu_bfloat16() else 'fp32'} "
                f"{'channels-last' if devices.channels_last(cpu) else 'NCHW'}")
    else:
        mode = "graphs" if config.cuda_graphs and config.device == "cuda" else "eager"
    return f"b{config.batch_size} e{config.epochs} lr{config.lr:g} {mode}"


@contextlib.contextmanager
def cpu_path(bfloat16: bool, channels_last: bool) -> Iterator[None]:
    """The trainer's CPU levers switched for a comparison row: bfloat16 through its setting, channels-last by
    standing in for ``devices.channels_last`` (the trainer asks it once per run)."""
    saved_setting, saved_policy = os.environ.get(paths.CPU_BFLOAT16_ENV), devices.channels_last
    os.environ[paths.CPU_BFLOAT16_ENV] = "1" if bfloat16 else "0"
    devices.channels_last = lambda device: channels_last and saved_policy(device)  # type: ignore[assignment]
    try:
        yield
    finally:
        devices.channels_last = saved_policy  # type: ignore[assignment]
        if saved_setting is None:
            os.environ.pop(paths.CPU_BFLOAT16_ENV, None)
        else:
            os.environ[paths.CPU_BFLOAT16_ENV] = saved_setting


def ours(root: Path, config: training.TrainConfig) -> dict[str, float]:
    """Our trainer; returns seconds and epochs to the target (the clock stops for the test check)."""
    device = torch.device(config.device)
    data = datasets.load("mnist", root, download=False)
    test = training.make_batches(data.test, training.Preprocess.of(data, device, 28, 1))
    reached: dict[str, float] = {}
    paused = [0.0]
    accuracies: list[float] = []

    class TargetCheck:
        def on_epoch_end(self, progress: training.Progress) -> None:
            if reached:
                return
            devices.synchronize(device)
            start = time.perf_counter()
            accuracy = training.evaluate(progress.model, test, num_classes=10).accuracy
            paused[0] += time.perf_counter() - start
            accuracies.append(accuracy)
            if accuracy >= TARGET:
                reached.update(seconds=progress.elapsed - paused[0], epochs=progress.epoch, accuracy=accuracy)
                raise training.StopTraining("target reached")

    result = training.fit(config, data, [TargetCheck()])
    images = result.progress.images_seen
    for message in result.progress.messages:
        if "graph" in message.lower() or "eagerly" in message:
            print(f"  ({message})")
    print(f"  ours ({describe(config)}, seed {config.seed}): test accuracy by epoch "
          f"{', '.join(f'{a:.4f}' for a in accuracies)}" + (f"; {reached['seconds']:.3f} s" if reached else ""),
          flush=True)
    return {**reached, "accuracy": reached.get("accuracy", accuracies[-1] if accuracies else float("nan")),
            "images_per_second": images / max(result.progress.elapsed - paused[0], 1e-9)}


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Seeds that reached the target, and the means over them (seconds, epochs) and over all (accuracy, speed)."""
    met = [row for row in rows if "seconds" in row]
    out = {"met": len(met), "runs": len(rows),
           "accuracy": statistics.mean(row["accuracy"] for row in rows),
           "images_per_second": statistics.mean(row["images_per_second"] for row in rows)}
    if met:
        out.update(seconds=statistics.mean(row["seconds"] for row in met),
                   epochs=statistics.mean(row["epochs"] for row in met))
    return out


def baseline(root: Path, device: torch.device, max_epochs: int) -> dict[str, float]:
    """The tutorial loop; returns seconds and epochs to the target."""
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = torchvision.datasets.MNIST(str(root), train=True, download=False, transform=transform)
    test_set = torchvision.datasets.MNIST(str(root), train=False, download=False, transform=transform)
    train_loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2)
    test_loader = DataLoader(test_set, batch_size=1000, num_workers=2)
    torch.manual_seed(0)
    model = models.build("lenet5").to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    trained = accuracy = 0.0
    images = 0
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            images += len(y)
        devices.synchronize(device)
        trained += time.perf_counter() - start
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        accuracy = correct / len(test_set)
        print(f"  baseline epoch {epoch}: test accuracy {accuracy:.4f}, {trained:.1f} s of training", flush=True)
        if accuracy >= TARGET:
            return {"seconds": trained, "epochs": epoch, "accuracy": accuracy, "images_per_second": images / trained}
    return {"images_per_second": images / trained, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=Path("../shared/data"))
    parser.add_argument("--generated", type=int, default=0, metavar="N",
                        help="instead of --mnist, N random images in MNIST's files (a dry run: the target is never met)")
    parser.add_argument("--epochs", type=int, default=None, help="our one-cycle schedule's length (default: the preset's)")
    parser.add_argument("--recipe", action="append", default=None, metavar="BATCH:EPOCHS:LR",
                        help="variants of the device's preset to time (repeatable; default: the preset itself)")
    parser.add_argument("--seeds", type=int, default=1, help="runs of each recipe, seeds 0, 1, …")
    parser.add_argument("--eager", action="store_true", help="on CUDA, also time each recipe without CUDA graphs")
    parser.add_argument("--cpu-levers", action="store_true",
                        help="on a CPU, also time each recipe in float32, and in float32 without channels-last")
    parser.add_argument("--max-baseline-epochs", type=int, default=20)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-published", action="store_true",
                        help="leave out the published speed-run recipe (benchmarks.mnist_published)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    root = generated_root(args.generated) if args.generated else prepare_root(args.mnist)
    print(f"device: {devices.describe(device)} · torch {torch.__version__}")
    modes = [True, False] if args.eager and device.type == "cuda" else [True]
    levers = [(True, True), (False, True), (False, False)] if args.cpu_levers and device.type == "cpu" else [None]
    results: dict[str, dict[str, float]] = {}
    for custom in args.recipe or [None]:
        for graphs in modes:
            for lever in levers:
                with cpu_path(*lever) if lever else contextlib.nullcontext():
                    configs = [recipe(device, args.epochs, seed, graphs, custom) for seed in range(args.seeds)]
                    if device.type != "cpu":  # loading cuDNN and cuBLAS, cuDNN's kernel search: not counted
                        training.fit(replace(configs[0], epochs=1), datasets.load("mnist", root, download=False))
                    results[describe(configs[0])] = summary([ours(root, config) for config in configs])
    if not args.skip_published:
        runs = [published(root, device, seed) for seed in range(args.seeds)]
        results[f"published recipe (to {PUBLISHED_TARGET:.1%})"] = summary(runs)
    theirs = {} if args.skip_baseline else baseline(root, device, args.max_baseline_epochs)
    print(f"\nLeNet-5 on MNIST to ≥ {TARGET:.1%} test accuracy ({args.seeds} seed{'s' * (args.seeds != 1)} each)")
    print(f"{'loop':36s} {'met':>5s} {'epochs':>6s} {'seconds':>8s} {'images/s':>9s} {'test acc':>8s} {'speed-up':>8s}")
    if theirs:
        results["tutorial DataLoader"] = {**theirs, "met": int("seconds" in theirs), "runs": 1}
    for name, row in results.items():
        seconds = f"{row['seconds']:.3f}" if "seconds" in row else "not met"
        speedup = (f"{theirs['seconds'] / row['seconds']:7.1f}×" if "seconds" in row and "seconds" in theirs
                   and name != "tutorial DataLoader" else f"{'—':>8s}")
        epochs = f"{row['epochs']:.1f}" if "epochs" in row else "—"
        print(f"{name:36s} {row['met']:>2d}/{row['runs']:<2d} {epochs:>6s} {seconds:>8s} "
              f"{row['images_per_second']:9.0f} {row['accuracy']:8.4f} {speedup}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
