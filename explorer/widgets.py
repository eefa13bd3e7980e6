"""Widgets: small pieces of UI that render one thing and own their session-state keys.

The edge where core's typed errors become messages on the page (never a traceback), and where the
per-session choices that a slide can link to (the model, the followed run) live in the URL.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import streamlit as st

from core.errors import ExplorerError, quoted
from explorer import services, upload_budget

MODEL_PARAM = "model"
RUN_PARAM = "run"
GROUP_PARAM = "group"
T = TypeVar("T")


# Every ASCII punctuation character may be backslash-escaped in Markdown. These can start a link, an image,
# emphasis, code, HTML or an entity, a table, LaTeX, an emoji or colour code (``:red[…]``), or a bare URL or e-mail
# address that GitHub-flavoured Markdown would link (``https://``, ``www.``, ``a@b.c``) anywhere in a line; the
# second set only at its start (a heading, a list, a rule).
_MARKDOWN_ANYWHERE = re.compile(r"([\\`*_{}\[\]()<>!|~$&:@.])")
_MARKDOWN_AT_START = "#-+"  # (a numbered list needs its dot, escaped above)
# Streamlit links bare URLs and e-mail addresses, and turns ``:smile:``, ``:material/home:`` and ``:red[…]`` into
# emoji, icons and colours, in the text *after* escapes are resolved (the browser test saw ``https\://x`` become a
# link): an invisible WORD JOINER (U+2060) after every colon, inside ``www.`` and before ``@`` stops them all.
_AUTOLINK = re.compile(r"(?i)(?<=:)|(?<=www)(?=\.)|(?=@)")


def literal(text: object) -> str:
    """``text`` escaped so that Markdown shows it exactly as it is: no link, image, formatting, HTML or emoji from
    it. Use it on every string a user or a file controls (URL parameters, file, folder and class names, run names,
    messages that quote them) before it goes into markdown, a caption, a message box or a widget label."""
    unlinked = _AUTOLINK.sub("\u2060", " ".join(str(text).splitlines()))
    escaped = _MARKDOWN_ANYWHERE.sub(r"\\\1", unlinked)
    return "\\" + escaped if escaped[:1] and escaped[0] in _MARKDOWN_AT_START else escaped


def chart_literal(text: object) -> str:
    """``text`` for a Plotly label (axis ticks, bar names), which renders a little HTML (links, bold): its ``&``,
    ``<`` and ``>`` as entities, so that it shows as it is."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def show_error(error: Exception) -> None:
    """A clear message on the page for a core error, shown literally, with server paths made relative; never a
    traceback."""
    st.error(literal(services.public_text(str(error))), icon=":material/error:")


def show_note(note: str) -> None:
    """A warning the user must read before trusting what follows (a damaged checkpoint, the one used instead),
    shown literally, with server paths made relative; nothing when ``note`` is empty."""
    if note:
        st.warning(literal(services.public_text(note)), icon=":material/warning:")


_LOG = logging.getLogger("cnn_explorer")
if not _LOG.handlers:  # Streamlit configures only its own loggers: make sure ours reaches the server's stderr
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _LOG.addHandler(_handler)
    _LOG.setLevel(logging.INFO)


@contextmanager
def unexpected_errors_logged() -> Iterator[None]:
    """Run a page: an ExplorerError that escaped it becomes its message; any other error a short message with an
    id, its traceback in the server log under that id. Streamlit's own control flow (``st.stop``, ``st.rerun``,
    page switches) is not an Exception and passes through."""
    try:
        yield
    except ExplorerError as error:
        show_error(error)
    except Exception:  # noqa: BLE001 — the last line of defence: nothing raw reaches the browser
        error_id = uuid.uuid4().hex[:8]
        _LOG.exception("error %s", error_id)
        st.error(f"Something went wrong on this page (error {error_id}). It has been logged under that id for the "
                 "server's administrator; the rest of the app still works.", icon=":material/error:")


def attempt(action: Callable[..., T], *args: object, **kwargs: object) -> T | None:
    """``action(*args, **kwargs)``, or None after showing why it could not be done."""
    try:
        return action(*args, **kwargs)
    except ExplorerError as error:
        show_error(error)
        return None


def store_ok(key: str = "store") -> bool:
    """True if the run database can be read; else its message and False, with a button that rebuilds it only when
    the database is damaged (a full disk, a read-only folder or a lock each say what to do instead)."""
    rebuilt = st.session_state.pop(f"{key}-rebuilt", None)
    if rebuilt is not None:
        st.success(f"Run database rebuilt: {rebuilt} runs recovered from their checkpoints.",
                   icon=":material/check_circle:")
    try:
        services.check_store()
        return True
    except ExplorerError as error:
        show_error(error)
        if not getattr(error, "rebuildable", False):
            return False
    if st.button("Rebuild the run database from the checkpoints", key=f"{key}-rebuild", icon=":material/build:"):
        count = attempt(services.rebuild_store)
        if count is not None:
            st.session_state[f"{key}-rebuilt"] = count
            st.rerun()
    return False


# What this session last wrote into each URL parameter. A value in the URL that differs from it came from outside
# the session: Back or Forward, a pasted link, the first load. Streamlit makes each change the script writes a
# browser history entry (``history.pushState``) and, on Back or Forward, reruns the page with that entry's URL.
_WRITTEN = "url-written"


def _history_navigation() -> bool:
    """Whether this script run was started by the browser's Back or Forward button."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return bool(getattr(get_script_run_ctx(), "is_history_navigation", False))


def url_changed(param: str) -> bool:
    """Whether the URL's ``param`` changed from outside this session since the session last wrote it.

    A page change drops unbound parameters from the URL; that is not a change (the session keeps what it
    follows), while Back or Forward to an entry without the parameter is."""
    written: dict[str, str | None] = st.session_state.setdefault(_WRITTEN, {})
    value = st.query_params.get(param)
    if param not in written:
        return True
    return value != written[param] and (value is not None or _history_navigation())


def write_url(param: str, value: str | None) -> None:
    """Put ``value`` into the URL (None removes the parameter) and remember it, so Back and Forward step through
    this session's choices."""
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
    else:
        st.query_params[param] = value
    st.session_state.setdefault(_WRITTEN, {})[param] = value


def follow_url(param: str, state_key: str, read: Callable[[], object]) -> None:
    """Before ``state_key`` is used this run: take ``read()`` (the URL's value, checked) when the URL changed
    from outside the session (``url_changed``)."""
    if url_changed(param):
        st.session_state[state_key] = read()
        st.session_state.setdefault(_WRITTEN, {})[param] = st.query_params.get(param)


def url_choice(key: str, options: Sequence[str], default: str, draw: Callable[[], T]) -> T:
    """Draw (``draw()``, returned) a widget keyed ``key`` whose value is one of ``options``, kept in the URL parameter of
    the same name: a link opens it, and each change is a browser history entry that Back and Forward step
    through (a widget bound to the URL by Streamlit itself replaces the entry instead). The default is left out of
    the URL."""

    def requested() -> str:
        value = st.query_params.get(key)
        return value if value is not None and value in options else default

    # A widget's state goes when a run does not draw it (back from another page), and options can change under it
    # (another model's layers): then the URL decides. The value is set again every run: a widget that was not drawn
    # in the last run (the photo box while Upload was chosen) otherwise reappears in the browser at its default
    # while the server keeps the kept value.
    kept = st.session_state.get(key)
    st.session_state[key] = kept if kept in options else requested()
    follow_url(key, key, requested)
    drawn = draw()
    value = st.session_state.get(key)
    write_url(key, None if value in (None, default) else str(value))
    return drawn


def url_model(default: str) -> str:
    """The model named in the URL (``?model=``), or ``default`` with a warning if it is unknown."""
    requested = st.query_params.get(MODEL_PARAM)
    if requested is None:
        return default
    try:
        return services.model_spec(requested).name
    except ExplorerError as error:
        st.warning(f"The link asks for a model this app does not have. {literal(error)} Showing {default}.")
        return default


def set_url_model(name: str | None) -> None:
    """Write the selected model into the URL, so the page can be linked from a slide (None: the default, left out)."""
    write_url(MODEL_PARAM, name)


def run_url(run_id: str | None) -> None:
    """Keep the followed run in the URL, so a refresh or a second tab reattaches to it."""
    write_url(RUN_PARAM, run_id or None)


def group_url(group: str | None) -> None:
    """Keep the followed group of runs (a strategy race) in the URL, so a refresh reattaches to it."""
    write_url(GROUP_PARAM, group or None)


def url_group() -> str | None:
    """The group of runs named in the URL (checked by whoever shows it)."""
    return st.query_params.get(GROUP_PARAM) or None


def url_run() -> str | None:
    """The run named in the URL, if it exists."""
    run_id = st.query_params.get(RUN_PARAM)
    if not run_id:
        return None
    try:
        services.run_store().run(run_id)
        return run_id
    except ExplorerError:
        st.warning(f"The link names run {literal(quoted(run_id))}, which is not in this app's run store.")
        return None


# Per-uploader limits (MB), beside the weights' own (services.WEIGHTS_UPLOAD_MB). Streamlit's browser enforces
# ``max_upload_size``, its server only the global ``server.maxUploadSize`` (at least the largest of these):
# :func:`within_limit` checks again here.
IMAGE_UPLOAD_MB = services.IMAGE_UPLOAD_MB
ZIP_UPLOAD_MB = services.ZIP_UPLOAD_MB


def within_limit(upload: object, limit_mb: int) -> bool:
    """True if an uploaded file is within its uploader's limit; otherwise say so and drop the file from the server's
    memory (the server's own check: the browser's can be bypassed)."""
    try:
        services.check_upload_size(int(getattr(upload, "size", 0)), limit_mb)
    except ExplorerError as error:
        st.error(literal(f"{quoted(getattr(upload, 'name', 'the file'))}: {error}"), icon=":material/error:")
        upload_budget.release(upload)  # not held until the widget changes or the session ends
        return False
    return True


def zip_dataset(upload: object) -> str | None:
    """An uploaded zip (a Streamlit UploadedFile) as a data-set name, saying what was skipped; None after saying why
    it was refused."""
    if not within_limit(upload, ZIP_UPLOAD_MB):
        return None
    extracted = attempt(services.zip_dataset, upload)
    if extracted is None:
        return None
    if extracted.skipped:
        st.caption(f"{literal(quoted(getattr(upload, 'name', 'zip')))}: {extracted.skipped} hidden, __MACOSX or non-image "
                   "files were skipped.")
    return extracted.dataset


def preset_picker() -> str | None:
    """Choose a downloadable preset; download it (with a progress bar) on request; its data-set name or None."""
    presets = services.TRANSFER_PRESETS
    name = st.selectbox("Preset", list(presets), format_func=lambda n: presets[n].title, key="transfer-preset")
    if name is None:  # only without options
        return None
    st.caption(presets[name].description)
    if services.is_preset_downloaded(name):
        return attempt(services.fetch_preset, name)
    if not st.button(f"Download {presets[name].title}", key=f"download-{name}"):
        st.caption("Not on this machine yet: it is downloaded once (internet needed), then works offline.")
        return None
    bar = st.progress(0.0, text="Downloading…")

    def report(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=f"Downloading… {done / 2**20:,.1f} MiB")

    try:
        return attempt(services.fetch_preset, name, report)
    finally:
        bar.empty()
