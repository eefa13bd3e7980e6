"""The architecture's real topology: parallel branches, skip connections, and blocks that open into their layers."""

from __future__ import annotations

import streamlit as st

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
    st.graphviz_chart(services.topology_dot(graph, presenter.graph_font()))
