"""The models a session opened beside the zoo: torchvision catalogue models (``tv:NAME``) and designs
(``design:TEXT``). Every model picker offers them after the registered models, so each view works on them."""

from __future__ import annotations

import streamlit as st

from core import models
from core.errors import ExplorerError
from core.models import opened
from explorer import services, widgets

KEY = "opened-models"
MAX_OPENED = 8  # the oldest opened model leaves the pickers past this (a run keeps its model in its name)
DESIGN_PARAM = "design"


def opened_names() -> list[str]:
    """The opened models of this session, oldest first."""
    return list(st.session_state.get(KEY, []))


def open_model(name: str) -> str:
    """Open ``name`` (a ``tv:`` or ``design:`` name) in this session's pickers; raises the ExplorerError that
    says why it cannot be opened. Returns the name (a registered one is returned as it is)."""
    spec = models.spec(name)
    if not opened.is_opened(spec.name):
        return spec.name
    kept = [n for n in opened_names() if n != spec.name]
    # A new design replaces the design opened before it: typing should not fill the pickers with drafts.
    if spec.origin == "design":
        kept = [n for n in kept if not n.startswith(opened.DESIGN_PREFIX)]
    st.session_state[KEY] = (kept + [spec.name])[-MAX_OPENED:]
    return spec.name


def reopen(name: str) -> None:
    """Open ``name`` again if it can be (a run's model after a refresh); one that cannot stays closed: the page
    that shows the run says why where it builds the model."""
    try:
        open_model(name)
    except ExplorerError:
        pass


def options() -> list[str]:
    """What a model picker offers: the registered models, then this session's opened ones."""
    names = models.names()
    return names + [name for name in opened_names() if name not in names]


def backbones() -> list[str]:
    """What the Transfer page offers: the registered models with ImageNet weights, then the torchvision CNNs
    opened this session (each has torchvision's ImageNet weights; a design has none)."""
    names = services.names_with_weights()
    return names + [name for name in opened_names() if name.startswith(opened.CATALOGUE_PREFIX)]


def follow_links() -> None:
    """Open the model a link names: ``?model=tv:…`` or ``?model=design:…``, or ``?design=TEXT`` (turned into
    ``?model=design:…``). One that cannot be opened is said, and the page goes on with its default."""
    text = st.query_params.get(DESIGN_PARAM)
    if text is not None:
        del st.query_params[DESIGN_PARAM]
        try:
            st.query_params[widgets.MODEL_PARAM] = opened.design_name(text)
        except ExplorerError as error:
            st.warning(f"The link's design cannot be opened. {widgets.literal(error)}")
    requested = st.query_params.get(widgets.MODEL_PARAM)
    # Only a link (the URL changed from outside the session): this session's own choice reaches the URL after it.
    if (requested is not None and opened.is_opened(requested) and requested not in opened_names()
            and widgets.url_changed(widgets.MODEL_PARAM)):
        reopen(requested)  # one that cannot be opened: the picker says why and shows its default
