"""Pretrained weights: loaded from a temporary TORCH_HOME, never downloaded; unsafe or wrong files refused."""

from __future__ import annotations

import os
import pickle
import urllib.error
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from core import models, weights


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path


def test_which_models_have_weights() -> None:
    assert weights.names_with_weights() == ["vgg16", "vgg19", "inception_v3", "xception", "resnet18", "resnet34",
                                            "resnet50", "resnet101", "resnet152"]
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
    assert str(torch_home) in str(caught.value)
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
    installed = weights.install("resnet18", supplied)
    assert installed == weights.expected_file("resnet18")
    model, _ = weights.load_pretrained("resnet18", download=False)
    assert torch.equal(model.fc.weight, reference.fc.weight)
