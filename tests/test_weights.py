"""Pretrained weights: loaded from a temporary TORCH_HOME, never downloaded; unsafe or wrong files refused."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import pickle
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
import timm
import tomllib
import torch
import torchvision
from safetensors.torch import save_file

from core import models, weights
from tests.conftest import LocalHub


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh weights cache; downloads go to a closed local port (the machine is "offline")."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with socket.socket() as probe:  # a port nobody listens on: connection refused, at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(weights.URL_BASE_VARIABLE, f"http://127.0.0.1:{port}/models")
    return tmp_path


def test_which_models_have_weights() -> None:
    assert weights.names_with_weights() == ["vgg16", "vgg19", "inception_v3", "xception", "resnet18", "resnet34",
                                            "resnet50", "resnet101", "resnet152", "googlenet", "mobilenet_v2",
                                            "efficientnet_b0"]
    info = weights.pretrained("resnet50")
    assert info.file_name == "resnet50-0676ba61.pth" and len(info.categories) == 1000
    assert (info.resize, info.crop, info.top1) == (256, 224, 76.13)
    assert weights.pretrained("xception").file_name == "xception-43020ad28.pth"
    assert weights.pretrained("lenet5") is None


def test_torchvision_weights_load_from_the_cache(torch_home: Path) -> None:
    reference = torchvision.models.resnet18(weights=None).eval()
    path = weights.expected_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth" and weights.is_cached("resnet18")
    model, info = weights.load_pretrained("resnet18", download=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
    assert info.categories[0] == "tench"


def test_inception_weights_keep_googles_input_scaling(torch_home: Path) -> None:
    reference = torchvision.models.inception_v3(weights=None, init_weights=True, aux_logits=True,
                                                transform_input=True).eval()
    path = weights.expected_file("inception_v3")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model, _ = weights.load_pretrained("inception_v3", download=False)
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():  # float64: random weights give huge logits
        torch.testing.assert_close(model.double()(x), reference.double()(x), rtol=1e-6, atol=1e-6)


def test_xception_takes_timms_legacy_weights(torch_home: Path) -> None:
    reference = timm.create_model("legacy_xception", pretrained=False).eval()
    path = weights.expected_file("xception")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model, info = weights.load_pretrained("xception", download=False)
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model.double()(x), reference.double()(x), rtol=1e-6, atol=1e-6)
    assert info.mean == (0.5, 0.5, 0.5)


def test_offline_without_the_file_names_it(torch_home: Path) -> None:
    with pytest.raises(weights.WeightsUnavailableError, match="resnet50-0676ba61.pth") as caught:
        weights.load_pretrained("resnet50", download=True)
    assert "offline" in str(caught.value) and "$TORCH_HOME/hub/checkpoints" in str(caught.value)
    assert str(torch_home) not in str(caught.value)  # no server path in a message a browser shows
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))  # no partial file left behind
    with pytest.raises(weights.WeightsError, match="no ImageNet weights"):
        weights.load_pretrained("lenet5")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": _Exploit()}))
    with pytest.raises(weights.WeightsError, match="cannot be read"):
        weights.read_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_junk_and_mismatched_files_are_refused(tmp_path: Path, torch_home: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(weights.WeightsError):
        weights.read_state_dict(junk)
    wrong = tmp_path / "lenet.safetensors"
    save_file(models.build("lenet5").state_dict(), str(wrong))
    with pytest.raises(weights.WeightsError, match="does not fit"):
        weights.install("resnet18", wrong)
    assert not weights.is_cached("resnet18")  # nothing stored when the file does not fit


def test_a_supplied_safetensors_file_is_checked_then_installed(tmp_path: Path, torch_home: Path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    supplied = tmp_path / "my-resnet18.safetensors"
    save_file(reference.state_dict(), str(supplied))
    installed = weights.install("resnet18", supplied, uploaded_as="my-resnet18.safetensors")
    assert not installed.official and not weights.expected_file("resnet18").exists()  # never the canonical name
    assert weights.installed("resnet18") == installed and installed.path.name.startswith("resnet18-supplied-")
    assert installed.provenance.startswith("supplied by upload, SHA-256 " + weights.sha256_of(supplied)[:16])
    model, _ = weights.load_pretrained("resnet18", download=False)
    assert torch.equal(model.fc.weight, reference.fc.weight)


# Downloads from a local server standing in for the hub ------------------------------------------------------


@pytest.fixture
def hub(torch_home: Path, monkeypatch: pytest.MonkeyPatch):
    server = LocalHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(weights.URL_BASE_VARIABLE, server.base)
    yield server
    server.shutdown()
    server.server_close()


def _official(monkeypatch: pytest.MonkeyPatch, name: str, payload: bytes) -> str:
    """Make ``payload`` the "official" file of ``name``: a file name carrying the start of its SHA-256."""
    file_name = f"{name}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    real = weights.pretrained

    def patched(model: str):
        info = real(model)
        return dataclasses.replace(info, url=f"https://download.example/models/{file_name}") if model == name else info

    monkeypatch.setattr(weights, "pretrained", patched)
    return file_name


def _saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    return torchvision.models.resnet18(weights=None).state_dict()


def _leftovers(torch_home: Path) -> list[str]:
    folder = torch_home / "hub" / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_download_streams_with_progress_checks_the_hash_and_loads_offline_after(
        hub: LocalHub, monkeypatch: pytest.MonkeyPatch, torch_home: Path, resnet18_state) -> None:
    payload = _saved(resnet18_state)
    file_name = _official(monkeypatch, "resnet18", payload)
    hub.files[file_name] = payload
    seen: list[tuple[int, int | None]] = []
    installed = weights.fetch("resnet18", progress=lambda done, total: seen.append((done, total)))
    assert installed.official and installed.path.name == file_name and _leftovers(torch_home) == [file_name]
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload)) and len(seen) > 3
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    hub.files.clear()  # from now on the cache alone must serve it
    model, _ = weights.load_pretrained("resnet18", download=False)
    assert torch.equal(model.fc.weight, resnet18_state["fc.weight"])


def test_a_download_whose_hash_differs_is_refused_and_leaves_nothing(
        hub: LocalHub, monkeypatch: pytest.MonkeyPatch, torch_home: Path, resnet18_state) -> None:
    file_name = _official(monkeypatch, "resnet18", _saved(resnet18_state))
    tampered = dict(resnet18_state, **{"fc.bias": resnet18_state["fc.bias"] + 1})
    hub.files[file_name] = _saved(tampered)
    with pytest.raises(weights.WeightsError, match="not the published"):
        weights.fetch("resnet18")
    assert _leftovers(torch_home) == [] and not weights.is_cached("resnet18")


def test_an_interrupted_download_leaves_nothing(hub: LocalHub, monkeypatch: pytest.MonkeyPatch, torch_home: Path,
                                                resnet18_state) -> None:
    payload = _saved(resnet18_state)
    file_name = _official(monkeypatch, "resnet18", payload)
    hub.files[file_name] = payload
    hub.cut.add(file_name)
    with pytest.raises(weights.WeightsError):
        weights.fetch("resnet18")
    assert _leftovers(torch_home) == []


def test_a_missing_file_on_the_server_is_named(hub: LocalHub, torch_home: Path) -> None:
    with pytest.raises(weights.WeightsUnavailableError, match="404"):
        weights.fetch("resnet34")
    assert _leftovers(torch_home) == []


def test_every_official_file_is_listed_with_its_size() -> None:
    sizes = {name: weights.pretrained(name).size_mb for name in weights.names_with_weights()}
    assert sizes["vgg19"] == pytest.approx(548.051) and weights.largest_file_mb() == sizes["vgg19"]
    assert all(size > 10 for size in sizes.values())  # real files (MobileNetV2's is the smallest, 13.6 MB)
    assert weights.pretrained("resnet18").sha256_prefix == "f37072fd"
    assert weights.pretrained("xception").sha256_prefix is None  # Cadene's name is not a checkable SHA-256


def test_the_server_upload_limit_takes_the_largest_official_file() -> None:
    config = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] >= math.ceil(weights.largest_file_mb())


# Hardening: every supplied file is bounded and checked before use --------------------------------------------


def _deflated(payload: bytes) -> bytes:
    """The same .pth with every record deflate-compressed (torch.load still reads it)."""
    source = zipfile.ZipFile(io.BytesIO(payload))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for record in source.infolist():
            target.writestr(record.filename, source.read(record))
    return out.getvalue()


def test_a_compressed_pth_bomb_is_refused_before_anything_is_decompressed(
        tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.pth"
    bomb.write_bytes(_deflated(_saved({"fc.weight": torch.zeros(64 * 1024 * 1024 // 4)})))  # 64 MB of zeros
    assert bomb.stat().st_size < 1024 * 1024

    def never(*args, **kwargs):
        raise AssertionError("torch.load must not see a bomb")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(weights.WeightsError, match="inflate"):
        weights.install("resnet18", bomb)
    assert _leftovers(torch_home) == []


def test_a_record_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.pth"
    path.write_bytes(_saved({"w": torch.zeros(1000)}))
    with pytest.raises(weights.WeightsError, match="cap"):
        weights.check_archive(path, max_record_bytes=1000)
    weights.check_archive(path)  # within the default cap


@pytest.mark.parametrize("spoil, message", [
    (lambda s: s.__setitem__("conv1.weight", torch.full_like(s["conv1.weight"], float("nan"))), "non-finite"),
    (lambda s: s.__setitem__("fc.weight", s["fc.weight"].to(torch.complex64)), "complex"),
    (lambda s: s.__setitem__("fc.weight", s["fc.weight"].to(torch.int32)), "int32"),
    (lambda s: s.__setitem__("fc.weight", torch.zeros(10, 512)), "does not fit"),
], ids=["nan", "complex", "int", "shape"])
def test_weights_that_cannot_be_weights_are_refused(tmp_path: Path, torch_home: Path, resnet18_state, spoil,
                                                    message: str) -> None:
    state = dict(resnet18_state)
    spoil(state)
    path = tmp_path / "spoilt.pth"
    path.write_bytes(_saved(state))
    with pytest.raises(weights.WeightsError, match=message):
        weights.install("resnet18", path)
    assert _leftovers(torch_home) == [] and not weights.is_cached("resnet18")


def test_a_supplied_pth_that_is_the_official_file_takes_the_canonical_name(
        tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch, resnet18_state) -> None:
    payload = _saved(resnet18_state)
    file_name = _official(monkeypatch, "resnet18", payload)
    path = tmp_path / "whatever.pth"
    path.write_bytes(payload)
    installed = weights.install("resnet18", path, uploaded_as="whatever.pth")
    assert installed.official and installed.path.name == file_name
    assert installed.provenance == f"official file {file_name}"


def test_a_supplied_pth_that_differs_keeps_its_own_name(tmp_path: Path, torch_home: Path, resnet18_state) -> None:
    path = tmp_path / "resnet18-f37072fd.pth"  # claims the canonical name; its content is not the official file
    path.write_bytes(_saved(resnet18_state))
    installed = weights.install("resnet18", path, uploaded_as=path.name)
    assert not installed.official and not weights.expected_file("resnet18").exists()
    assert installed.provenance == f"supplied by upload, SHA-256 {weights.sha256_of(path)[:16]}…"
    assert installed.uploaded_as == "resnet18-f37072fd.pth"
    assert weights.installed("resnet18") == installed


# What issue 18's hostile inputs found ------------------------------------------------------------------------------


def test_float64_weights_that_overflow_float32_are_refused(tmp_path: Path, torch_home: Path, resnet18_state) -> None:
    """1e300 is finite in float64 and infinite in the model's float32: checked after the cast, never installed."""
    state = {key: value.double() if value.is_floating_point() else value for key, value in resnet18_state.items()}
    state["fc.weight"] = state["fc.weight"].clone()
    state["fc.weight"][0, 0] = 1e300
    path = tmp_path / "float64.pth"
    path.write_bytes(_saved(state))
    with pytest.raises(weights.WeightsError, match="non-finite values .* as torch.float32"):
        weights.install("resnet18", path)
    assert _leftovers(torch_home) == [] and not weights.is_cached("resnet18")


def test_huge_key_names_make_a_short_message(tmp_path: Path, torch_home: Path, resnet18_state) -> None:
    """A key name of megabytes (250 MB in the issue) went whole into the message: at most a few names, each cut."""
    state = dict(resnet18_state)
    state.update({f"{i}" + "k" * (1 << 20): torch.zeros(1) for i in range(8)})  # eight 1 MiB names
    path = tmp_path / "long-names.safetensors"
    save_file(state, str(path))
    with pytest.raises(weights.WeightsError, match="does not fit") as caught:
        weights.install("resnet18", path, uploaded_as="x" * 100_000 + ".safetensors")
    message = str(caught.value)
    assert len(message) < 1000, len(message)
    assert "8 problems" in message and "and 4 more" in message


def test_torchs_refusal_reaches_no_escape_codes_and_no_advice_to_unpickle(tmp_path: Path) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"fc.weight": torch.zeros(2), "extra": _Plain()}, path)
    with pytest.raises(weights.WeightsError, match="not unpickled") as caught:
        weights.read_state_dict(path)
    message = str(caught.value)
    assert "\x1b" not in message and "weights_only" not in message and "add_safe_globals" not in message
    assert "_Plain" in message  # what torch refused is still named


class _Plain:
    """A harmless object: torch's safe loader refuses it all the same."""


def test_uploaded_weights_are_staged_in_the_state_folder(tmp_path: Path, torch_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the system temp folder (up to 549 MB, left there if the server died mid-check); old leftovers go."""
    from core.runs import state_dir
    from explorer import services

    staging = services.staging_root()
    assert staging.is_relative_to(state_dir())
    staging.mkdir(parents=True, exist_ok=True)
    stale, fresh = staging / "tmp-stale", staging / "tmp-fresh"
    for folder in (stale, fresh):
        folder.mkdir(exist_ok=True)
        (folder / "upload.pth").write_bytes(b"left by a server that stopped")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    seen: list[Path] = []

    def install(name: str, supplied: Path, uploaded_as: str | None = None) -> weights.Installed:
        seen.append(supplied)
        assert supplied.read_bytes() == b"weights"
        raise weights.WeightsError("checked")

    monkeypatch.setattr(weights, "install", install)
    with pytest.raises(weights.WeightsError, match="checked"):
        services.install_weights("resnet18", "mine.pth", b"weights")
    assert seen and seen[0].is_relative_to(staging)
    assert not seen[0].exists()  # removed after the check, whatever its outcome
    assert not stale.exists() and fresh.exists()
