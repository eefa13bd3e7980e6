"""Home: what the explorer is, the device in use, and every page (from ``explorer.navigation``)."""

import streamlit as st

from explorer import components, navigation, services

st.title("🧠 CNN Architecture Explorer")
st.markdown(
    "Open the classic convolutional networks and see them work: every number on these pages is computed "
    "from the live PyTorch model, and wherever the course notes, a paper, torchvision or Keras publish a "
    "different figure, the app shows both and says why."
)
st.markdown(f"**Computing on:** {services.device_name()}")

st.subheader("Pages")
listed = [page for page in navigation.PAGES if page is not navigation.HOME]
for start in range(0, len(listed), 2):  # two to a row: a short link, then what the page offers, wrapped
    for column, page in zip(st.columns(2), listed[start:start + 2], strict=False):
        with column.container(border=True):
            st.page_link(page.script, label=page.title, icon=page.icon)
            st.caption(page.blurb)

st.subheader("The models")
st.dataframe(
    [
        {"model": spec.display_name, "year": spec.year, "authors": services.short_authors(spec.authors),
         "paper": spec.paper_url, "input": f"{spec.input_size}×{spec.input_size}×{spec.in_channels}",
         "original data": spec.dataset}
        for spec in (services.model_spec(name) for name in services.model_names())
    ],
    hide_index=True,
    height=components.table_height(len(services.model_names()), cap=100),  # every model, no inner scrolling
    # The year's own width (four digits), not the grid's default: every column then fits 1024 px in presenter mode.
    column_config={"paper": st.column_config.LinkColumn(display_text="paper"),
                   "year": st.column_config.NumberColumn(width=52, format="%d")},
)
st.caption("Link a slide straight to a model: add `?model=resnet50` (or any name) to the Architectures page's address.")
