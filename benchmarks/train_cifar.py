"""ResNet-18 at CIFAR-10 size (32×32): training images/s of our trainer against plain loops, same run.

    python -m benchmarks.train_cifar                       # generated images of CIFAR-10's shapes
    python -m benchmarks.train_cifar --batches 40 --batch-size 32 --no-compile   # a quick look on a CPU
    python -m benchmarks.train_cifar --cifar DIR --epochs 30   # also train to 94 % on a local CIFAR-10 copy

Rows, each timed after ``benchmarks.timing.WARMUP_STEPS`` warm-up steps (cuDNN's autotuning, the CUDA-graph
capture, ``torch.compile``'s compilation), all with Adam at batch 128 on data already on the device:
- our trainer's fast path: on CUDA replaying the training step from a CUDA graph, and eagerly;
- torchvision's ResNet-18 in the loop a user writes (bfloat16 autocast and channels_last on CUDA, as ours):
  eager, and with ``torch.compile`` (the compilation is left out of the timing).
With ``--cifar DIR`` (torchvision's layout: ``DIR/cifar-10-batches-py``) the trainer also trains on the
real set and reports the best test accuracy and the time to 94 % when reached; without a copy the table
says images/s only. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from benchmarks.timing import SteadyClock, loop_images_per_second, warms_up
from core import data as datasets
from core import devices, training

TARGET = 0.94


def generated(count: int, seed: int = 0) -> datasets.InMemoryData:
    """Random uint8 images and labels of CIFAR-10's shapes (for speed only: nothing to learn)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    return datasets.InMemoryData("cifar10", tuple(map(str, range(10))), datasets.Split(images, labels),
                                 datasets.Split(images[:256], labels[:256]), datasets.Split(images[:0], labels[:0]),
                                 (0.5,) * 3, (0.25,) * 3)


def trainer_rate(data: datasets.InMemoryData, device: torch.device, batch_size: int, cuda_graphs: bool,
                 warmup: bool) -> float:
    """Images/s of our trainer over one epoch of ``data``."""
    config = training.TrainConfig(arch="resnet18", dataset="cifar10", epochs=1, batch_size=batch_size,
                                  optimizer="adam", lr=1e-3, weight_decay=0.0, device=device.type,
                                  cuda_graphs=cuda_graphs)
    clock = SteadyClock(warmup)
    training.fit(config, data, [clock])
    return clock.images_per_second


def plain_rate(data: datasets.InMemoryData, device: torch.device, batch_size: int, compiled: bool,
               warmup: bool) -> float:
    """Images/s of torchvision's ResNet-18 in a plain loop over batches already on the device."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compiled else model
    images = data.train.images.to(device)
    labels = data.train.labels.to(device)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(labels), device=device)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            x = (images[index].float() / 255 - 0.5) / 0.25
            yield (x.contiguous(memory_format=torch.channels_last) if cuda else x), labels[index]

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with devices.autocast(device):
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()

    return loop_images_per_second(batches(), step, device, warmup)


def to_target(root: Path, device: torch.device, epochs: int, batch_size: int) -> str:
    """Train on the real CIFAR-10 copy: the best test accuracy, and the seconds to TARGET if reached."""
    data = datasets.load("cifar10", root, download=False)
    test = training.make_batches(data.test, training.Preprocess.of(data, device, 32, 3))
    reached: dict[str, float] = {}
    best = [0.0]

    class TargetCheck:
        def on_epoch_end(self, progress: training.Progress) -> None:
            accuracy = training.evaluate(progress.model, test, num_classes=10).accuracy
            best[0] = max(best[0], accuracy)
            if accuracy >= TARGET and not reached:
                reached.update(seconds=progress.elapsed, epoch=progress.epoch)

    config = training.TrainConfig(arch="resnet18", dataset="cifar10", epochs=epochs, batch_size=batch_size,
                                  optimizer="adam", lr=2e-3, weight_decay=5e-4, schedule="onecycle", augment=True,
                                  label_smoothing=0.1, device=device.type)
    training.fit(config, data, [TargetCheck()])
    when = f"{TARGET:.0%} after {reached['seconds']:.1f} s (epoch {reached['epoch']:.0f})" if reached else \
        f"{TARGET:.0%} not reached"
    return f"best test accuracy {best[0]:.4f}; {when} (the clock includes the per-epoch test check)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=None,
                        help="batches per timed epoch (default: 200 on a GPU, 30 on a CPU)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row")
    parser.add_argument("--cifar", type=Path, default=None, help="a CIFAR-10 copy in torchvision's layout")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the --cifar run")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer sets it: both sides autotune
    batches = args.batches or (200 if device.type == "cuda" else 30)
    warmup = warms_up(batches)
    data = generated(batches * args.batch_size)
    print(f"device: {devices.describe(device)} · torch {torch.__version__} · {batches} batches of {args.batch_size}")
    rows: dict[str, float] = {}
    if device.type == "cuda":
        rows["trainer, CUDA graph"] = trainer_rate(data, device, args.batch_size, True, warmup)
    rows["trainer, eager"] = trainer_rate(data, device, args.batch_size, False, warmup)
    rows["torchvision, plain loop"] = plain_rate(data, device, args.batch_size, False, warmup)
    if not args.no_compile:
        start = time.perf_counter()
        rows["torchvision, torch.compile"] = plain_rate(data, device, args.batch_size, True, warmup)
        print(f"  (torch.compile row: {time.perf_counter() - start:.0f} s in all, compilation included)")
    reference = rows.get("torchvision, torch.compile", rows["torchvision, plain loop"])
    print(f"\nResNet-18 training at 32×32, batch {args.batch_size}, Adam, data on the device")
    print(f"{'loop':28s} {'images/s':>10s} {'vs compiled' if not args.no_compile else 'vs plain':>12s}")
    for name, rate in rows.items():
        print(f"{name:28s} {rate:10.0f} {rate / reference:11.2f}×")
    if args.cifar is not None:
        print(f"\nCIFAR-10 from {args.cifar}: {to_target(args.cifar, device, args.epochs, args.batch_size)}")
    else:
        print("\nNo CIFAR-10 copy given (--cifar): images/s only, on generated images of its shapes.")


if __name__ == "__main__":
    main()
