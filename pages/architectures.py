"""Architectures: one model at a time, from the paper to the layer table to the source."""

import streamlit as st

from explorer import components, design_view, presenter, services, topology_view, widgets

st.title("Architectures")
name = components.model_picker()
design_view.editor(name)
design_view.catalogue_picker()
spec = services.model_spec(name)
components.paper_card(name)

minimum, maximum = services.input_range(name)
left, right = st.columns(2)
size = left.number_input(
    "Input size (px)", min_value=1, max_value=2048, value=spec.input_size, step=1, key=f"size-{name}",
    help=f"{spec.display_name} takes {minimum} px and up" + (f" to {maximum} px" if maximum else "")
    + f"; it was designed for {spec.input_size} px. MACs and shapes follow the size you choose.",
)
classes = spec.num_classes
if presenter.editing():  # a lecture shows the published head; changing it is for exploring on one's own
    classes = right.number_input("Classes", min_value=1, max_value=100_000, value=spec.num_classes, step=1,
                                 key=f"classes-{name}")
summary = widgets.attempt(services.summary, name, int(size), int(classes))
if summary is None:
    st.stop()

components.summary_metrics(summary)
st.caption(components.MACS_NOTE)

FIDELITY = "Fidelity to the course notes"
# A model the course notes do not give figures for (a newer one, a design, a torchvision CNN) has no such tab.
TABS = ["Layer table", "Charts", "Block diagram", *([FIDELITY] if spec.notes_figures else []), "Source code"]
tabs = dict(zip(TABS, widgets.url_choice("tab", TABS, TABS[0], lambda: st.tabs(TABS, key="tab", on_change="rerun")),
                strict=True))
with tabs["Layer table"]:
    components.layer_table(summary)
with tabs["Charts"]:
    components.layer_charts(summary)
with tabs["Block diagram"]:
    topology_view.diagram(name)
if FIDELITY in tabs:
    with tabs[FIDELITY]:
        st.caption("Figures at the model's native input size; accuracies cannot be computed from an architecture, "
                   "so they are checked against the published references.")
        components.fidelity_table(services.fidelity_rows(name))
with tabs["Source code"]:
    st.caption(f"`{spec.builder_module.replace('.', '/')}.py`: the code that built the model above.")
    st.code(services.model_source(name), language="python", line_numbers=True)
