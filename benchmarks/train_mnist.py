"""Time to accuracy: LeNet-5 on MNIST to ≥ 99.2 % test accuracy, our trainer against the tutorial loop.

    python -m benchmarks.train_mnist --mnist ../shared/data          # folder holding MNIST/raw/*.gz (or idx files)
    python -m benchmarks.train_mnist --mnist ../shared/data --skip-baseline

Baseline, in the same run on the same device: the loop a user would write from a tutorial —
torchvision ``MNIST`` + ``DataLoader`` (ToTensor, Normalize, batch 128, shuffle, 2 workers),
SGD lr 0.01 momentum 0.9 weight decay 5e-4, evaluating the test set after each epoch.
Ours: the trainer's device-resident fast path with the preset made for the device: on a GPU
"Fast, large batch (GPU)" (a small model there is bound by kernel launches, so fewer, larger steps
win), on a CPU "Fast" at batch 128 for 6 epochs (arithmetic-bound: fewer epochs win).
Both clocks stop while the test set is evaluated (the target check), and run only while training
and validating. Also: ResNet-18 training images/s at CIFAR-10 size (32×32), ours against the same
model in a plain DataLoader loop, both timed after 20 warm-up steps. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.timing import SteadyClock, loop_images_per_second, warms_up
from core import data as datasets
from core import devices, models, training

TARGET = 0.992
# The recipe per device type: (preset, overrides).
RECIPES = {
    "cuda": ("Fast, large batch (GPU)", {}),
    "cpu": ("Fast", {"batch_size": 128, "epochs": 6}),
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


def recipe(device: torch.device, epochs: int | None) -> training.TrainConfig:
    """The preset for ``device`` (MPS takes the GPU one), optionally with another schedule length."""
    name, overrides = RECIPES["cpu" if device.type == "cpu" else "cuda"]
    overrides = {**overrides, **({"epochs": epochs} if epochs else {})}
    return training.preset(name, arch="lenet5", dataset="mnist", device=device.type, **overrides)


def ours(root: Path, device: torch.device, epochs: int | None) -> dict[str, float]:
    """Our trainer; returns seconds and epochs to the target (the clock stops for the test check)."""
    data = datasets.load("mnist", root, download=False)
    test = training.make_batches(data.test, training.Preprocess.of(data, device, 28, 1))
    reached: dict[str, float] = {}
    paused = [0.0]

    class TargetCheck:
        def on_epoch_end(self, progress: training.Progress) -> None:
            if reached:
                return
            devices.synchronize(device)
            start = time.perf_counter()
            accuracy = training.evaluate(progress.model, test, num_classes=10).accuracy
            paused[0] += time.perf_counter() - start
            if accuracy >= TARGET:
                reached.update(seconds=progress.elapsed - paused[0], epochs=progress.epoch, accuracy=accuracy)
                raise training.StopTraining("target reached")

    config = recipe(device, epochs)
    print(f"  ours: {config.optimizer}, lr {config.lr:g} {config.schedule}, batch {config.batch_size}, "
          f"{config.epochs} epochs{', random shifts' if config.augment else ''}", flush=True)
    result = training.fit(config, data, [TargetCheck()])
    images = result.progress.images_seen
    return {**reached, "images_per_second": images / max(result.progress.elapsed - paused[0], 1e-9)}


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
    trained = 0.0
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
    return {"images_per_second": images / trained}


def resnet_throughput(device: torch.device, batches: int) -> tuple[float, float]:
    """ResNet-18 training images/s at 32×32: (ours, plain DataLoader loop), same batch size and steps.

    With more than 40 batches both are timed after 20 warm-up steps (cuDNN autotuning, DataLoader workers).
    """
    warmup = warms_up(batches)
    count = 128 * batches
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,))
    split = datasets.Split(images, labels)
    data = datasets.InMemoryData("cifar10", tuple(map(str, range(10))), split, datasets.Split(images[:256], labels[:256]),
                                 datasets.Split(images[:0], labels[:0]), (0.5,) * 3, (0.25,) * 3)
    config = training.TrainConfig(arch="resnet18", dataset="cifar10", epochs=1, batch_size=128, optimizer="sgd",
                                lr=0.01, device=device.type)
    clock = SteadyClock(warmup)
    training.fit(config, data, [clock])
    model = models.build("resnet18", num_classes=10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(TensorDataset(images.float().div(255), labels), batch_size=128, shuffle=True, num_workers=2)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return clock.images_per_second, loop_images_per_second(loader, step, device, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=None, help="our one-cycle schedule's length (default: the preset's)")
    parser.add_argument("--max-baseline-epochs", type=int, default=20)
    parser.add_argument("--resnet-batches", type=int, default=None, help="default: 200 on a GPU, 8 on a CPU")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    root = prepare_root(args.mnist)
    print(f"device: {devices.describe(device)} · torch {torch.__version__}")
    mine = ours(root, device, args.epochs)
    theirs = {} if args.skip_baseline else baseline(root, device, args.max_baseline_epochs)
    print(f"\nLeNet-5 on MNIST to ≥ {TARGET:.1%} test accuracy")
    print(f"{'loop':22s} {'epochs':>6s} {'seconds':>8s} {'images/s':>9s} {'test acc':>8s}")
    for name, row in (("trainer (fast path)", mine), ("tutorial DataLoader", theirs)):
        if row:
            seconds = f"{row['seconds']:.1f}" if "seconds" in row else "not met"
            print(f"{name:22s} {row.get('epochs', '—')!s:>6s} {seconds:>8s} "
                  f"{row['images_per_second']:9.0f} {row.get('accuracy', float('nan')):8.4f}")
    if "seconds" in mine and "seconds" in theirs:
        print(f"speed-up to target: {theirs['seconds'] / mine['seconds']:.1f}×")
    resnet_batches = args.resnet_batches if args.resnet_batches is not None else (8 if device.type == "cpu" else 200)
    if resnet_batches:
        fast, plain = resnet_throughput(device, resnet_batches)
        print("\nResNet-18 training at 32×32, batch 128")
        print(f"{'trainer (fast path)':22s} {fast:9.0f} images/s")
        print(f"{'plain DataLoader loop':22s} {plain:9.0f} images/s   ratio {fast / plain:.2f}×")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
