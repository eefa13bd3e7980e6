"""The weights panel (Classify and Transfer) and Classify's default model, through AppTest."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from core import weights
from tests.conftest import LocalHub

APP = str(Path(__file__).resolve().parents[1] / "explorer" / "app.py")


def open_page(page: str) -> AppTest:
    """The app, switched to ``page``, rendered without an exception."""
    at = AppTest.from_file(APP, default_timeout=120)  # importing torch alone exceeds AppTest's 3 s default
    at.run()
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache; "the hub" is a closed port unless a test serves files."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(weights.URL_BASE_VARIABLE, "http://127.0.0.1:9/models")
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_classify_on_a_fresh_install_says_what_to_do(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    monkeypatch.setattr(services, "classifier_choices", lambda **_: [])
    at = open_page("classify")
    table = at.dataframe[0].value
    assert len(table) == len(weights.names_with_weights()) and set(table["here"]) == {"—"}
    assert table.set_index("model").loc["VGG-19", "size MB"] == 548.1
    warning = " ".join(w.value for w in at.warning)
    assert "resnet18-f37072fd.pth" in warning and "44.7 MB" in warning
    offline = " ".join(m.value for m in at.markdown)
    assert "`$TORCH_HOME/hub/checkpoints`" in offline and str(fresh_cache) not in offline
    assert any("Download ResNet-18" in b.label for b in at.button)
    at.button(key="classify-weights-download-resnet18").click().run()  # offline: said so, nothing left behind
    assert not at.exception
    shown = [e.value.replace("\\", "") for e in at.error]  # messages are escaped Markdown
    assert any("offline" in text and "resnet18-f37072fd.pth" in text for text in shown), shown
    assert not fresh_cache.exists() or not list(fresh_cache.iterdir())


def test_one_click_downloads_the_weights_with_progress(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    file_name = f"resnet18-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    real = weights.pretrained
    monkeypatch.setattr(weights, "pretrained", lambda name: dataclasses.replace(
        real(name), url=f"https://example.org/{file_name}") if name == "resnet18" else real(name))
    hub = LocalHub()
    hub.files[file_name] = payload
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    monkeypatch.setenv(weights.URL_BASE_VARIABLE, hub.base)
    try:
        at = open_page("transfer")
        at.button(key="transfer-weights-download-resnet18").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert (fresh_cache / file_name).is_file()
        assert any("on this machine (official file" in s.value for s in at.success)
    finally:
        hub.shutdown()
        hub.server_close()


def test_an_uploaded_file_is_checked_and_shown_as_supplied(fresh_cache: Path, tmp_path: Path) -> None:
    at = open_page("transfer")
    at.file_uploader(key="transfer-weights-upload-resnet18").upload("w.pth", b"junk", "application/octet-stream").run()
    assert any("cannot be read" in e.value for e in at.error)  # refused, page intact
    good = tmp_path / "mine.safetensors"
    save_file(torchvision.models.resnet18(weights=None).state_dict(), str(good))
    at.file_uploader(key="transfer-weights-upload-resnet18").upload(
        "[click](https://evil.example).safetensors", good.read_bytes(), "application/octet-stream").run()
    assert not at.exception
    shown = " ".join(s.value for s in at.success)
    assert "supplied by upload, SHA-256" in shown and "evil" not in shown  # the provenance, not a user's text
    assert not (fresh_cache / "resnet18-f37072fd.pth").exists()


class _Plain:
    """A harmless object: torch's safe loader refuses it, with escape codes and advice in its message."""


def test_hostile_weights_uploads_get_short_plain_messages_and_install_nothing(fresh_cache: Path,
                                                                             tmp_path: Path) -> None:
    """Issue 18: float64 weights of 1e300 (inf once in float32) installed; a megabyte key name made a message over
    Streamlit's limit; torch's escape codes and its advice to pass weights_only=False reached the page."""
    state = torchvision.models.resnet18(weights=None).state_dict()
    wide = {key: value.double() if value.is_floating_point() else value for key, value in state.items()}
    wide["fc.bias"] = torch.full_like(wide["fc.bias"], 1e300)
    named = {**state, **{f"{i}" + "k" * (1 << 20): torch.zeros(1) for i in range(6)}}
    cases = {"wide.safetensors": (wide, "non-finite values"), "named.safetensors": (named, "and 2 more"),
             "objects.pth": ({"fc.weight": torch.zeros(2), "x": _Plain()}, "not unpickled")}
    at = open_page("transfer")
    for name, (content, words) in cases.items():
        path = tmp_path / name
        if name.endswith(".pth"):
            torch.save(content, path)
        else:
            save_file(content, str(path))
        at.file_uploader(key="transfer-weights-upload-resnet18").upload(
            name, path.read_bytes(), "application/octet-stream").run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [e.value.replace("\\", "") for e in at.error]
        assert any(words in text for text in shown), (name, shown)
        assert all(len(text) < 1500 and "\x1b" not in text and "weights_only" not in text for text in shown), shown
        assert weights.installed("resnet18") is None


def test_the_weights_uploader_takes_full_size_files() -> None:
    import tomllib

    from explorer import services

    assert services.WEIGHTS_UPLOAD_MB >= 549  # VGG-19: 548.05 MiB
    config = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] >= services.WEIGHTS_UPLOAD_MB  # the server lets it through


def test_classify_opens_on_the_most_accurate_run_not_the_newest() -> None:
    from core import classifiers

    good = classifiers.Choice("run:good", "good")
    bad = classifiers.Choice("run:bad", "bad")
    store_runs = [SimpleNamespace(id="bad", test_accuracy=0.348), SimpleNamespace(id="good", test_accuracy=0.97)]

    class Store:
        def runs(self, limit: int = 100) -> list[SimpleNamespace]:
            return store_runs

    assert classifiers.best_choice([bad, good], Store()) == "run:good"  # the newest (first) is worse
    imagenet = [classifiers.Choice("imagenet:resnet18", "r18"), classifiers.Choice("imagenet:resnet50", "r50")]
    assert classifiers.best_choice([bad, *imagenet, good], Store()) == "imagenet:resnet50"
    assert classifiers.best_choice([], Store()) is None
