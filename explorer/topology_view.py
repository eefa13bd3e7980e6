"""The architecture's real topology: parallel branches, skip connections, and blocks that open into their layers."""

from __future__ import annotations

from typing import Literal

import streamlit as st

from core import export
from core.errors import ExplorerError
from explorer import presenter, services

LEGEND = ("Read top to bottom; every box shows its output shape (channels × height × width) and its parameters. "
          "**Green** boxes are parallel branches joined by a **concat** node; an **orange** arrow is a skip "
          "connection that carries a block's input around its body to the **+** that adds them.")


def diagram(name: str) -> None:
    """The graph of model ``name`` with a picker of blocks to open; the open blocks live in the URL."""
    closed = services.topology(name)
    st.caption(LEGEND)
    opened: list[str] = []
    if closed.openable:
        opened = st.multiselect(
            "Open blocks", list(closed.openable), key=f"open-{name}", bind="query-params",
            placeholder="Pick a block to see its layers",
            help="Draw a block layer by layer, each with its output shape and parameters. The choice is kept in "
                 "the URL, so a slide can link to it.")
    else:
        st.caption("A plain chain of layers: every layer feeds the next, nothing to open.")
    graph = services.topology(name, tuple(sorted(opened)))
    source = services.topology_dot(graph, presenter.graph_font())
    st.graphviz_chart(source)
    downloads(source, f"{name}-topology")


@st.cache_data(max_entries=32, show_spinner=False)
def _drawn(source: str, format: Literal["svg", "png"]) -> bytes:
    """The diagram drawn by Graphviz (the same source always gives the same file)."""
    return export.render_dot(source, format)


def downloads(source: str, stem: str) -> None:
    """The diagram as SVG and PNG (drawn by Graphviz's dot on the server; Streamlit's chart cannot export) and as
    its DOT source; where Graphviz is missing, the DOT source and why."""
    svg, png, dot = st.columns(3)
    try:
        drawn = {format: _drawn(source, format) for format in ("svg", "png")}
    except ExplorerError as error:
        svg.caption(str(error))
    else:
        svg.download_button("Diagram (SVG)", drawn["svg"], file_name=f"{stem}.svg", mime="image/svg+xml",
                            on_click="ignore", key=f"{stem}-svg", icon=":material/download:")
        png.download_button("Diagram (PNG)", drawn["png"], file_name=f"{stem}.png", mime="image/png",
                            on_click="ignore", key=f"{stem}-png", icon=":material/download:")
    dot.download_button("Its Graphviz source (DOT)", source.encode(), file_name=f"{stem}.dot",
                        mime="text/vnd.graphviz", on_click="ignore", key=f"{stem}-dot")
