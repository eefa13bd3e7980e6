"""Transfer learning speed: the feature cache against the naive loop, and full fine-tuning throughput.

    python -m benchmarks.transfer [--images 2500] [--epochs 3] [--finetune-batches N]

1. ResNet-18 feature extraction (frozen backbone, no augmentation) on N generated 224×224 images:
   seconds per epoch with the feature cache against the naive loop that runs the frozen backbone
   every epoch (the trainer with ``feature_cache=False``), same data, same head, same run.
2. Full fine-tuning images/s: our ResNet-18 through the trainer against torchvision's ``resnet18`` in a
   plain loop with the same settings (Adam, batch 32, shuffled; bf16, channels_last and cuDNN autotuning
   on CUDA), images already decoded in memory so decoding does not bound either. With more than 40
   batches (the GPU default: 300) both are timed after 20 warm-up steps.
Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import torchvision

from benchmarks.timing import SteadyClock, loop_images_per_second, warms_up
from core import data as datasets
from core import devices, training, transfer


def synthetic(count: int, size: int = 224, classes: int = 5) -> datasets.InMemoryData:
    """Decoded uint8 images (random textures; the timing does not depend on content)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count) % classes
    train, val, test = datasets._split(images, labels, (0.8, 0.1), 0)
    return datasets.InMemoryData("synthetic", tuple(map(str, range(classes))), train, val, test,
                                 (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def epoch_times(data: datasets.InMemoryData, device: torch.device, epochs: int, cached: bool) -> list[float]:
    """Seconds of each epoch (training + validation) of feature extraction."""
    torch.manual_seed(0)
    model = transfer.build("resnet18", len(data.classes))
    transfer.apply_strategy(model, "feature_extraction")
    marks: list[float] = []

    class Clock:
        def on_fit_start(self, progress: training.Progress) -> None:
            marks.append(time.perf_counter())

        def on_epoch_end(self, progress: training.Progress) -> None:
            marks.append(time.perf_counter())

    config = training.TrainConfig(arch="resnet18", epochs=epochs, optimizer="adam", lr=1e-3, batch_size=32,
                                weight_decay=0.0, feature_cache=cached, device=device.type)
    start = time.perf_counter()
    training.fit(config, data, [Clock()], model=model)
    marks[0] = start  # the first epoch includes computing the cache
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def finetune_throughput(device: torch.device, batches: int) -> tuple[float, float]:
    """Images/s of full fine-tuning: (our trainer, torchvision resnet18 in a plain loop)."""
    warmup = warms_up(batches)
    data = synthetic(int(32 * batches / 0.8) + 2)
    config = training.TrainConfig(arch="resnet18", epochs=1, optimizer="adam", lr=1e-4, batch_size=32,
                                weight_decay=0.0, strategy="full", device=device.type)
    clock = SteadyClock(warmup)  # training steps only: validation and test are not part of the throughput
    training.fit(config, data, [clock])

    cuda = device.type == "cuda"
    model = torchvision.models.resnet18(num_classes=len(data.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    order = torch.randperm(len(labels), device=device)
    shuffled = ((images[order[i:i + 32]], labels[order[i:i + 32]]) for i in range(0, len(labels) - 31, 32))

    def step(raw: torch.Tensor, y: torch.Tensor) -> None:
        x = (raw.float() / 255 - mean) / std
        x = x.contiguous(memory_format=torch.channels_last) if cuda else x
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return clock.images_per_second, loop_images_per_second(shuffled, step, device, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--finetune-batches", type=int, default=None, help="default: 300 on a GPU, 10 on a CPU")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    print(f"device: {devices.describe(device)} · torch {torch.__version__}")
    data = synthetic(args.images)
    naive = epoch_times(data, device, args.epochs, cached=False)
    cached = epoch_times(data, device, args.epochs, cached=True)
    print(f"\nResNet-18 feature extraction, {args.images} images at 224×224, seconds per epoch")
    print(f"{'epoch':>5s} {'naive':>9s} {'cached':>9s} {'speed-up':>9s}")
    for i, (a, b) in enumerate(zip(naive, cached, strict=True), start=1):
        print(f"{i:5d} {a:9.2f} {b:9.3f} {a / b:8.1f}×")
    later_naive, later_cached = sum(naive[1:]) / (len(naive) - 1), sum(cached[1:]) / (len(cached) - 1)
    print(f"after the first epoch: {later_naive / later_cached:.0f}× faster per epoch")
    finetune_batches = args.finetune_batches if args.finetune_batches is not None else (
        10 if device.type == "cpu" else 300)
    if finetune_batches:
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # as the trainer sets it: both sides autotune
        ours, plain = finetune_throughput(device, finetune_batches)
        print("\nFull fine-tuning, batch 32")
        print(f"{'ours (trainer)':24s} {ours:8.1f} images/s")
        print(f"{'torchvision, plain loop':24s} {plain:8.1f} images/s   ratio {ours / plain:.2f}")


if __name__ == "__main__":
    main()
