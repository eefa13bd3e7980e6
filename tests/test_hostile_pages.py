"""Hostile and careless input through the pages (AppTest): every image mode and bomb, every bad zip and bad file
in a set, markdown in every text a user or a file controls, the server-folder box, upload limits and unexpected
errors; each followed by a good input in the same session."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from google.protobuf.message import Message
from streamlit.testing.v1 import AppTest

from tests import apptest, hostile

TIMEOUT = 180
UNEXPECTED = "Something went wrong on this page"
# What must never appear unescaped in anything Markdown renders (the raw pieces of hostile.MARKDOWN and friends).
RAW = ("[Click here](", "![t](", "**b**", "<b>", "<img", "https://example.com")
RAW_HTML = ("<b>html</b>", "<img src=x", "onerror")  # the hostile names' own markup, unescaped
MARKDOWN_FIELDS = ("body", "label", "caption", "help", "placeholder", "text")


def open_page(page: str | None = None, **query: str) -> AppTest:
    return apptest.open_page(page, check=healthy, timeout=TIMEOUT, **query)


def healthy(at: AppTest) -> None:
    """No exception, no unexpected-error message, no server path, and markdown shows user text literally."""
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert not any(UNEXPECTED in e for e in errors), errors
    texts = list(markdown_texts(at))
    state = os.environ["CNN_EXPLORER_STATE"]
    assert not [t for t in texts if state in t], "an absolute server path reached the page"
    # Markdown must show user text literally; HTML the app writes itself (st.html: pictures, grids) must hold it escaped.
    leaks = [t for t in texts if any(raw in re.sub(r"\\.", "", t) for raw in (RAW_HTML if t.startswith("Html:") else RAW))]
    assert not leaks, leaks
    # bare URLs, addresses and :codes: are linked or replaced after escapes are resolved: each needs its joiner
    links = [t for t in texts if re.search(r"://example|www\.example|\w@example|:(smile|red|material)", t.replace("\\", ""))]
    assert not links, links
    for chart in at.get("plotly_chart"):
        spec = json.dumps(json.loads(chart.proto.spec), ensure_ascii=False)  # Plotly's JSON writes "<" as \\u003c
        assert not [raw for raw in ("<img", "<b>html", "<b>bold") if raw in spec], "a hostile name's HTML reached a chart"


def _nodes(node) -> Iterator:
    yield node
    children = getattr(node, "children", None) or {}
    for child in children.values():
        yield from _nodes(child)


def _strings(proto: Message) -> Iterator[str]:
    """Every Markdown-rendered string of an element: a metric's value and label too (issue 18: a class name as
    Classify's "Prediction" value was a live link), and a radio's options."""
    fields = MARKDOWN_FIELDS + (("options",) if type(proto).__name__ == "Radio" else ())
    for field, value in proto.ListFields():
        if field.type not in (field.TYPE_MESSAGE, field.TYPE_STRING):
            continue
        items = [value] if isinstance(value, (str, Message)) else list(value)
        if field.type == field.TYPE_MESSAGE:
            for item in items:
                yield from _strings(item)
        elif field.type == field.TYPE_STRING and field.name in fields:
            yield from items


def markdown_texts(at: AppTest) -> Iterator[str]:
    """Every string of the page that Streamlit renders as Markdown (bodies, labels, captions, help)."""
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if isinstance(proto, Message) and type(proto).__name__ not in ("Arrow", "PlotlyChart"):
            yield from (f"{type(proto).__name__}: {text}" for text in _strings(proto))


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error).replace("\\", "")


def classify_upload(digits_run: str) -> AppTest:
    at = open_page("classify")
    at.selectbox(key="classify-model").set_value(f"run:{digits_run}").run()
    at.radio(key="classify-source").set_value("Upload").run()
    healthy(at)
    return at


def upload_good_image(at: AppTest) -> None:
    good = hostile.encode(hostile.gradient("L", (120, 120)))
    at.file_uploader(key="classify-upload").upload("good.png", good, "image/png").run()
    healthy(at)
    assert not at.error and "Prediction" in {m.label for m in at.metric}


# Images ---------------------------------------------------------------------------------------------------------


def test_every_image_mode_classifies_and_every_step_displays(digits_run: str) -> None:
    at = classify_upload(digits_run)
    for mode, format_ in hostile.FILE_MODES:
        name = f"{mode.replace(';', '-')}{hostile.EXTENSION[format_]}"
        at.file_uploader(key="classify-upload").upload(name, hostile.image_file(mode, format_, (96, 64)),
                                                       "application/octet-stream").run()
        healthy(at)
        assert not at.error, (mode, format_, errors(at))
        assert "Prediction" in {m.label for m in at.metric}, (mode, format_)
        assert len(at.get("image")) >= 3
    upload_good_image(at)


def test_bombs_and_broken_images_in_every_format_get_a_message(digits_run: str) -> None:
    at = classify_upload(digits_run)
    cases = [(f"bomb{hostile.EXTENSION[f]}", hostile.claims(f), "pixels") for f in hostile.CLAIMS]
    cases += [(f"cut{hostile.EXTENSION[f]}", hostile.truncated(f), "truncated|not an image")
              for f in ("PNG", "JPEG", "GIF", "TIFF", "WEBP")]
    cases += [("huge.png", hostile.png_stream(13000, 13000), "pixels"), ("empty.png", b"", "empty")]
    for name, payload, message in cases:
        at.file_uploader(key="classify-upload").upload(name, payload, "application/octet-stream").run()
        healthy(at)
        assert re.search(message, errors(at)), (name, errors(at))
        upload_good_image(at)


def test_an_upload_over_the_uploaders_limit_is_refused_by_the_server(digits_run: str) -> None:
    """Streamlit's server enforces only the global limit; a client that skips the browser's check meets ours."""
    from explorer import widgets

    at = classify_upload(digits_run)
    too_big = b"\0" * (widgets.IMAGE_UPLOAD_MB * 2**20 + 1)
    at.file_uploader(key="classify-upload").upload("big.png", too_big, "image/png").run()
    healthy(at)
    assert f"this upload takes at most {widgets.IMAGE_UPLOAD_MB} MiB" in errors(at)
    at.file_uploader(key="classify-upload").clear().run()
    upload_good_image(at)


def test_a_camera_shot_over_the_image_limit_is_refused(digits_run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: the camera input skipped the upload size check (a client can send a shot of any size)."""
    import streamlit

    from explorer import widgets

    class Shot:  # what st.camera_input returns, as large as a client may make it
        name = "camera.jpg"
        size = widgets.IMAGE_UPLOAD_MB * 2**20 + 1

        def getvalue(self) -> bytes:
            return b"\0" * self.size

    monkeypatch.setattr(streamlit, "camera_input", lambda *_args, **_kwargs: Shot())
    at = classify_upload(digits_run)
    at.radio(key="classify-source").set_value("Camera").run()
    healthy(at)
    assert f"this upload takes at most {widgets.IMAGE_UPLOAD_MB} MiB" in errors(at)
    assert "Prediction" not in {m.label for m in at.metric}


def test_a_markdown_file_name_is_shown_literally(digits_run: str) -> None:
    at = classify_upload(digits_run)
    good = hostile.encode(hostile.gradient("L", (120, 120)))
    uploader = at.file_uploader(key="classify-upload")
    uploader.upload(f"{hostile.MARKDOWN}.png", good, "image/png")
    uploader.upload("junk ![t](https:example.com).png", b"junk", "image/png")
    at.run()
    healthy(at)
    at.selectbox(key="classify-pick").set_value(f"{hostile.MARKDOWN}.png").run()
    healthy(at)
    at.button(key="classify-all").click().run()
    healthy(at)


# Text is text: URL parameters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "parameter", "quoted"), [
    ("architectures", "model", True), ("training", "run", True), ("transfer", "run", True), ("transfer", "group", True),
    ("compare", "model", False), ("classify", "model", False)])
def test_markdown_in_url_parameters_is_shown_literally(page: str, parameter: str, quoted: bool) -> None:
    at = open_page(page, **{parameter: hostile.MARKDOWN})
    healthy(at)
    shown = [text for text in markdown_texts(at) if "Click here" in text]
    assert bool(shown) == quoted, shown  # where the page quotes the value, it is there, escaped (healthy)


# Every URL parameter the app reads: the links' own (widgets.*_PARAM, presenter.PARAM) and every widget bound to the
# URL (its key). test_every_url_parameter_is_listed keeps the list complete.
URL_PARAMETERS = ("model", "run", "group", "present", "tab", "inside-model", "inside-stage",
                  *(f"{prefix}-{name}" for prefix in ("classify", "inside") for name in ("source", "sample")),
                  "classify-map-layer", "classify-cam-layer", "classify-cam-colours", "classify-cam-opacity",
                  "classify-cam-method", "replay", "design",
                  *(f"open-{name}" for name in ("resnet50", "inception_v3", "xception", "vgg16")))
PAGES = ("home", "architectures", "compare", "classify", "inside", "training", "transfer")


def test_every_url_parameter_is_listed() -> None:
    """A new parameter (a ``*PARAM`` constant, a widget with ``bind="query-params"`` or kept by ``widgets.url_choice``)
    must join URL_PARAMETERS."""
    root = Path(__file__).resolve().parents[1]
    found: set[str] = set()
    for path in [*root.glob("explorer/*.py"), *root.glob("pages/*.py")]:
        source = path.read_text()
        found.update(re.findall(r'^\w*PARAM = "([^"]+)"', source, flags=re.MULTILINE))
        found.update(re.findall(r'url_choice\(\s*f?"([^"]+)"', source))  # widgets kept in the URL by the app
        for binding in re.finditer(r'bind="query-params"', source):
            keys = re.findall(r'key=f?"([^"]+)"', source[max(0, binding.start() - 400):binding.start()])
            assert keys, f"{path.name}: a widget bound to the URL without a key near it"
            found.add(keys[-1])
    assert len(found) >= 12, found
    for parameter in found:
        pattern = re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(parameter))  # {prefix}, {name}: any value
        assert any(re.fullmatch(pattern, listed) for listed in URL_PARAMETERS), parameter


@pytest.mark.parametrize("page", PAGES)
def test_markdown_in_every_url_parameter_of_every_page_is_shown_literally(page: str, digits_run: str) -> None:
    """Issue 18: Transfer's ``?group=`` was shown as Markdown (a link, an external image). Every parameter at once,
    then a run that takes the page past its first choice (a model that exists, the run that exists)."""
    at = open_page(page, **dict.fromkeys(URL_PARAMETERS, hostile.MARKDOWN))
    healthy(at)
    at.query_params["run"] = digits_run
    at.query_params["inside-model"] = f"run:{digits_run}"
    at.run()
    healthy(at)


# Zips and folders ------------------------------------------------------------------------------------------------


def open_zip_upload() -> AppTest:
    at = open_page("transfer")
    at.radio(key="transfer-source").set_value("Upload a zip of class folders").run()
    healthy(at)
    return at


def uploads_left() -> list[str]:
    from explorer import services

    root = services.uploads_root()
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_every_bad_zip_is_refused_with_a_message_and_leaves_nothing(tmp_path: Path) -> None:
    at = open_zip_upload()
    before = uploads_left()
    for case, (payload, message) in hostile.bad_zips().items():
        at.file_uploader(key="transfer-zip").upload(f"{case}.zip", payload, "application/zip").run()
        healthy(at)
        assert message in errors(at), (case, errors(at))
        assert uploads_left() == before, (case, uploads_left())
    good = hostile.make_zip(hostile.good_members(per_class=4))
    at.file_uploader(key="transfer-zip").upload("good.zip", good, "application/zip").run()
    healthy(at)
    assert not at.error and any("Data set health" in e.label for e in at.expander)


def test_bad_files_in_a_zip_are_listed_in_the_health_panel() -> None:
    at = open_zip_upload()
    bad = hostile.bad_members()
    members = {**hostile.good_members(per_class=4), **{path: payload for path, payload in bad.values()}}
    at.file_uploader(key="transfer-zip").upload("mixed.zip", hostile.make_zip(members), "application/zip").run()
    healthy(at)
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["file", "problem"])
    assert set(table["file"]) == {path for path, _ in bad.values()}
    assert any("failed the check" in w.value for w in at.warning)


def test_markdown_folder_names_stay_literal_through_training_and_classify() -> None:
    """Class names and the wrapping folder's name (in the data set's label) through the health panel, the run's
    pages and Classify's "Prediction" metric (issue 18: a live link on every session that classified with it)."""
    from explorer import services

    names = ("[Click here](https:example.com)", "**b** <img src=x onerror=alert(1)> www.example.com :red[x]")
    members = hostile.good_members(prefix="[Click here](https:example.com) :red[x]/", per_class=4, names=names)
    at = open_zip_upload()
    at.file_uploader(key="transfer-zip").upload(f"{hostile.MARKDOWN}.zip", hostile.make_zip(members),
                                                "application/zip").run()
    healthy(at)
    assert not at.error
    at.number_input(key="transfer-epochs").set_value(1).run()
    at.number_input(key="transfer-batch").set_value(4).run()
    at.button(key="transfer-start").click().run()
    run_id = at.session_state["transfer-run"]
    assert services.run_store().wait(run_id, timeout=600) == "completed"
    at.run()
    healthy(at)
    classify = open_page("classify")
    classify.selectbox(key="classify-model").set_value(f"run:{run_id}").run()
    healthy(classify)
    predicted = next(m.proto.body for m in classify.metric if m.label == "Prediction")
    assert "\\[Click here\\]" in predicted or "\\*\\*b\\*\\*" in predicted, predicted  # escaped, so literal


def test_stored_names_of_a_rebuilt_run_stay_literal() -> None:
    """A run rebuilt from the sidecars on disk (anyone with the folder can edit them): its id, data set, recipe and
    class names reach the Training page and Classify's "Prediction" metric as text, never as Markdown."""
    from core import checkpoints, models
    from explorer import services

    link = "[Click here](https:example.com) www.example.com :red[x]"
    run_id = f"20261204-000000-{link} <b>bold"  # a folder name: anything but a slash
    recipe = {"arch": "lenet5", "dataset": link, "optimizer": link, "lr": link, "batch_size": link, "epochs": link}
    sidecar = {"arch": "lenet5", "classes": [f"{link} {digit}" for digit in range(10)], "in_channels": 1,
               "input_size": 28, "mean": [0.1], "std": [0.3], "dataset": link, "status": "completed", "epoch": 1,
               "config": recipe}
    folder = services.run_store().checkpoint_dir(run_id)
    checkpoints.save(models.build("lenet5"), checkpoints.weights_path(folder, "best"), sidecar)
    assert services.rebuild_store() >= 1
    training = open_page("training", run=run_id)
    assert sum("Click here" in text for text in markdown_texts(training)) >= 3  # the id, the data set, the recipe
    training.multiselect(key="overlay").set_value([run_id]).run()  # its id names a curve: Plotly renders HTML
    healthy(training)
    assert training.get("plotly_chart")
    classify = open_page("classify")
    classify.selectbox(key="classify-model").set_value(f"run:{run_id}").run()
    healthy(classify)
    predicted = next(m.proto.body for m in classify.metric if m.label == "Prediction")
    assert predicted.startswith("\\[Click here\\]"), predicted


def test_a_sidecar_with_classes_of_the_wrong_type_gets_its_message_on_classify() -> None:
    """Issue 18: ``"classes": 5`` raised an uncaught TypeError, a generic error box; now a message that says what."""
    from core import checkpoints, models
    from explorer import services

    run_id = "20261204-000001-classes-five"
    sidecar = {"arch": "lenet5", "classes": 5, "in_channels": 1, "input_size": 28, "mean": [0.1], "std": [0.3],
               "status": "completed", "epoch": 1}
    folder = services.run_store().checkpoint_dir(run_id)
    checkpoints.save(models.build("lenet5"), checkpoints.weights_path(folder, "best"), sidecar)
    assert services.rebuild_store() >= 1
    at = open_page("classify")
    at.selectbox(key="classify-model").set_value(f"run:{run_id}").run()
    healthy(at)
    assert "has 'classes' of the wrong type" in errors(at), errors(at)


def test_a_rebuilt_run_with_malformed_figures_shows_what_is_well_formed() -> None:
    """Test figures, history and recipe of the wrong shape in a sidecar (``"accuracy": "x"`` made the Training page
    a generic error box, and Classify's choice of the best run compare a string with numbers): left out at rebuild."""
    from core import checkpoints, models
    from explorer import services

    run_id = "20261204-000003-malformed"
    sidecar = {"arch": "lenet5", "classes": [str(digit) for digit in range(10)], "in_channels": 1, "input_size": 28,
               "mean": [0.1], "std": [0.3], "status": "completed", "epoch": 2, "config": ["not", "a", "dict"],
               "history": [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.4, "val_loss": 1.1, "val_acc": 0.5,
                            "elapsed": 1.0}, {"epoch": "2", "val_acc": "x"}, {"epoch": 2, "val_acc": 0.9}, 7],
               "test": {"accuracy": "x", "loss": [], "classes": 3, "confusion": "no"}}
    folder = services.run_store().checkpoint_dir(run_id)
    checkpoints.save(models.build("lenet5"), checkpoints.weights_path(folder, "best"), sidecar)
    assert services.rebuild_store() >= 1
    stored = services.run_store().run(run_id)
    assert stored.test is None and stored.best_val_acc == 0.5
    assert [row["epoch"] for row in services.run_store().metrics(run_id, "epoch")] == [1]
    training = open_page("training", run=run_id)
    assert not training.error, errors(training)
    classify = open_page("classify")
    assert "Prediction" in {m.label for m in classify.metric}


def test_the_server_folder_box_refuses_what_it_must(tmp_path: Path) -> None:
    from explorer import services

    root = services.folders_root()
    outside = tmp_path / "outside"
    for name, payload in hostile.good_members().items():
        (outside / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / name).write_bytes(payload)
    link = root / "sneaky"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    inside = root / "fine"
    for name, payload in hostile.good_members().items():
        (inside / name).parent.mkdir(parents=True, exist_ok=True)
        (inside / name).write_bytes(payload)
    at = open_page("transfer")
    at.radio(key="transfer-source").set_value("A folder on the server").run()
    for text, message in [("bad\0name", "NUL byte"), ("x" * 300, "too long"), ("../../etc", "must be inside"),
                          ("sneaky", "must be inside"), ("no-such-folder", "not a folder"),
                          (hostile.MARKDOWN, "too long|not a folder")]:
        at.text_input(key="transfer-folder").input(text).run()
        healthy(at)
        assert re.search(message, errors(at)), (text, errors(at))
    at.text_input(key="transfer-folder").input("fine").run()
    healthy(at)
    assert not at.error and any("Data set health" in e.label for e in at.expander)


def test_an_unexpected_error_is_a_short_message_with_an_id(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from explorer import services

    def broken(*_args, **_kwargs):
        raise RuntimeError(f"internal detail at {os.environ['CNN_EXPLORER_STATE']}/secret.py")

    monkeypatch.setattr(services, "summary", broken)
    at = AppTest.from_file(apptest.APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("../pages/architectures.py")
    with caplog.at_level("ERROR", logger="cnn_explorer"):
        at.run()
    assert not at.exception
    shown = [e.value for e in at.error if UNEXPECTED in e.value]
    assert shown and "secret" not in shown[0]
    error_id = shown[0].split("(error ")[1][:8]
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)
    monkeypatch.undo()
    at.run()
    healthy(at)


# Shared models ---------------------------------------------------------------------------------------------------


def test_two_threads_classify_and_draw_grad_cam_on_one_cached_model(digits_run: str) -> None:
    from explorer import services

    model = services.classifier(f"run:{digits_run}")
    x = torch.rand(1, model.channels, model.crop, model.crop)
    layer = services.conv_layers(model)[0]
    failures: list[BaseException] = []
    barrier = threading.Barrier(3)

    def work(action) -> None:
        barrier.wait()
        try:
            for _ in range(40):
                action()
        except BaseException as error:  # noqa: BLE001 — collected and asserted on below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(action,)) for action in (
        lambda: services.predict(model, x), lambda: services.grad_cam(model, x, layer),
        lambda: services.feature_maps(model, x, layer))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    heat = services.grad_cam(model, x, layer)
    assert heat.shape == x.shape[-2:] and float(heat.max()) <= 1
