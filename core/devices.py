"""Pick the compute device: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Literal, TypeGuard, get_args

import torch

from core import paths
from core.errors import InvalidArgumentError

Device = Literal["auto", "cuda", "mps", "cpu"]  # "auto": the best this machine has
CHOICES: tuple[Device, ...] = get_args(Device)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available() -> list[str]:
    """The device types usable on this machine, best first."""
    found = ["cuda"] if torch.cuda.is_available() else []
    if _mps_available():
        found.append("mps")
    return [*found, "cpu"]


def is_device(text: str) -> TypeGuard[Device]:
    """True when ``text`` names one of the device choices."""
    return text in CHOICES


def pick_device(preference: Device = "auto") -> torch.device:
    """Return the device for ``preference``: "auto" takes CUDA, then MPS, then CPU.

    An unknown name, or a device this machine lacks, raises InvalidArgumentError.
    """
    if not is_device(preference):  # a string from a form or the command line
        raise InvalidArgumentError(f"Unknown device {preference!r}; choose one of {', '.join(CHOICES)}.")
    usable = available()
    if preference == "auto":
        return torch.device(usable[0])
    if preference not in usable:
        raise InvalidArgumentError(f"No {preference.upper()} device on this machine; available: {', '.join(usable)}.")
    return torch.device(preference)


def describe(device: torch.device) -> str:
    """A human-readable name, e.g. "CUDA · NVIDIA H100 80GB HBM3" or "CPU · x86_64, 2 threads"."""
    if device.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return f"Apple MPS · {platform.machine()}"
    cpu = platform.processor() or platform.machine()
    threads, cores = torch.get_num_threads(), os.cpu_count()
    return f"CPU · {cpu}, {threads} thread{'s' * (threads != 1)} of {cores} core{'s' * (cores != 1)}"


def autocast(device: torch.device, cache: bool = True) -> contextlib.AbstractContextManager[object]:
    """The mixed precision everything here computes in: bfloat16 autocast on CUDA, full precision elsewhere.

    ``cache=False`` for code captured in a CUDA graph: autocast's cache of cast weights must not outlive a
    capture (PyTorch's CUDA-graph notes)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)


def cpu_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX) and the setting allows it
    (``$CNN_EXPLORER_CPU_BFLOAT16``). Elsewhere bfloat16 is emulated and slower than float32."""
    if not paths.cpu_bfloat16():
        return False
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None)
    return any(check is not None and check() for check in native)


def trains_cpu_in_bfloat16(device: torch.device) -> bool:
    """Whether training steps on ``device`` are a CPU's in bfloat16 (``cpu_bfloat16``): the one case where
    training and evaluation compute in different precisions."""
    return device.type == "cpu" and cpu_bfloat16()


def training_autocast(device: torch.device, cache: bool = True) -> contextlib.AbstractContextManager[object]:
    """The mixed precision a training step computes in: bfloat16 autocast on CUDA, and on a CPU that has
    bfloat16 arithmetic (``cpu_bfloat16``: LeNet-5's step is ~25 % faster in it on an AMX CPU,
    ``benchmarks/train_mnist.py``); float32 elsewhere. Evaluation and inference keep ``autocast``'s choice."""
    if trains_cpu_in_bfloat16(device):
        return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=cache)
    return autocast(device, cache)


def channels_last(device: torch.device) -> bool:
    """Whether convolutions train fastest here with their activations stored channels-last: on CUDA (cuDNN's
    tensor-core kernels) and on the CPU (oneDNN's blocked kernels: LeNet-5's step is ~20 % faster on an AVX-512
    CPU, ``benchmarks/train_mnist.py``), not on MPS."""
    return device.type in ("cuda", "cpu")


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (a no-op on the CPU): a clock read without it
    on a GPU times only the kernel launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def inference_threads(reserved: int, cores: int | None = None) -> int:
    """CPU threads for the web server's own forward passes: the ``cores`` (default: this machine's) that the
    training workers do not hold (``reserved`` threads), at least 1.

    With PyTorch's default (a thread per core) beside a worker training on one of two cores, three busy threads
    share two cores and both sides slow down (benchmarks/latency_load.py measures it).
    """
    cores = cores if cores is not None else os.cpu_count() or 1
    return max(cores - max(reserved, 0), 1)


def use_threads(threads: int) -> None:
    """Make the calling thread's PyTorch CPU work use ``threads`` threads.

    PyTorch's count is per thread (OpenMP): a count set in one thread reaches threads that start computing later,
    never one that has already computed (a Streamlit script thread, say), so every thread calls this before its
    forward passes.
    """
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
