"""Presenter mode: one switch in the sidebar, or ``?present=1`` in the URL, makes every page readable on a
1280×720 projector (larger text, charts and tables) and hides the controls a lecture does not need.

The entry script calls ``switch()`` on every run, so every page follows the mode; pages ask ``active()`` to drop
editing controls and pass their figures through ``figure()``.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

PARAM = "present"
KEY = "presenter-mode"
FONT_PX = 20  # the root font size in presenter mode (Streamlit's default is 16): every rem-sized element grows
CHART_FONT_PX = 17  # text inside charts

# Larger type everywhere (Streamlit sizes text, widgets and spacing in rem); Plotly's text, drawn in SVG with
# inline sizes, gets its own rules; narrower side padding gives the content the projector's width back. The
# toolbar, the element toolbars and Plotly's mode bar are editing chrome a lecture does not need. Data grids
# draw on a canvas with a fixed font: magnifying them (CSS zoom) made the canvas overflow its column. An upload
# box's instructions (size limit, file types) wrap instead of ending in an ellipsis at the larger type.
CSS = f"""
html {{ font-size: {FONT_PX}px !important; }}
.stApp [data-testid="stMarkdownContainer"] p, .stApp [data-testid="stMarkdownContainer"] li {{ line-height: 1.45; }}
.js-plotly-plot .xtick text, .js-plotly-plot .ytick text, .js-plotly-plot .legendtext,
.js-plotly-plot .annotation-text, .js-plotly-plot .textpoint text, .js-plotly-plot .bartext,
.js-plotly-plot .cbaxis text {{ font-size: {CHART_FONT_PX - 2}px !important; }}
.js-plotly-plot .xtitle, .js-plotly-plot .ytitle, .js-plotly-plot .cbtitle text {{
  font-size: {CHART_FONT_PX}px !important; }}
.js-plotly-plot .gtitle {{ font-size: {CHART_FONT_PX + 3}px !important; }}
[data-testid="stMainBlockContainer"] {{ padding: 2.5rem 2rem 4rem 2rem; }}
[data-testid="stTable"] table {{ font-size: 1rem; }}
[data-testid="stFileUploaderDropzoneInstructions"] * {{ white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; }}
[data-testid="stToolbar"], [data-testid="stAppDeployButton"], [data-testid="stMainMenu"],
[data-testid="stElementToolbar"], .js-plotly-plot .modebar-container {{ display: none !important; }}
"""


def active() -> bool:
    """True while presenter mode is on."""
    return bool(st.session_state.get(KEY, False))


def editing() -> bool:
    """True when editing controls should be shown (presenter mode off)."""
    return not active()


def switch() -> bool:
    """The sidebar switch, started from ``?present=1``; keeps the URL in step and styles the page. Call once per
    run from the entry script (page changes clear unbound URL parameters, so it writes ``present`` back)."""
    if KEY not in st.session_state:
        st.session_state[KEY] = st.query_params.get(PARAM, "").lower() in ("1", "true", "yes", "on")
    on = st.sidebar.toggle("Presenter mode", key=KEY,
                           help="Large text, charts and tables for a 1280×720 projector; editing controls hidden. "
                                "Add ?present=1 to a link to open a page this way.")
    if on:
        st.query_params[PARAM] = "1"
        st.html(f"<style>{CSS}</style>")
    elif PARAM in st.query_params:
        del st.query_params[PARAM]
    return on


def figure(fig: Any, height: int | None = None) -> Any:
    """A Plotly figure with fonts (and optionally height) for the current mode; returns the same figure."""
    if active():
        fig.update_layout(font=dict(size=CHART_FONT_PX), title_font=dict(size=CHART_FONT_PX + 3),
                          hoverlabel=dict(font_size=CHART_FONT_PX))
        if height:
            fig.update_layout(height=int(height * 1.2))
    elif height:
        fig.update_layout(height=height)
    return fig


def graph_font() -> int:
    """Font size for Graphviz diagrams in the current mode."""
    return 15 if active() else 11
