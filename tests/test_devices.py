"""Device choice: CUDA, then Apple MPS, then the CPU; the choices are one Literal type."""

from __future__ import annotations

import typing

import pytest

from core import devices, paths
from core.errors import InvalidArgumentError


def test_device_choice() -> None:
    assert devices.pick_device().type == devices.available()[0]
    assert devices.pick_device("cpu").type == "cpu"
    assert "CPU" in devices.describe(devices.pick_device("cpu"))
    with pytest.raises(InvalidArgumentError):
        devices.pick_device("tpu")  # type: ignore[arg-type]
    missing = next((d for d in ("cuda", "mps") if d not in devices.available()), None)
    if missing:
        with pytest.raises(InvalidArgumentError, match=missing.upper()):
            devices.pick_device(missing)  # type: ignore[arg-type]


def test_the_choices_are_the_literal_type() -> None:
    assert devices.CHOICES == typing.get_args(devices.Device) == ("auto", "cuda", "mps", "cpu")
    assert all(devices.is_device(choice) for choice in devices.CHOICES)
    assert not devices.is_device("CPU") and not devices.is_device("")
    assert set(devices.available()) <= set(devices.CHOICES)


@pytest.mark.parametrize(("threads", "cores", "said"), [(1, 2, "1 thread of 2 cores"), (2, 1, "2 threads of 1 core"),
                                                        (4, 8, "4 threads of 8 cores")])
def test_a_cpu_is_described_in_plain_numbers(monkeypatch: pytest.MonkeyPatch, threads: int, cores: int,
                                             said: str) -> None:
    monkeypatch.setattr(devices.torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: cores)
    assert devices.describe(devices.torch.device("cpu")).endswith(said)


@pytest.mark.parametrize(("native", "setting", "expected"), [(True, None, True), (True, "0", False), (False, None, False)])
def test_cpu_training_takes_bfloat16_only_where_the_cpu_computes_in_it(
        monkeypatch: pytest.MonkeyPatch, native: bool, setting: str | None, expected: bool) -> None:
    monkeypatch.setattr(devices.torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(devices.torch.cpu, "_is_amx_tile_supported", lambda: native)
    if setting is None:
        monkeypatch.delenv(paths.CPU_BFLOAT16_ENV, raising=False)
    else:
        monkeypatch.setenv(paths.CPU_BFLOAT16_ENV, setting)
    cpu = devices.torch.device("cpu")
    assert devices.cpu_bfloat16() is expected
    with devices.training_autocast(cpu):
        product = devices.torch.ones(4, 4) @ devices.torch.ones(4, 4)
    assert product.dtype == (devices.torch.bfloat16 if expected else devices.torch.float32)
    with devices.autocast(cpu):  # evaluation and inference stay in float32 on a CPU
        assert (devices.torch.ones(4, 4) @ devices.torch.ones(4, 4)).dtype == devices.torch.float32


def test_convolutions_train_channels_last_on_cuda_and_the_cpu() -> None:
    assert devices.channels_last(devices.torch.device("cpu"))
    assert devices.channels_last(devices.torch.device("cuda"))
    assert not devices.channels_last(devices.torch.device("mps"))
