"""Design your own CNN and open any torchvision CNN, on the Architectures page.

A design is typed in a short text spec; each change that parses and fits opens it as the page's model, so the
layer table, the parameters, MACs, receptive field and diagram below all follow it. An error names the layer and
the cause at its line. Designs are kept in the run store's library and travel in the URL (``?model=design:…``,
or a short ``?design=…`` link).
"""

from __future__ import annotations

import streamlit as st

from core.errors import ExplorerError
from core.models import catalogue, design_spec, opened
from core.runs import designs
from explorer import opened_models, services, widgets

TEXT_KEY = "design-text"
ERROR_KEY = "design-error"
FOR_KEY = "design-for"  # the design the editor's text belongs to
EXAMPLE = "name lenet5\ninput 1x28x28\nconv 6 k5 p2\nmaxpool 2\nconv 16 k5\nmaxpool 2\nconv 120 k5\nfc 84\nfc 10"
SYNTAX = (
    "One statement per line (or `;`): `name WORD` · `input CxHxW` · `conv OUT kK [sS] [pP] [bn] [linear]` · "
    "`maxpool K [sS] [pP]` · `avgpool K` · `gap` (global average pool) · `bn` · `relu` · `dropout P` · "
    "`fc OUT` · `residual { … }` (body + shortcut) · `parallel { … | … }` (branches concatenated). "
    "Each conv and fc has a ReLU after it except the last fc (the classifier); `linear` removes it."
)


def as_lines(canonical: str) -> str:
    """A design's canonical one-line text as the editor shows it: one top-level statement per line."""
    lines, depth, current = [], 0, ""
    for part in canonical.split("; "):
        current = f"{current}; {part}" if current else part
        depth += part.count("{") - part.count("}")
        if depth == 0:
            lines.append(current)
            current = ""
    return "\n".join(lines + ([current] if current else []))


def _apply(picker_key: str) -> None:
    """The editor changed: open the design and select it, or keep the error to show at its line."""
    text = st.session_state.get(TEXT_KEY, "")
    try:
        name = opened_models.open_model(opened.design_name(text))
    except ExplorerError as error:
        st.session_state[ERROR_KEY] = error
        return
    st.session_state.pop(ERROR_KEY, None)
    st.session_state[FOR_KEY] = name  # the editor keeps the text as typed, not the canonical form
    st.session_state[picker_key] = name


def _load(picker_key: str, kept: dict[str, str]) -> None:
    """Open the saved design chosen in the library."""
    chosen = st.session_state.get("design-library")
    if chosen in kept:
        st.session_state[TEXT_KEY] = as_lines(kept[chosen])
        _apply(picker_key)


def _open_catalogue(picker_key: str) -> None:
    """Open the torchvision model chosen in the catalogue (its error is kept to show)."""
    chosen = st.session_state.get("catalogue-choice")
    if chosen is None:
        return
    try:
        st.session_state[picker_key] = opened_models.open_model(opened.catalogue_name(chosen))
        st.session_state.pop("catalogue-error", None)
    except ExplorerError as error:
        st.session_state["catalogue-error"] = error


def _show_error(text: str, error: ExplorerError) -> None:
    """The error, and where it is: the line at fault marked in the text."""
    widgets.show_error(error)
    line = getattr(error, "line", 0)
    lines = text.splitlines()
    if 0 < line <= len(lines):
        shown = range(max(1, line - 2), min(len(lines), line + 2) + 1)
        marked = "\n".join(f"{'→' if n == line else ' '} {n:>3}  {lines[n - 1]}" for n in shown)
        column = getattr(error, "column", 0)
        st.code(marked + (f"\n        {' ' * (column - 1)}^" if column else ""), language=None)


def editor(current: str, picker_key: str = "model") -> None:
    """The design editor, opened on the current design (or an example of LeNet-5 when the page shows another
    model): each change that fits becomes the page's model."""
    is_design = current.startswith(opened.DESIGN_PREFIX)
    if is_design and st.session_state.get(FOR_KEY) != current:  # opened by a link, the picker or the library
        st.session_state[TEXT_KEY] = as_lines(current.removeprefix(opened.DESIGN_PREFIX))
        st.session_state[FOR_KEY] = current
        st.session_state.pop(ERROR_KEY, None)
    st.session_state.setdefault(TEXT_KEY, EXAMPLE)
    # Open while it shows a design, and while it shows an error (a first design that does not fit yet).
    with st.expander("Design your own CNN", expanded=is_design or ERROR_KEY in st.session_state,
                     icon=":material/edit:"):
        st.caption(SYNTAX)
        text = st.text_area("Layers", key=TEXT_KEY, height=260, max_chars=design_spec.MAX_TEXT,
                            on_change=_apply, args=(picker_key,),
                            help="Press Ctrl+Enter or click outside to apply. The table, the counts and the "
                                 "diagram below follow the design.")
        error = st.session_state.get(ERROR_KEY)
        if error is not None:
            _show_error(text, error)
        elif not is_design:
            st.button("Open this design", key="design-open", icon=":material/draw:", on_click=_apply,
                      args=(picker_key,))
        if is_design:
            _library(current, picker_key)


def _library(current: str, picker_key: str) -> None:
    """Save the current design to the run store's library, or load one saved there."""
    save, load = st.columns([1, 2])
    if save.button("Save to the library", key="design-save", icon=":material/save:"):
        saved = widgets.attempt(designs.save, services.run_store(), current.removeprefix(opened.DESIGN_PREFIX))
        if saved is not None:
            st.toast(f"Saved {widgets.literal(saved.name)} ({saved.parameters:,} parameters).")
    kept = widgets.attempt(designs.library, services.run_store())
    if kept:
        labels = {d.id: f"{d.name} · {d.parameters:,} parameters · {d.id}" for d in kept}
        load.selectbox("Saved designs", list(labels), format_func=labels.__getitem__, index=None,
                       placeholder="Open a saved design…", key="design-library", on_change=_load,
                       args=(picker_key, {d.id: d.text for d in kept}))


@st.cache_data(show_spinner=False)
def catalogue_names() -> list[str]:
    """torchvision's classification CNNs that open here (the list depends only on the installed torchvision)."""
    return catalogue.supported_models()


def catalogue_picker(picker_key: str = "model") -> None:
    """Open any torchvision classification CNN by name (torchvision's own code, marked as such)."""
    with st.expander("Open any torchvision CNN", icon=":material/apps:"):
        names = catalogue_names()
        chosen = st.selectbox("torchvision model", names, index=None, placeholder="e.g. densenet121",
                              key="catalogue-choice")
        st.caption(f"{len(names)} of torchvision's classification CNNs open here; vision transformers have no "
                   "convolutional receptive field and are not offered.")
        st.button("Open", key="catalogue-open", icon=":material/open_in_new:", disabled=chosen is None,
                  on_click=_open_catalogue, args=(picker_key,))
        error = st.session_state.get("catalogue-error")
        if error is not None:
            widgets.show_error(error)
