"""The lecture views through AppTest: presenter mode, the topology diagram, Grad-CAM's controls, preprocessing to
scale, and Inside the network."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import open_page, texts


def figure(at: AppTest, key: str) -> dict:
    """The Plotly figure of the chart with this key, as a dict."""
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)


def dot(at: AppTest) -> str:
    return at.get("graphviz_chart")[0].proto.spec


def test_presenter_mode_from_the_url_hides_editing_controls() -> None:
    at = open_page("architectures", present="1")
    assert at.toggle(key="presenter-mode").value is True
    assert at.query_params["present"] == "1"
    assert not [n for n in at.number_input if n.key == "classes-resnet50"], "the Classes input is for editing"
    assert any("font-size: 20px" in str(e.proto) for e in at.get("html")), "the presenter style is injected"
    at.toggle(key="presenter-mode").set_value(False).run()
    assert not at.exception
    assert "present" not in at.query_params
    assert [n for n in at.number_input if n.key == "classes-resnet50"]
    assert not any("font-size: 20px" in str(e.proto) for e in at.get("html"))


def test_the_presenter_switch_writes_the_url_and_follows_every_page() -> None:
    at = open_page()
    assert at.toggle(key="presenter-mode").value is False and "present" not in at.query_params
    at.toggle(key="presenter-mode").set_value(True).run()
    assert at.query_params["present"] == "1"
    at.switch_page("../pages/compare.py")
    at.run()
    assert not at.exception
    assert at.toggle(key="presenter-mode").value is True and at.query_params["present"] == "1"


def test_the_diagram_draws_inceptions_branches_and_opens_a_block() -> None:
    at = open_page("architectures", model="inception_v3")
    closed = dot(at)
    assert '"Mixed_5b/concat"' in closed and '"Mixed_5b/branch4"' in closed
    assert "Mixed_5b.branch1x1.conv" not in closed
    assert "open-inception_v3" in [m.key for m in at.multiselect]
    at.multiselect(key="open-inception_v3").set_value(["Mixed_5b"]).run()
    assert not at.exception
    opened = dot(at)
    assert '"Mixed_5b.branch1x1.conv" [label="branch1x1.conv\\nConv2d 1×1\\n64×35×35\\n12,288 params"' in opened
    assert '"Mixed_5c/concat"' in opened  # the other blocks stay closed


def test_an_open_block_can_come_from_the_url() -> None:
    at = open_page("architectures", model="resnet50", **{"open-resnet50": "layer2.0"})
    diagram = dot(at)
    assert '"layer2.0.conv2"' in diagram and "Conv2d 3×3 /2" in diagram
    assert 'penwidth=2.2' in diagram, "skip edges are drawn"


def test_plain_chains_have_nothing_to_open() -> None:
    at = open_page("architectures", model="vgg16")
    assert not [m for m in at.multiselect if m.key == "open-vgg16"]
    assert "nothing to open" in texts(at)


def open_classify(run_id: str, page: str = "classify", **query: str) -> AppTest:
    at = open_page(page, **query)
    at.selectbox(key=f"{page}-model").set_value(f"run:{run_id}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_grad_cam_shows_image_heat_map_and_overlay_with_a_colour_scale(digits_run: str) -> None:  # noqa: F811
    at = open_classify(digits_run)
    cam = figure(at, "classify-gradcam")
    kinds = [trace["type"] for trace in cam["data"]]
    assert kinds == ["image", "heatmap", "image"]
    heat = cam["data"][1]
    assert heat["zmin"] == 0 and heat["zmax"] == 1 and heat["colorbar"]["ticktext"][-1] == "strongest"
    assert heat["colorscale"][0][1] == "#23171b"  # turbo
    at.radio(key="classify-cam-colours").set_value("inferno").run()
    at.slider(key="classify-cam-opacity").set_value(0.8).run()
    assert not at.exception
    cam = figure(at, "classify-gradcam")
    assert cam["data"][1]["colorscale"][0][1] == "#000000"  # inferno
    assert "opacity 0.80" in json.dumps(cam["layout"])


def test_preprocessing_is_drawn_to_scale(digits_run: str) -> None:  # noqa: F811
    at = open_classify(digits_run)
    captions = [c.value for c in at.caption]
    assert any(c.startswith("**Decoded** · 451×300 px") for c in captions)
    assert any(c.startswith("**Centred by mass in 28×28** · 28×28 px") for c in captions)
    assert any("Drawn to scale" in c for c in captions)


@pytest.mark.parametrize("widths", [[451, 451, 451, 451, 20, 28], [451, 256, 224, 224], [28], [4000, 224, 224]])
def test_to_scale_every_picture_keeps_its_width_relative_to_the_others(widths: list[int]) -> None:
    from PIL import Image

    from explorer import classify_view

    layout = classify_view.scale_layout(widths)
    assert [i for row, _ in layout for i in row] == list(range(len(widths)))
    spans = {round(sum(weights), 6) for _, weights in layout}
    assert len(spans) == 1, "every row on the same scale"
    span = spans.pop()
    shown = {}
    for row, weights in layout:
        assert len(row) <= 4
        for i, slot in zip(row, weights, strict=False):
            canvas = classify_view._at_scale(Image.new("RGB", (widths[i], 30), "red"), slot)
            painted = sum(1 for x in range(canvas.width) if canvas.getpixel((x, 0))[3] > 0)
            shown[i] = slot / span * painted / canvas.width  # the picture's share of the row when stretched
    for i, j in [(i, j) for i in range(len(widths)) for j in range(len(widths))]:
        assert shown[i] / shown[j] == pytest.approx(widths[i] / widths[j], rel=0.02)


def test_inside_the_network_follows_one_image(digits_run: str) -> None:  # noqa: F811
    at = open_classify(digits_run, "inside")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Agree"] == "yes ✓"
    assert metrics["Σ kernel × patch + bias"] == metrics["features.0 computed"]
    assert any("receptive field 6 px" in c.value for c in at.caption)
    assert any("larger than the whole 28×28 input" in c.value for c in at.caption)
    shapes = {m.value.rsplit(" · ", 1)[-1] for m in at.markdown if " · `" in m.value}  # "**conv1** · `layer` · shape"
    assert {"6 × 14 × 14", "16 × 5 × 5", "120 × 1 × 1"} <= shapes
    at.selectbox(key="inside-stage").set_value("conv1").run()
    at.slider(key="inside-row").set_value(0).run()
    at.slider(key="inside-col").set_value(13).run()
    assert not at.exception
    assert any(c.value.startswith("Position (0, 13) of conv1 sees input rows 0–3, columns 24–27") for c in at.caption)
    at.number_input(key="inside-filter").set_value(5).run()
    at.slider(key="inside-conv-row").set_value(0).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Agree"] == "yes ✓"
    at.radio(key="inside-source").set_value("Draw a digit").run()
    assert any("The pad is empty" in i.value for i in at.info)


def test_inside_the_network_without_a_model_says_where_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    monkeypatch.setattr(services, "classifier_choices", lambda: [])
    at = open_page("inside", present="1")
    assert any("No trained model" in i.value for i in at.info)


def test_what_a_filter_looks_for_shows_a_gallery_of_channels(digits_run: str,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import services

    at = open_classify(digits_run, "inside")
    assert not [i for i in at.get("image") if "channel 0" in str(i.proto)]  # computed only when asked
    at.selectbox(key="filters-layer").set_value("features.0").run()  # conv1: LeNet-5's six 5×5 filters
    at.button(key="filters-go").click().run()
    assert not at.exception
    shown = " ".join(str(i.proto) for i in at.get("image") if "channel " in str(i.proto))
    assert all(f"channel {c}" in shown for c in range(6)) and "channel 6" not in shown
    assert not any("noise" in w.value for w in at.warning)  # a trained model: no random-weights warning
    at.run()  # the next rerun shows the same gallery, from the server's cache
    assert not at.exception
    assert "channel 5" in " ".join(str(i.proto) for i in at.get("image"))
    monkeypatch.setattr(services, "visualise_channel", lambda *args: pytest.fail("computed again"))
    again = open_classify(digits_run, "inside")  # another session: the server's cached gallery
    again.selectbox(key="filters-layer").set_value("features.0").run()
    again.button(key="filters-go").click().run()
    assert not again.exception and "channel 5" in " ".join(str(i.proto) for i in again.get("image"))
