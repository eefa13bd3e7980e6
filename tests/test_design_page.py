"""The Architectures page's design editor and torchvision catalogue, and the opened models on the other pages
(AppTest: the page's script, without a browser)."""

from __future__ import annotations

from core.models import opened
from explorer.components import DEFAULT_MODEL
from explorer.design_view import as_lines
from tests.apptest import no_exception, open_page, texts

LENET = "name mynet\ninput 1x28x28\nconv 6 k5 p2\nmaxpool 2\nconv 16 k5\nmaxpool 2\nconv 120 k5\nfc 84\nfc 10"
TOO_SMALL = "name tiny\ninput 1x8x8\nconv 6 k5\nconv 16 k5\nfc 10"


def test_typing_a_design_makes_it_the_pages_model() -> None:
    at = open_page("architectures")
    at.text_area(key="design-text").input(LENET).run()
    no_exception(at)
    assert at.session_state["model"] == opened.design_name(LENET)
    assert "mynet" in texts(at) and "your design" in texts(at)
    assert "61,706" in texts(at) + "".join(str(m.value) for m in at.metric)  # LeNet-5's parameters


def test_an_error_names_the_layer_and_marks_its_line() -> None:
    at = open_page("architectures")
    at.text_area(key="design-text").input(TOO_SMALL).run()
    no_exception(at)
    assert at.session_state["model"] == DEFAULT_MODEL  # the page keeps its model
    shown = texts(at) + "\n".join(str(code.value) for code in at.code)
    assert "conv" in shown and "→" in shown, shown


def test_a_design_link_opens_the_design_in_the_editor() -> None:
    name = opened.design_name(LENET)
    at = open_page("architectures", model=name)
    assert at.session_state["model"] == name
    assert at.text_area(key="design-text").value == as_lines(name.removeprefix(opened.DESIGN_PREFIX))
    short = open_page("architectures", design=LENET.replace("\n", "; "))
    assert short.session_state["model"] == name


def test_a_hostile_design_link_is_refused_with_a_message() -> None:
    at = open_page("architectures", design="<script>alert(1)</script>" * 40)
    assert at.session_state["model"] == DEFAULT_MODEL
    assert "cannot be opened" in texts(at)


def test_a_catalogue_model_opens_and_is_marked_as_torchvisions() -> None:
    at = open_page("architectures")
    at.selectbox(key="catalogue-choice").select("shufflenet_v2_x0_5").run()
    at.button(key="catalogue-open").click().run()
    no_exception(at)
    assert at.session_state["model"] == "tv:shufflenet_v2_x0_5"
    assert "not checked against a second implementation" in texts(at)


def test_an_opened_design_can_be_trained_and_compared() -> None:
    at = open_page("architectures")
    at.text_area(key="design-text").input(LENET).run()
    name = opened.design_name(LENET)
    at.switch_page("../pages/training.py").run()
    no_exception(at)
    assert name in at.selectbox(key="train-arch").options or any(
        "mynet" in option for option in at.selectbox(key="train-arch").options)
    at.switch_page("../pages/compare.py").run()
    no_exception(at)
    assert any("mynet" in option for option in at.multiselect[0].options)


def test_a_design_has_no_fidelity_tab_and_its_source_is_its_text_and_module() -> None:
    at = open_page("architectures", model=opened.design_name(LENET))
    assert [tab.label for tab in at.tabs] == ["Layer table", "Charts", "Block diagram", "Source code"]
    assert "core/models/designed.py" in texts(at)
    assert "# conv 6 k5 p2" in at.code[-1].value and "class DesignedModel" in at.code[-1].value
    zoo = open_page("architectures", model="lenet5")
    assert "Fidelity to the course notes" in [tab.label for tab in zoo.tabs]
