"""Entry script: ``python -m streamlit run explorer/app.py`` from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only explorer/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from explorer import presenter, services, widgets  # noqa: E402

st.set_page_config(page_title="CNN Architecture Explorer", page_icon="🧠", layout="wide")

PAGES = [
    st.Page("../pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("../pages/architectures.py", title="Architectures", icon=":material/account_tree:", url_path="architectures"),
    st.Page("../pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("../pages/training.py", title="Training", icon=":material/monitoring:", url_path="training"),
    st.Page("../pages/transfer.py", title="Transfer learning", icon=":material/move_up:", url_path="transfer"),
    st.Page("../pages/classify.py", title="Classify", icon=":material/image_search:", url_path="classify"),
    st.Page("../pages/inside.py", title="Inside the network", icon=":material/layers:", url_path="inside"),
]

navigation = st.navigation(PAGES)
presenter.switch()  # every page follows presenter mode (the sidebar switch, or ?present=1)
with st.sidebar:
    st.caption(f"Device: {services.device_name()}")
with widgets.unexpected_errors_logged():  # a short message with an id on the page; the traceback in the server log
    navigation.run()
