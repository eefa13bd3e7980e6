"""Every page through Streamlit's AppTest: rendered, no exception, bad input answered with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import models
from tests.apptest import open_page, texts
from tests.conftest import wait_until


def test_home() -> None:
    at = open_page()
    assert at.title[0].value.endswith("CNN Architecture Explorer")
    assert "Computing on:" in texts(at) and "CPU" in texts(at)
    assert len(at.dataframe[0].value) == len(models.names())
    assert not at.error


def test_architectures_defaults_to_resnet50() -> None:
    at = open_page("architectures")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "25.6 M"  # the app's one rule for counts; the exact figure is in the totals
    assert metrics["MACs / image"] == "4.09 G"
    assert metrics["Depth"] == "50 layers"
    assert "Total: 25,557,032 parameters" in texts(at)
    table = at.dataframe[0].value
    assert table.set_index("layer").loc["conv1", "params"] == "9.41 K"  # 64·3·7·7 = 9,408
    assert "multiply-accumulates" in texts(at)
    assert "class ResNet" in at.code[0].value
    assert "model" not in at.query_params  # the default: opening the page adds no history entry


def test_architectures_follows_the_url() -> None:
    at = open_page("architectures", model="xception")
    assert {m.label: m.value for m in at.metric}["Parameters"] == "22.9 M"
    fidelity = at.dataframe[1].value
    assert "71 layers" in set(fidelity["course notes"])
    assert "54,528" in texts(at) or "54,528" in " ".join(fidelity["why"])


def test_unknown_model_in_the_url_is_a_warning_not_a_traceback() -> None:
    at = open_page("architectures", model="densenet121")
    assert any("densenet121" in w.value for w in at.warning)
    parameters = {m.label: m for m in at.metric}["Parameters"]
    assert parameters.value == "25.6 M" and "25,557,032 exactly" in parameters.help


def test_picking_a_model_updates_the_url() -> None:
    at = open_page("architectures")
    at.selectbox(key="model").set_value("lenet5").run()
    assert not at.exception
    parameters = {m.label: m for m in at.metric}["Parameters"]
    assert parameters.value == "61.7 K" and "61,706 exactly" in parameters.help
    assert "lenet5" in str(at.query_params["model"])


@pytest.mark.parametrize(("model", "size", "message"), [
    ("inception_v3", 60, "smallest input it accepts, 75×75"),
    ("lenet5", 40, "largest input it accepts, 31×31"),
])
def test_bad_input_size_gets_a_clear_message(model: str, size: int, message: str) -> None:
    at = open_page("architectures", model=model)
    at.number_input(key=f"size-{model}").set_value(size).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)
    at.number_input(key=f"size-{model}").set_value(models.spec(model).input_size).run()
    assert not at.error and at.metric  # the page recovers for the next value


def test_compare_rebuilds_the_tables_from_live_models() -> None:
    at = open_page("compare")
    table = at.dataframe[0].value
    assert len(table) == len(models.names())
    rows = table.set_index("model")
    assert rows.loc["ResNet-50", "parameters"] == "25.6 M"  # one rule for counts: K/M/G, exact in the CSV
    assert rows.loc["VGG-16", "MACs"] == "15.5 G"
    assert rows.loc["Xception", "skip connections"] == 12
    assert rows.loc["ResNet-152", "top-1 %"] == "78.3" and rows.loc["LeNet-5", "top-1 %"] == "—"
    assert list(table.columns[:3]) == ["model", "year", "top-1 %"]  # visible without scrolling
    assert not table.isna().any().any() and "None" not in table.astype(str).to_numpy()
    assert "LeNet-5" in texts(at)  # named as having no ImageNet accuracy


def test_compare_measures_latency_on_request() -> None:
    at = open_page("compare")
    at.multiselect(key="latency-models").set_value(["lenet5"])
    at.multiselect(key="latency-batches").set_value([1])
    at.button[0].click().run()
    assert not at.exception
    results = at.dataframe[-1].value
    assert list(results["model"]) == ["LeNet-5"] and results["median ms"].iloc[0] > 0


def test_compare_with_no_model_says_so() -> None:
    at = open_page("compare")
    at.multiselect[0].set_value([]).run()
    assert not at.exception
    assert any("at least one model" in i.value for i in at.info)


def _finish(at: AppTest, run_id: str) -> None:
    from explorer import services

    assert services.run_store().wait(run_id, timeout=300) in ("completed", "stopped")
    at.run()


def test_training_page_runs_lenet_on_digits() -> None:
    at = open_page("training")
    assert at.selectbox(key="train-arch").value == "lenet5"
    assert at.selectbox(key="train-dataset").value == "digits"
    at.button[0].click().run()  # the form's "Start training"
    assert not at.exception
    run_id = str(at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"])
    _finish(at, run_id)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Test accuracy"].rstrip("%")) > 50
    assert any("Misclassified" in m.value or "No test image" in m.value for m in [*at.markdown, *at.caption])
    history = at.dataframe[-1].value
    assert run_id in set(history["run"])


def test_training_page_reattaches_to_a_run_named_in_the_url() -> None:
    from core import training
    from explorer import services

    run_id = services.submit(training.TrainConfig(epochs=1, optimizer="adam", lr=3e-3))
    at = open_page("training", run=run_id)  # a refresh, or a second tab with the link
    _finish(at, run_id)
    assert any(run_id in h.value for h in at.subheader)
    assert "Test accuracy" in {m.label for m in at.metric}


@pytest.mark.parametrize("preset", ["LeNet-5 (course notes)", "Fast, large batch (GPU)"])
def test_a_preset_fills_the_form_with_its_values(preset: str) -> None:
    from core import training

    at = open_page("training")
    at.selectbox(key="train-preset").set_value(preset).run()
    assert not at.exception
    recipe = training.PRESETS[preset]
    values = {n.label: n.value for n in at.number_input}
    assert values["Batch size"] == recipe["batch_size"] and values["Learning rate"] == pytest.approx(recipe["lr"])
    assert {c.label: c.value for c in at.checkbox}["Augment"] == recipe.get("augment", False)


def test_training_page_with_an_unknown_run_in_the_url() -> None:
    at = open_page("training", run="no-such-run")
    assert any("no-such-run" in w.value for w in at.warning)


def test_a_data_set_that_is_not_on_disk_is_explained() -> None:
    at = open_page("training")
    at.selectbox(key="train-dataset").set_value("fashion_mnist").run()
    assert any("digits" in i.value for i in at.info)  # not on disk: says what starting will do, and the offline way
    at.button[0].click().run()
    run_id = str(at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"])
    from explorer import services

    status = services.run_store().wait(run_id, timeout=300)
    at.run()
    assert not at.exception
    if status == "failed":  # offline, as in CI: a clear message, never a traceback
        assert any("digits" in e.value for e in at.error)


def test_transfer_page_fine_tunes_on_the_generated_shapes() -> None:
    from explorer import services

    at = open_page("transfer")
    assert at.selectbox(key="transfer-arch").value == "resnet18"
    assert any("not on this machine" in w.value for w in at.warning)  # no weights in the test's TORCH_HOME
    trainable = {m.label: m for m in at.metric}["Trainable parameters"]
    assert trainable.value == "132 K" and f"{512 * 256 + 256 + 256 * 3 + 3:,} of" in trainable.help  # the head only
    at.radio(key="transfer-strategy").set_value("partial").run()
    at.slider(key="transfer-unfreeze").set_value(1).run()
    trainable = {m.label: m for m in at.metric}["Trainable parameters"]
    assert trainable.value == "4.85 M" and f"{132_099 + 4_720_640:,} of" in trainable.help
    at.radio(key="transfer-strategy").set_value("feature_extraction").run()
    at.number_input(key="transfer-epochs").set_value(1).run()
    at.button(key="transfer-start").click().run()
    run_id = at.session_state["transfer-run"]
    assert services.run_store().wait(run_id, timeout=300) == "completed"
    at.run()
    assert not at.exception
    assert "Test accuracy" in {m.label for m in at.metric}
    run = services.run_store().run(run_id)
    assert run.config["strategy"] == "feature_extraction" and "feature cache" in run.message


def test_transfer_page_refuses_an_unsafe_zip_and_bad_weights() -> None:
    import io
    import zipfile

    at = open_page("transfer")
    at.radio(key="transfer-source").set_value("Upload a zip of class folders").run()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.png", b"x")
    at.file_uploader(key="transfer-zip").upload("evil.zip", buffer.getvalue(), "application/zip").run()
    assert not at.exception
    assert any("outside" in e.value for e in at.error)
    at.file_uploader(key="transfer-weights-upload-resnet18").upload("w.pth", b"junk", "application/octet-stream").run()
    assert not at.exception
    assert any("cannot be read" in e.value for e in at.error)


def test_transfer_page_folder_paths_stay_under_the_root() -> None:
    at = open_page("transfer")
    at.radio(key="transfer-source").set_value("A folder on the server").run()
    at.text_input(key="transfer-folder").input("../../etc").run()
    assert not at.exception
    assert any("must be inside" in e.value for e in at.error)


def open_classify(run_id: str) -> AppTest:
    at = open_page("classify")
    at.selectbox(key="classify-model").set_value(f"run:{run_id}").run()
    assert not at.exception
    return at


def test_classify_with_no_model_offers_to_train_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    monkeypatch.setattr(services, "classifier_choices", lambda **_: [])
    at = open_page("classify")
    assert any("No model can classify yet" in i.value for i in at.info)
    at.button(key="classify-train").click().run()
    run_id = at.session_state["classify-run"]
    assert services.run_store().wait(run_id, timeout=300) == "completed"
    monkeypatch.undo()
    at.run()
    assert any(run_id in option for option in at.selectbox(key="classify-model").options)


def test_classify_a_sample_photo_with_the_inspector(digits_run: str) -> None:
    at = open_classify(digits_run)
    assert at.radio(key="classify-source").value == "Sample photos"
    assert any("knows only the 10 classes it was trained on (0, 1, 2, 3, 4, 5 and 4 more)" in i.value
               and "Draw a digit" in i.value for i in at.info)  # a photo gets a digit: the page says so
    assert "Prediction" in {m.label for m in at.metric} and "Inference latency" in {m.label for m in at.metric}
    captions = " ".join(shown.caption for image in at.get("image") for shown in image.proto.imgs)
    assert "Centred by mass in 28×28" in captions or any("Centred" in c.value for c in at.caption)
    at.toggle(key="classify-convention").set_value(False).run()
    assert not at.exception
    assert any("Resized" in c.value for c in at.caption)
    assert at.selectbox(key="classify-cam-layer").options[0] == "conv 1 of 3 · features.0 (6 filters, 5×5)"
    at.selectbox(key="classify-cam-layer").set_value("features.0").run()
    assert not at.exception
    at.button(key="classify-all").click().run()
    assert not at.exception


def png_bytes(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "payload", "message"), [
    ("notes.png", b"not an image at all", "not an image"),
    ("bomb.png", "bomb", "decompression bomb"),
    ("strip.png", "strip", "aspect ratio"),
    ("blank.png", "blank", "empty"),
    ("cut.png", "cut", "truncated"),
])
def test_classify_bad_uploads_get_a_message_and_the_page_goes_on(digits_run: str, name: str, payload, message: str):
    from PIL import Image

    made = {"bomb": lambda: png_bytes(Image.new("1", (8000, 8000))),
            "strip": lambda: png_bytes(Image.new("RGB", (3000, 20), "white")),
            "blank": lambda: png_bytes(Image.new("RGB", (200, 200), "black")),
            "cut": lambda: png_bytes(Image.effect_noise((300, 300), 80))[:2000]}
    at = open_classify(digits_run)
    at.radio(key="classify-source").set_value("Upload").run()
    data = made[payload]() if isinstance(payload, str) else payload
    at.file_uploader(key="classify-upload").upload(name, data, "image/png").run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    good = Image.new("L", (120, 120), 255)
    good.paste(0, (50, 20, 70, 100))
    at.file_uploader(key="classify-upload").upload("seven.png", png_bytes(good), "image/png").run()
    assert not at.exception and "Prediction" in {m.label for m in at.metric}


def test_classify_several_uploads_at_once(digits_run: str) -> None:
    from PIL import Image

    at = open_classify(digits_run)
    at.radio(key="classify-source").set_value("Upload").run()
    digit = Image.new("L", (100, 100), 0)
    digit.paste(255, (40, 20, 60, 80))
    uploader = at.file_uploader(key="classify-upload")
    uploader.upload("one.png", png_bytes(digit), "image/png")
    uploader.upload("junk.png", b"junk", "image/png")
    at.run()
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "image" in frame.value.columns)
    assert list(table["image"]) == ["one.png", "junk.png"]
    assert table["problem"].iloc[1] and not table["problem"].iloc[0]


def test_transfer_page_offers_presets_and_explains_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    from core import presets

    def offline(url, target, on_progress=None):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(presets, "download", offline)
    at = open_page("transfer")
    at.radio(key="transfer-source").set_value("A preset (downloaded once)").run()
    assert any("downloaded once" in c.value for c in at.caption)
    at.button(key="download-rock_paper_scissors").click().run()
    assert not at.exception
    assert any("could not be downloaded" in e.value for e in at.error)


def test_classify_offers_the_drawing_pad_for_digit_models(digits_run: str) -> None:
    at = open_classify(digits_run)
    assert "Draw a digit" in at.radio(key="classify-source").options
    at.radio(key="classify-source").set_value("Draw a digit").run()
    assert not at.exception
    assert any("pad is empty" in i.value for i in at.info)  # no JavaScript in AppTest: nothing drawn yet


def test_training_page_stops_resumes_downloads_and_deletes_a_run() -> None:
    from core import training
    from explorer import services

    store = services.run_store()
    run_id = services.submit(training.TrainConfig(epochs=500, optimizer="adam", lr=3e-3))
    wait_until(lambda: store.metrics(run_id, "step"), 300, f"run {run_id} to train")
    at = open_page("training", run=run_id)
    assert any("images/s" in p.proto.text for p in at.get("progress"))  # live, from the store
    curves = [image.proto for image in at.get("image")]
    assert any(i.imgs[0].url.startswith("data:image/svg+xml") for i in curves)  # the live curves, one image
    assert at.multiselect(key="overlay").value == []  # no overlay chart drawn unasked while a run trains
    at.button(key=f"stop-{run_id}").click().run()
    assert store.wait(run_id, timeout=120) == "stopped"
    at.run()
    assert not at.exception
    downloads = {b.proto.label for b in at.get("download_button")}
    assert "Last checkpoint" in downloads  # whatever the status, a saved checkpoint is offered
    at.button(key=f"resume-{run_id}").click().run()
    assert not at.exception and store.run(run_id).status in ("queued", "running")
    wait_until(lambda: store.run(run_id).status == "running" and store.run(run_id).progress, 300,
               f"run {run_id} to run again after Resume")
    at.run()
    at.button(key=f"stop-{run_id}").click().run()
    assert store.wait(run_id, timeout=120) == "stopped"
    at.run()
    at.button(key=f"delete-{run_id}").click().run()
    assert not at.exception
    with pytest.raises(services.ExplorerError):
        store.run(run_id)
    assert not store.checkpoints(run_id) and "run" not in at.query_params


def test_training_page_cancels_a_queued_run_at_once() -> None:
    from core import training
    from explorer import services

    store = services.run_store()
    busy = services.submit(training.TrainConfig(epochs=500, optimizer="adam", lr=3e-3))
    waiting = services.submit(training.TrainConfig(epochs=1, optimizer="adam", lr=3e-3))
    try:
        at = open_page("training", run=waiting)
        assert any("Queued" in i.value or "Starting" in i.value for i in at.info)
        at.button(key=f"cancel-{waiting}").click().run()
        assert not at.exception
        assert store.run(waiting).status == "stopped" and store.run(busy).status in ("queued", "running")
    finally:
        services.stop(busy)
        store.wait(busy, timeout=120)


def test_an_unreadable_run_database_is_a_message_with_a_rebuild_button(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from core import runs
    from explorer import services
    from tests.conftest import finished_run

    store = runs.RunStore(tmp_path)
    run_id = finished_run(store, epochs=1)
    store.db_path.write_bytes(b"damaged" * 1000)
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    monkeypatch.setattr(services, "run_store", lambda: store)
    for page in ("classify", "transfer", "training"):
        at = open_page(page)
        shown = [e.value.replace("\\", "").replace("\u2060", "") for e in at.error]  # Markdown escapes removed
        assert any("runs.sqlite" in text and "Rebuild" in text for text in shown), (page, shown)
    at.button(key="store-rebuild").click().run()
    assert not at.exception
    assert any("1 runs recovered" in s.value for s in at.success)
    assert run_id in set(at.dataframe[-1].value["run"])


def test_the_strategy_race_is_a_group_in_the_url_that_reattaches_and_stops_as_one() -> None:
    from explorer import services

    at = open_page("transfer")
    at.number_input(key="transfer-epochs").set_value(50).run()
    at.button(key="transfer-race-start").click().run()
    assert not at.exception
    group = str(at.query_params["group"][0] if isinstance(at.query_params["group"], list) else at.query_params["group"])
    runs = services.group_runs(group)
    assert len(runs) == 3 and {r.config["strategy"] for r in runs} == set(services.STRATEGIES)
    again = open_page("transfer", group=group)  # a refresh: the race is back, from the URL
    assert any(s.value == "Strategy race" for s in again.subheader)
    again.button(key=f"stop-{group}").click().run()
    assert not again.exception
    for run in runs:
        assert services.run_store().wait(run.id, timeout=300) == "stopped"


def test_training_page_offers_cuda_graphs_only_where_cuda_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    at = open_page("training")
    assert not [box for box in at.checkbox if box.label == "CUDA graphs"]  # this machine has no CUDA
    submitted = []
    monkeypatch.setattr(services, "available_devices", lambda: ["cuda", "cpu"])
    monkeypatch.setattr(services, "submit", lambda config: submitted.append(config) or "r1")
    at.run()
    box = next(box for box in at.checkbox if box.label == "CUDA graphs")
    assert box.value is True
    box.uncheck()
    at.button[0].click().run()
    assert not at.exception and len(submitted) == 1 and submitted[0].cuda_graphs is False


def test_a_url_changed_from_outside_the_session_is_followed() -> None:
    """Back and Forward (and a pasted link) change the URL from outside: the model and the tab follow it; the
    session's own choices still write it."""
    at = open_page("architectures")
    at.selectbox(key="model").set_value("lenet5").run()
    assert "lenet5" in str(at.query_params["model"])
    at.query_params["model"] = "vgg16"
    at.query_params["tab"] = "Charts"
    at.run()
    assert not at.exception and at.selectbox(key="model").value == "vgg16"
    assert at.session_state["tab"] == "Charts"
    at.query_params["tab"] = "No such tab"  # an unknown value: the first tab, and out of the URL
    at.run()
    assert at.session_state["tab"] == "Layer table" and "tab" not in at.query_params


def _ended_race(dataset: str, **settings) -> tuple[str, list[str]]:
    """A stopped strategy race of ResNet-18 on random weights, written straight into the app's run store: three
    runs, three epochs of metrics each (nothing trains)."""
    from core import training
    from explorer import services

    store, group, ids = services.run_store(), services.new_group(), []
    for strategy in services.STRATEGIES:
        config = training.TrainConfig(arch="resnet18", dataset=dataset, strategy=strategy, optimizer="adam",
                                      lr=services.STRATEGIES[strategy], weight_decay=0.0, **settings)
        run_id = store.create_run(config, status="running", group=group, worker="test")
        for epoch in (1, 2, 3):
            store.log(run_id, "epoch", epoch, 10 * epoch, float(epoch),
                      {"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.3, "val_acc": 0.1 * epoch})
        store.update_run(run_id, status="stopped", best_val_acc=0.3, elapsed=3.0)
        ids.append(run_id)
    return group, ids


def test_a_run_on_random_weights_says_so_wherever_its_result_appears() -> None:
    from core import transfer
    from explorer import services

    group, ids = _ended_race("shapes", epochs=3)
    note = transfer.random_weights_note("resnet18")
    assert "no ImageNet file for ResNet-18" in note and "resnet18-f37072fd.pth" in note

    def says_so(at: AppTest) -> int:
        return sum(note[1:] in w.value.replace("\\", "") for w in at.warning)

    race = open_page("transfer", group=group)  # the race table
    assert says_so(race)
    assert set(race.dataframe[-1].value["weights"]) == {transfer.RANDOM_SHORT}
    training = open_page("training", run=ids[0])  # the run header, and the history
    assert says_so(training) == 2  # above the run's results, and under the history table
    history = training.dataframe[-1].value.set_index("run")
    assert history.loc[ids[0], "weights"] == transfer.RANDOM_SHORT
    services.run_store().checkpoint_dir(ids[0]).mkdir(parents=True, exist_ok=True)
    services.run_store().checkpoint_path(ids[0]).write_bytes(b"")  # listed on Classify (it cannot load: says why)
    classify = open_page("classify")
    model = classify.selectbox(key="classify-model")
    assert transfer.RANDOM_SHORT in model.format_func(f"run:{ids[0]}")
    model.set_value(f"run:{ids[0]}").run()
    assert not classify.exception and says_so(classify)


def _refreshed_race(folder: str) -> AppTest:
    """The Transfer page opened on the link of an ended race on the server folder ``folder`` (created here)."""
    import json

    from explorer import services, transfer_view
    from tests.conftest import make_image_folder

    make_image_folder(services.folders_root() / folder, classes=("cat", "dog", "fox"))
    dataset = services.folder_dataset(folder)
    group, _ = _ended_race(dataset, epochs=3, batch_size=16, augment=True, unfreeze_last=1)
    at = open_page("transfer", group=group)  # a refresh, or the link in another tab
    assert at.radio(key="transfer-source").value == transfer_view.SHOWN_DATA
    assert folder in texts(at) and any("3 classes" in e.label for e in at.expander)
    assert at.number_input(key="transfer-epochs").value == 3 and at.number_input(key="transfer-batch").value == 16
    assert at.toggle(key="transfer-augment").value is True
    at.radio(key="transfer-strategy").set_value("partial").run()
    assert at.slider(key="transfer-unfreeze").value == 1
    chart = next(c for c in at.get("plotly_chart") if '"validation accuracy"' in c.proto.spec)
    axis = json.loads(chart.proto.spec)["layout"]["xaxis"]
    assert axis["tickvals"] == [1, 2, 3] and axis["ticktext"] == ["1", "2", "3"]  # whole epochs
    return at


def test_refreshing_during_a_race_shows_its_own_data_set_and_settings() -> None:
    _refreshed_race("race-photos")  # its data set, epochs, batch size, augmentation, unfreeze; whole epochs


def test_a_race_started_after_a_refresh_keeps_the_form_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services, transfer_view

    at = _refreshed_race("race-again")
    submitted = []

    def submit(config, group=None) -> str:  # recorded, never trained
        submitted.append(config)
        return services.run_store().create_run(config, status="stopped", group=group)

    monkeypatch.setattr(services, "submit", submit)
    at.button(key="transfer-race-start").click().run()
    assert not at.exception and len(submitted) == 3 and submitted[0].dataset.endswith("race-again")
    at.run()  # the next rerun (the race's own polling, or any click)
    assert at.radio(key="transfer-source").value == transfer_view.SHOWN_DATA
    assert at.number_input(key="transfer-epochs").value == 3


def test_a_zip_with_its_own_train_and_val_folders_keeps_that_split_and_says_so() -> None:
    from tests.conftest import make_zip, png

    members = {f"photos/{split}/{name}/{i}.png": png(colour, (offset + i, 10))
               for split, count, offset in (("train", 6, 12), ("val", 3, 30))
               for name, colour in (("cat", "red"), ("dog", "blue")) for i in range(count)}
    at = open_page("transfer")
    at.radio(key="transfer-source").set_value("Upload a zip of class folders").run()
    at.file_uploader(key="transfer-zip").upload("split.zip", make_zip(members).getvalue(), "application/zip").run()
    assert not at.exception and not at.error
    said = texts(at).replace("\\", "")
    assert "the data set's own folders — training train/, validation val/, test 15 % of train/" in said
    assert any("2 classes, 18 images" in e.label for e in at.expander)
    import base64
    import json

    import numpy as np

    def values(y) -> list[int]:  # Plotly sends numbers as typed arrays
        return np.frombuffer(base64.b64decode(y["bdata"]), y["dtype"]).tolist() if isinstance(y, dict) else list(y)

    chart = next(c for c in at.get("plotly_chart") if '"split"' in c.proto.spec)  # the health panel's counts
    counts = {trace["name"]: values(trace["y"]) for trace in json.loads(chart.proto.spec)["data"]}
    assert counts["val"] == [3, 3] and counts["train"] == [5, 5] and counts["test"] == [1, 1]  # val/ is validation
