"""What a filter looks for (Inside the network): the image each channel of a chosen convolution answers to most,
found by activation maximisation in the Lucid manner (``core.feature_vis``), computed on demand with progress and
cached per model and layer."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import streamlit as st

from explorer import services, widgets

GALLERY = 8  # channels per gallery: one row on a projector
STEPS = 128  # Adam steps per channel: structure shows by then on LeNet-5 and on an ImageNet network
LARGEST = 128  # px: an ImageNet model's pattern at 128 px, not 224 (a third of the time on a CPU)
KEPT = 64  # galleries kept on the server
SHOWN = "filters-shown"  # the gallery this session asked for: shown again on every rerun while it is chosen
_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False)
def _computed() -> OrderedDict[tuple, list[np.ndarray]]:
    """The galleries computed on this server, shared by every session (a second look, or another student's, is
    instant). Not ``st.cache_data``: that would replay the progress bar's updates into a page that has no bar."""
    return OrderedDict()


def _gallery(model: services.Classifier, layer: str, first: int, count: int,
             progress: Callable[[float], None]) -> list[np.ndarray]:
    """The images of channels ``first``…``first + count - 1`` of ``layer`` in ``model`` (H × W × C in [0, 1]),
    from the server's cache or computed now with ``progress``."""
    cache, wanted = _computed(), (model.key, layer, first, count, STEPS)
    with _LOCK:
        if wanted in cache:
            return cache[wanted]
    size = min(model.crop, LARGEST)
    images = []
    for i, channel in enumerate(range(first, first + count)):
        def report(share: float, done: int = i) -> None:
            progress((done + share) / count)

        found = services.visualise_channel(model, layer, channel, size, STEPS, report)
        images.append(found.image.permute(1, 2, 0).numpy())
    with _LOCK:
        cache[wanted] = images
        while len(cache) > KEPT:
            cache.popitem(last=False)
    return images


def show(key: str, random_weights: bool) -> None:
    """The gallery: a convolution, a range of its channels, and a button that computes their images."""
    model = widgets.attempt(services.classifier, key)
    if model is None:
        return
    titles = services.conv_titles(model)
    if not titles:
        st.info("This model has no convolution to visualise.")
        return
    if random_weights:
        st.warning("This model's weights are random: the images below are noise, because an untrained filter "
                   "answers to no pattern in particular. Train it (or use ImageNet weights) to see structure.",
                   icon=":material/casino:")
    names = list(titles)
    left, right = st.columns([2, 1])
    layer: str = left.selectbox("Convolution", names, index=len(names) // 2, format_func=titles.__getitem__,
                           key="filters-layer", help="Early convolutions answer to edges and colours, later ones "
                                                     "to textures and parts.") or names[0]
    channels = services.conv_channels(model, layer)
    if channels < 1:
        st.info("That layer has no filters to visualise.")
        return
    first = int(right.number_input("From channel", 0, max(channels - 1, 0), 0, step=GALLERY, key="filters-first"))
    count = min(GALLERY, channels - first)
    wanted = (key, layer, first)
    if st.button(f"Show what channels {first}–{first + count - 1} look for", key="filters-go",
                 icon=":material/visibility:"):
        st.session_state[SHOWN] = wanted
    if st.session_state.get(SHOWN) != wanted:
        st.caption(f"{STEPS} optimisation steps per channel on an image of {min(model.crop, LARGEST)} px: seconds "
                   "for LeNet-5, about a minute for eight channels of an ImageNet network on a CPU.")
        return
    bar = st.progress(0.0, text="Optimising the images…")
    images = widgets.attempt(_gallery, model, layer, first, count,
                             lambda share: bar.progress(min(share, 1.0), text="Optimising the images…"))
    bar.empty()
    if images is None:
        return
    columns = st.columns(GALLERY)
    for column, channel, image in zip(columns, range(first, first + count), images, strict=False):
        column.image(image, caption=f"channel {channel}", width="stretch", clamp=True)
    st.caption("Each image is the input that channel answers to most strongly, on average over its feature map: "
               "a random image tuned step by step (Adam), kept smooth by building it from its frequencies and "
               "jittering it each step, as in Olah et al.'s Feature Visualization (Distill, 2017).")
