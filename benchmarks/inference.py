"""Inference speed of our models against the reference implementations, same weights, same run.

    python -m benchmarks.inference                                  # every model with a reference
    python -m benchmarks.inference --models resnet50 --large-batch 16 --repeats 5
    python -m benchmarks.inference --compile                        # also report torch.compile

References: torchvision's VGG-16/19, ResNet-18…152 and Inception-v3, timm's legacy Xception.
Images/s at batch 1 and at a large batch (256 on a GPU), eval mode, no gradients; on CUDA in
bfloat16 autocast with channels_last. The ratio ours / reference should be ≥ 0.97. Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import timm
import torch
import torchvision

from core import devices, models

REFERENCES = {
    "vgg16": lambda: torchvision.models.vgg16(weights=None),
    "vgg19": lambda: torchvision.models.vgg19(weights=None),
    "inception_v3": lambda: torchvision.models.inception_v3(weights=None, init_weights=True, aux_logits=True),
    "xception": lambda: timm.create_model("legacy_xception", pretrained=False),
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "resnet34": lambda: torchvision.models.resnet34(weights=None),
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
    "resnet101": lambda: torchvision.models.resnet101(weights=None),
    "resnet152": lambda: torchvision.models.resnet152(weights=None),
}


def images_per_second(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median throughput over ``repeats`` timed passes after two warm-up passes."""
    device = x.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), autocast:
        for i in range(repeats + 2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(REFERENCES))
    parser.add_argument("--large-batch", type=int, default=None, help="default: 256 on a GPU, 16 on a CPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of our model")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    large = args.large_batch or (256 if device.type == "cuda" else 16)
    print(f"device: {devices.describe(device)} · torch {torch.__version__}")
    header = f"{'model':13s} {'batch':>5s} {'ours img/s':>11s} {'reference':>10s} {'ratio':>6s}"
    header += f" {'compiled':>9s}" if args.compile else ""
    print(header)
    print("-" * len(header))
    for name in args.models:
        size = models.spec(name).input_size
        reference = REFERENCES[name]().eval()
        ours = models.build(name).eval()
        ours.load_state_dict(reference.state_dict())  # same weights: only the implementation differs
        ours, reference = ours.to(device), reference.to(device)
        if device.type == "cuda":
            ours = ours.to(memory_format=torch.channels_last)
            reference = reference.to(memory_format=torch.channels_last)
        compiled = torch.compile(ours) if args.compile else None
        for batch in (1, large):
            x = torch.randn(batch, 3, size, size, device=device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            mine = images_per_second(ours, x, args.repeats)
            theirs = images_per_second(reference, x, args.repeats)
            line = f"{name:13s} {batch:5d} {mine:11.1f} {theirs:10.1f} {mine / theirs:6.2f}"
            if compiled is not None:
                line += f" {images_per_second(compiled, x, args.repeats):9.1f}"
            print(line, flush=True)
        del ours, reference, compiled
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
