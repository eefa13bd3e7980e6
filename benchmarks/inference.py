"""Inference speed of our models against the reference implementations, same weights, same run.

    python -m benchmarks.inference                                  # every model with a reference
    python -m benchmarks.inference --models resnet50 --large-batch 16 --repeats 5
    python -m benchmarks.inference --compile                        # also report torch.compile, every model
    python -m benchmarks.inference --compile resnet50 resnet18      # torch.compile of these models only

References: torchvision's VGG-16/19, ResNet-18…152 and Inception-v3, timm's legacy Xception.
Images/s at batch 1 and at a large batch (256 on a GPU), eval mode, no gradients; on CUDA in
bfloat16 autocast with channels_last. Ours and the reference are timed in alternation (so clock
boosts and other drift hit both alike), each sample long enough to average out launch jitter; the
median sample counts. The ratio ours / reference should be ≥ 0.97. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
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


def _sample(model: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    """Seconds per call of ``calls`` back-to-back forward passes (the device waited for at both ends)."""
    devices.synchronize(x.device)
    start = time.perf_counter()
    for _ in range(calls):
        model(x)
    devices.synchronize(x.device)
    return (time.perf_counter() - start) / calls


def compare(contenders: dict[str, torch.nn.Module], x: torch.Tensor, repeats: int,
            sample_seconds: float = 0.05) -> dict[str, float]:
    """Images/s of each model on ``x``: warm up, then ``repeats`` rounds timing each in turn; medians."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with torch.inference_mode(), devices.autocast(x.device):
        calls = {}
        for name, model in contenders.items():
            for _ in range(2):  # warm-up: cuDNN autotuning, the allocator, a compiled graph's first call
                model(x)
            calls[name] = max(1, min(100, round(sample_seconds / _sample(model, x, 1))))
        for _ in range(repeats):
            for name, model in contenders.items():
                times[name].append(_sample(model, x, calls[name]))
    return {name: len(x) / statistics.median(samples) for name, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(REFERENCES))
    parser.add_argument("--large-batch", type=int, default=None, help="default: 256 on a GPU, 16 on a CPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", nargs="*", default=None, metavar="MODEL",
                        help="also time torch.compile of our model (of these models only, if named)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    large = args.large_batch or (256 if device.type == "cuda" else 16)
    print(f"device: {devices.describe(device)} · torch {torch.__version__}")
    compiling = set(args.models if args.compile == [] else args.compile or ())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes, as in training: both sides autotune
    header = f"{'model':13s} {'batch':>5s} {'ours img/s':>11s} {'reference':>10s} {'ratio':>6s}"
    header += f" {'compiled':>9s}" if compiling else ""
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
        for batch in (1, large):
            x = torch.randn(batch, 3, size, size, device=device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            contenders = {"ours": ours, "reference": reference}
            if name in compiling:  # one graph per batch size: no recompilation inside the timing
                contenders["compiled"] = torch.compile(ours, dynamic=False)
            rates = compare(contenders, x, args.repeats)
            line = f"{name:13s} {batch:5d} {rates['ours']:11.1f} {rates['reference']:10.1f} "
            line += f"{rates['ours'] / rates['reference']:6.2f}"
            if compiling:
                line += f" {rates['compiled']:9.1f}" if "compiled" in rates else f" {'—':>9s}"
            print(line, flush=True)
            del contenders
        if name in compiling:
            torch._dynamo.reset()  # drop this model's graphs before the next one compiles
        del ours, reference
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
