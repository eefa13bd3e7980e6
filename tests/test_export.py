"""Exports (issue 22 §7): ONNX and .pt2 round trips checked by their own runtimes, the "as code" file run in a
fresh process, and the Training page's export buttons for a finished run."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core import export, export_code, models
from core.export import ExportError
from tests.apptest import no_exception, open_page

# Registry models small enough to export in a test, each at a small input it accepts.
SMALL = [("lenet5", 28), ("resnet18", 64)]


def _model(arch: str, size: int, classes: int = 10) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = models.build(arch, num_classes=classes, in_channels=1).eval()
    sidecar = {"arch": arch, "classes": [str(i) for i in range(classes)], "in_channels": 1, "input_size": size,
               "mean": [0.5], "std": [0.25], "run_id": "test-run", "which": "best", "strategy": "",
               "config": {"arch": arch, "epochs": 3, "batch_size": 64, "optimizer": "adam", "lr": 0.003,
                          "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "schedule": "onecycle",
                          "step_size": 30, "gamma": 0.1, "label_smoothing": 0.1}}
    return model, sidecar


def _within(reloaded: torch.Tensor, expected: torch.Tensor) -> bool:
    return float((reloaded - expected).abs().max()) <= export.TOLERANCE + export.RELATIVE * float(expected.abs().max())


@pytest.mark.parametrize(("arch", "size"), SMALL)
def test_onnx_round_trip_gives_the_models_outputs(arch: str, size: int) -> None:
    import onnxruntime

    model, sidecar = _model(arch, size)
    made = export.export(model, sidecar, "onnx")
    assert made.suffix == ".onnx" and made.max_difference <= made.tolerance
    # Checked here independently, on another batch size: the batch dimension is dynamic.
    images = torch.randn(3, 1, size, size)
    session = onnxruntime.InferenceSession(made.data, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert _within(torch.from_numpy(session.run(None, {"images": images.numpy()})[0]), model(images))


@pytest.mark.parametrize(("arch", "size"), [*SMALL, ("alexnet", 67)])
def test_pt2_round_trip_gives_the_models_outputs(arch: str, size: int) -> None:
    model, sidecar = _model(arch, size)
    made = export.export(model, sidecar, "pt2")
    assert made.suffix == ".pt2" and made.max_difference <= made.tolerance
    images = torch.randn(3, 1, size, size)
    program = torch.export.load(io.BytesIO(made.data))
    with torch.no_grad():
        assert _within(program.module()(images), model(images))


def test_an_onnx_export_the_exporter_cannot_make_says_why() -> None:
    # AlexNet below 223 px: its 1×1 map is pooled up to 6×6, which the TorchScript ONNX exporter refuses
    # (torch.export handles it, see above). The page shows this message instead of a file.
    model, sidecar = _model("alexnet", 67)
    with pytest.raises(ExportError, match="cannot be exported as ONNX: .*adaptive_avg_pool2d") as raised:
        export.export(model, sidecar, "onnx")
    assert len(str(raised.value)) < 300


def test_an_export_that_differs_from_the_model_is_refused() -> None:
    model, sidecar = _model("lenet5", 28)
    with pytest.raises(ExportError, match="differs from the model"):
        export.to_onnx(model, export.sample_for(sidecar), tolerance=-1.0)  # nothing is within a negative one
    with pytest.raises(ExportError, match="input size"):
        export.export(model, {"arch": "lenet5"}, "pt2")
    with pytest.raises(ExportError, match="Unknown export format"):
        export.export(model, sidecar, "tflite")  # type: ignore[arg-type]


def _write_code(tmp_path: Path, arch: str, size: int) -> tuple[Path, torch.nn.Module, dict]:
    """The "as code" file and its checkpoint in a fresh folder, as a user would download them."""
    model, sidecar = _model(arch, size)
    save_file(model.state_dict(), str(tmp_path / "weights.safetensors"))
    path = tmp_path / "run_as_code.py"
    path.write_text(export_code.as_code(model, sidecar, "weights.safetensors"))
    return path, model, sidecar


def _python(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Python in a fresh process in ``tmp_path``, with nothing of the app importable."""
    return subprocess.run([sys.executable, *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})


@pytest.mark.parametrize(("arch", "size"), [("lenet5", 28), ("resnet18", 64)])
def test_the_code_file_rebuilds_the_model_and_gives_its_outputs(tmp_path: Path, arch: str, size: int) -> None:
    path, model, sidecar = _write_code(tmp_path, arch, size)
    checked = _python(tmp_path, path.name, "--check")
    assert checked.returncode == 0, checked.stderr
    assert "same outputs" in checked.stdout and f"lr={sidecar['config']['lr']}" in checked.stdout
    # Imported, it gives the model's own outputs on other images, and the run's optimiser, schedule and loss.
    images = torch.randn(2, 1, size, size)
    torch.save(images, tmp_path / "images.pt")
    probe = ("import json, sys, torch; sys.path.insert(0, '.'); import run_as_code as run\n"
             "assert 'core' not in sys.modules\n"
             "model = run.load_model()\n"
             "optimizer, rate, loss = run.training_setup(model, steps_per_epoch=10)\n"
             "print(json.dumps({'outputs': model(torch.load('images.pt')).tolist(), 'optimizer': type(optimizer)."
             "__name__, 'lr': optimizer.param_groups[0]['initial_lr'], 'smoothing': loss.label_smoothing, "
             "'schedule': type(rate.scheduler).__name__}))")
    imported = _python(tmp_path, "-c", probe)
    assert imported.returncode == 0, imported.stderr
    found = json.loads(imported.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        assert _within(torch.tensor(found["outputs"]), model(images))
    assert (found["optimizer"], found["lr"], found["smoothing"], found["schedule"]) == ("Adam", 0.003 / 25, 0.1,
                                                                                       "OneCycleLR")


def test_the_code_file_notices_other_weights(tmp_path: Path) -> None:
    path, model, _ = _write_code(tmp_path, "lenet5", 28)
    state = {name: value + 0.01 for name, value in model.state_dict().items()}
    save_file(state, str(tmp_path / "weights.safetensors"))
    checked = _python(tmp_path, path.name, "--check")
    assert checked.returncode == 1 and "DIFFERENT" in checked.stdout


def test_the_code_export_refuses_a_transfer_model() -> None:
    model, sidecar = _model("lenet5", 28)
    with pytest.raises(ExportError, match="from scratch"):
        export_code.as_code(model, {**sidecar, "strategy": "full"}, "weights.safetensors")


def test_the_training_page_exports_a_finished_run(digits_run: str) -> None:
    at = open_page("training", run=digits_run)
    for kind in ("onnx", "pt2", "code"):
        at.button(key=f"export-{kind}-{digits_run}").click().run()
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
    buttons = [element for element in at.get("download_button")]
    keys = {element.proto.id for element in buttons}
    assert all(any(f"export-download-{kind}-{digits_run}" in key for key in keys) for kind in ("onnx", "pt2", "code"))
    shown = [c.value.replace("\\", "").replace("\u2060", "") for c in at.caption]  # as escaped by widgets.literal
    checks = [text for text in shown if text.startswith("Checked: reloaded with")]
    assert len(checks) == 2 and all(f"tolerance {export.describe()}" in text for text in checks)


def test_a_trained_runs_code_file_loads_its_downloaded_checkpoint(digits_run: str, tmp_path: Path) -> None:
    from explorer import export_view, services

    made = export_view.make(digits_run, "code")
    assert not made.problem, made.problem
    best = services.checkpoint_downloads(digits_run)["best"]
    (tmp_path / made.file_name).write_bytes(made.data)
    (tmp_path / made.file_name.replace(".py", ".safetensors")).write_bytes(best.weights)  # as both are downloaded
    checked = _python(tmp_path, made.file_name, "--check")
    assert checked.returncode == 0 and "same outputs" in checked.stdout, checked.stdout + checked.stderr


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (tests/run.sh "
                                                                   "installs it)")


@needs_dot
def test_a_dot_diagram_is_drawn_as_svg_and_png() -> None:
    source = 'digraph g { a [label="conv1\\n6×24×24"]; a -> b; }'
    svg = export.render_dot(source, "svg").decode()
    assert "<svg" in svg and "conv1" in svg and "6×24×24" in svg
    assert export.render_dot(source, "png").startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ExportError, match="could not draw"):
        export.render_dot("digraph { a -> ", "svg")


def test_without_graphviz_the_diagram_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ExportError, match="apt-get install graphviz"):
        export.render_dot("digraph { a }", "png")


@needs_dot
def test_the_architectures_page_offers_the_diagram_as_svg_png_and_dot() -> None:
    at = open_page("architectures", model="resnet18", tab="Block diagram", **{"open-resnet18": "layer1.0"})
    keys = {element.proto.id for element in at.get("download_button")}
    for format in ("svg", "png", "dot"):
        assert any(f"resnet18-topology-{format}" in key for key in keys), keys


def test_the_run_history_csv_holds_hyperparameters_and_final_metrics(digits_run: str) -> None:
    import pandas as pd

    from explorer import export_view, services

    table = pd.read_csv(io.BytesIO(export_view.history_csv()))
    row = table[table["run"] == digits_run].iloc[0]
    run = services.run_store().run(digits_run)
    last = services.run_store().metrics(digits_run, "epoch")[-1]
    assert (row["model"], row["status"], row["epochs_done"]) == ("lenet5", "completed", 3)
    assert float(row["config.lr"]) == run.config["lr"] and row["config.optimizer"] == run.config["optimizer"]
    assert row["final_val_acc"] == pytest.approx(last["val_acc"]) and row["test_acc"] == pytest.approx(
        run.test["accuracy"])
    at = open_page("training")
    assert any("history-csv" in element.proto.id for element in at.get("download_button"))


def _chart_formats(at) -> list[str]:
    return [json.loads(chart.proto.config)["toImageButtonOptions"]["format"] for chart in at.get("plotly_chart")]


def test_every_chart_downloads_png_or_svg_as_chosen_in_the_sidebar(digits_run: str) -> None:
    at = open_page("training", run=digits_run)  # the finished run's curves and confusion matrix, the overlay
    assert len(_chart_formats(at)) >= 2 and set(_chart_formats(at)) == {"png"}
    at.radio(key="chart-format").set_value("SVG").run()
    no_exception(at)
    assert set(_chart_formats(at)) == {"svg"}
    at.switch_page("../pages/architectures.py").run()  # the choice holds on every page
    assert _chart_formats(at) and set(_chart_formats(at)) == {"svg"}


def test_every_plotly_chart_of_the_app_takes_the_download_config() -> None:
    import ast

    root = Path(__file__).resolve().parents[1]
    calls = [(path.name, node.lineno) for folder in ("explorer", "pages") for path in (root / folder).glob("*.py")
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "plotly_chart"
             and not any(keyword.arg == "config" for keyword in node.keywords)]
    assert calls == []
