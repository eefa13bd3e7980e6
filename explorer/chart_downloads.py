"""Every Plotly chart saves itself as PNG or SVG: the camera in its toolbar (the mode bar) downloads the format
chosen once in the sidebar. Plotly's mode bar holds one download button, so the sidebar picks its format."""

from __future__ import annotations

from typing import Any

import streamlit as st

KEY = "chart-format"
FORMATS = ("PNG", "SVG")


def choice() -> None:
    """The sidebar's format picker; call once per run from the entry script."""
    st.sidebar.radio("Chart downloads", FORMATS, key=KEY, horizontal=True,
                     help="The camera in each chart's toolbar saves the chart in this format: PNG (at twice the "
                          "screen's resolution) for slides, SVG to edit or print at any size.")


def config() -> dict[str, Any]:
    """The Plotly config of every chart: its camera button downloads the chosen format."""
    chosen = str(st.session_state.get(KEY) or FORMATS[0]).lower()
    return {"displaylogo": False, "toImageButtonOptions": {"format": chosen, "scale": 2 if chosen == "png" else 1}}
