"""Entry script: ``python -m streamlit run explorer/app.py`` from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only explorer/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from explorer import chart_downloads, presenter, services, upload_budget, widgets  # noqa: E402
from explorer import navigation as navigation_pages  # noqa: E402
from explorer.navigation import HOME, HOME_ALIAS  # noqa: E402

st.set_page_config(page_title="CNN Architecture Explorer", page_icon="🧠", layout="wide")
upload_budget.install()  # once per server process: what one session may hold in uploads
services.mark_page_activity()  # CPU workers leave the server its core while pages are served (core.activity)

PAGES = [st.Page(page.script, title=page.title, icon=page.icon, url_path=page.url_path, default=page is HOME)
         for page in navigation_pages.PAGES]


def _home_alias() -> None:
    """``/home``: the default page lives at ``/``, so its own address would be "Page not found"; go there."""
    st.switch_page(PAGES[0], query_params=st.query_params.to_dict())


HIDDEN = [st.Page(_home_alias, title="Home", url_path=HOME_ALIAS, visibility="hidden")]  # a link to /home works

navigation = st.navigation(PAGES + HIDDEN)
presenter.switch()  # every page follows presenter mode (the sidebar switch, or ?present=1)
chart_downloads.choice()  # the format every chart's camera button saves
services.serve_queue_at_start()  # once per server process: runs queued before a restart train without a visit
with st.sidebar:
    st.caption(f"Device: {services.device_name()}")
with widgets.unexpected_errors_logged():  # a short message with an id on the page; the traceback in the server log
    navigation.run()
