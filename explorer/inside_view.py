"""Inside the network: one image followed stage by stage, the receptive field of any position drawn on it, and the
first convolution computed by hand at the position a student clicks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image, ImageDraw

from core import classifiers, explain, imaging
from explorer import chart_downloads, presenter, services, widgets

MAPS_PER_STAGE = 6
FIELD_COLOUR = (255, 64, 129)  # the receptive-field square: a magenta that stands out on photos and digits
SHOWN_PX = 300  # small inputs (28×28 digits) are enlarged to about this size, pixel by pixel


def _enlarged(image: Image.Image) -> tuple[Image.Image, int]:
    """The image in RGB, enlarged by a whole factor (nearest neighbour) if small, and that factor."""
    picture = image.convert("RGB")
    factor = max(1, math.ceil(SHOWN_PX / max(picture.size)))
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    return picture, factor


def _pixels(array: np.ndarray, at_least: int = 112) -> Image.Image:
    """A small H × W × 3 map enlarged pixel by pixel, so the browser does not blur its cells."""
    picture = Image.fromarray(array)
    factor = max(1, math.ceil(at_least / max(picture.size)))
    return picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)


def with_field(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The image with a (top, left, bottom, right) box in input pixels drawn on it (clipped to the image)."""
    picture, factor = _enlarged(image)
    top, left, bottom, right = box
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, image.height), min(right, image.width)
    line = max(2, picture.width // 100)
    ImageDraw.Draw(picture).rectangle((left * factor, top * factor, right * factor - 1, bottom * factor - 1),
                                      outline=FIELD_COLOUR, width=line)
    return picture


def _field_text(window: explain.Window, box: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    """How big the field is, and how much of it lies on the image."""
    top, left, bottom, right = box
    whole = f"{window.height}×{window.width} px" if window.height != window.width else f"{window.height} px"
    seen = f"{bottom - top}×{right - left} px of it on the image"
    if window.height >= size[0] and window.width >= size[1]:
        return f"receptive field {whole}: larger than the whole {size[0]}×{size[1]} input ({seen})"
    return f"receptive field {whole} ({seen}); one step on the map moves it {window.jump_y} px"


def _clamped(key: str, high: int, default: int) -> None:
    """Keep a slider's stored value inside its range before the slider is drawn (its range follows the stage)."""
    value = st.session_state.get(key, default)
    st.session_state[key] = min(max(int(value), 0), high)


def _take_click(chart_key: str, row_key: str, col_key: str) -> None:
    """A click on a map chart moves the row and column sliders to the clicked position (before they are drawn)."""
    event: Any = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else (
        event.selection.points if event is not None and hasattr(event, "selection") else [])
    if not points:
        return
    point = (int(round(points[0]["y"])), int(round(points[0]["x"])))
    if st.session_state.get(chart_key + "-taken") != point:
        st.session_state[chart_key + "-taken"] = point
        st.session_state[row_key], st.session_state[col_key] = point


def _map_chart(values: torch.Tensor, position: tuple[int, int], title: str, key: str) -> None:
    """A feature map as a heat map that reports clicks; the chosen position is ringed."""
    height, width = values.shape
    rows, cols = np.mgrid[0:height, 0:width]
    figure = go.Figure()
    figure.add_trace(go.Heatmap(z=values.numpy(), colorscale=services.plotly_colorscale("inferno"), showscale=False,
                                hoverinfo="skip"))
    # Invisible markers on every position: Plotly reports clicks on markers, not on heat-map cells.
    figure.add_trace(go.Scatter(x=cols.ravel(), y=rows.ravel(), mode="markers", customdata=values.numpy().ravel(),
                                hovertemplate="row %{y}, column %{x}: %{customdata:.2f}<extra></extra>",
                                marker=dict(size=max(4, 300 // max(height, width)), opacity=0), showlegend=False))
    figure.add_trace(go.Scatter(x=[position[1]], y=[position[0]], mode="markers", hoverinfo="skip", showlegend=False,
                                marker=dict(size=14, symbol="square-open", color="rgb(255,64,129)",
                                            line=dict(width=3))))
    figure.update_layout(title=title, margin=dict(t=40, b=10, l=10, r=10), clickmode="event+select",
                         xaxis=dict(visible=False, constrain="domain"),
                         yaxis=dict(visible=False, autorange="reversed", scaleanchor="x", constrain="domain"))
    st.plotly_chart(presenter.figure(figure, height=340),
                    config=chart_downloads.config(), width="stretch", key=key, on_select="rerun",
                    selection_mode="points")


def overview(image: Image.Image, found: list[explain.Stage]) -> None:
    """Every stage: its shape, its most active feature maps, and the field of its centre position on the input."""
    size = (image.height, image.width)
    for stage in found:
        channels, height, width = stage.shape
        centre = (height // 2, width // 2)
        box = stage.window.box(*centre, size)
        # The stage's name, layer and shape on a line of their own: in a narrow column a layer name such as
        # backbone.maxpool broke mid-word.
        st.markdown(f"**{stage.label}** · `{stage.layer}` · {channels} × {height} × {width}")
        left, right = st.columns([1.3, 4], vertical_alignment="top")
        left.image(with_field(image, box), width="stretch")
        left.caption(f"Centre position: {_field_text(stage.window, box, size)}.")
        maps = right.columns(MAPS_PER_STAGE // 2 if presenter.active() else MAPS_PER_STAGE)
        for i, (channel, values) in enumerate(zip(stage.channels, stage.maps, strict=False)):
            column = maps[i % len(maps)]
            column.image(_pixels(services.colorize(values, "inferno").numpy()), width="stretch")
            column.caption(f"channel {channel}")


def position_explorer(image: Image.Image, found: list[explain.Stage]) -> None:
    """Pick a stage and a position (click the map, or the sliders): its receptive field is drawn on the image."""
    labels = [stage.label for stage in found]
    middle = labels[len(labels) // 2]
    label = widgets.url_choice("inside-stage", labels, middle,
                               lambda: st.selectbox("Stage", labels, key="inside-stage")) or middle
    stage = found[labels.index(label)]
    channels, height, width = stage.shape
    _take_click("inside-map", "inside-row", "inside-col")
    _clamped("inside-row", height - 1, height // 2)
    _clamped("inside-col", width - 1, width // 2)
    controls = st.columns(3)
    rank = controls[0].selectbox("Feature map", range(len(stage.channels)), key="inside-channel",
                                 format_func=lambda i: f"channel {stage.channels[i]} (#{i + 1} most active)",
                                 help="The most active channels of this stage on this image.") or 0
    shown = stage.channels[rank]
    row = controls[1].slider("Row", 0, height - 1, key="inside-row")
    col = controls[2].slider("Column", 0, width - 1, key="inside-col")
    box = stage.window.box(row, col, (image.height, image.width))
    left, right = st.columns(2)
    with left:
        _map_chart(stage.maps[rank], (row, col),
                   f"{stage.label}: channel {shown} ({height}×{width}); click a position", "inside-map")
    with right:
        st.image(with_field(image, box), width="stretch")
        st.caption(f"Position ({row}, {col}) of {stage.label} sees input rows {max(box[0], 0)}–{box[2] - 1}, "
                   f"columns {max(box[1], 0)}–{box[3] - 1}: {_field_text(stage.window, box, (image.height, image.width))}.")


def _cell(value: float) -> str:
    """A grid cell's number to two decimals; a small negative value reads 0.00, not -0.00."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _grid(values: torch.Tensor, title: str, annotate: bool, colorscale: str | list = "RdBu") -> go.Figure:
    """A small k×k grid of numbers as an (annotated) heat map."""
    figure = go.Figure(go.Heatmap(z=values.numpy(), colorscale=colorscale, zmid=0 if colorscale == "RdBu" else None,
                                  showscale=False, hovertemplate="%{z:.3f}<extra></extra>",
                                  text=[[_cell(v) for v in row] for row in values.tolist()] if annotate else None,
                                  texttemplate="%{text}" if annotate else None,
                                  textfont=dict(size=presenter.CHART_FONT_PX - 2 if presenter.active() else 13)))
    figure.update_layout(title=title, margin=dict(t=36, b=4, l=4, r=4),
                         xaxis=dict(visible=False, constrain="domain"),
                         yaxis=dict(visible=False, autorange="reversed", scaleanchor="x", constrain="domain"))
    return presenter.figure(figure, height=230)


def convolution_by_hand(model: classifiers.Classifier, x: torch.Tensor, image: Image.Image) -> None:
    """The first convolution at one position: kernel, input patch, their products and the sum, checked against
    the value PyTorch's convolution produced there."""
    layer, _, output = services.first_conv(model, x)
    out_channels, height, width = output.shape[1:]
    _take_click("inside-conv-map", "inside-conv-row", "inside-conv-col")
    _clamped("inside-conv-row", height - 1, height // 2)
    _clamped("inside-conv-col", width - 1, width // 2)
    controls = st.columns(3)
    channel = controls[0].number_input("Filter", 0, out_channels - 1, 0, key="inside-filter",
                                       help=f"{layer} has {out_channels} filters; each makes one feature map.")
    row = controls[1].slider("Row ", 0, height - 1, key="inside-conv-row")
    col = controls[2].slider("Column ", 0, width - 1, key="inside-conv-col")
    at = services.first_conv_at(model, x, int(channel), row, col)
    left, right = st.columns(2)
    with left:
        _map_chart(output[0, int(channel)].float().cpu(), (row, col),
                   f"{layer}, filter {channel} ({height}×{width}); click a position", "inside-conv-map")
    with right:
        st.image(with_field(image, at.box), width="stretch")
        st.caption(f"The {at.kernel.shape[-2]}×{at.kernel.shape[-1]} patch under the kernel at ({row}, {col}); "
                   "outside the image the input is padded with zeros.")
    # Each value written in its cell up to 7×7 (5×5 projected, where the numbers are larger: 15 px must fit a cell)
    annotate = at.kernel.shape[-1] * at.kernel.shape[-2] <= (25 if presenter.active() else 49)
    for i in range(at.kernel.shape[0]):
        several = at.kernel.shape[0] > 1
        columns = st.columns(3)
        columns[0].plotly_chart(_grid(at.kernel[i], f"Kernel, input channel {i}" if several else "Kernel", annotate),
                                config=chart_downloads.config(), width="stretch", key=f"inside-kernel-{i}")
        columns[1].plotly_chart(_grid(at.patch[i], f"Patch of input channel {i}" if several else "Patch of the input",
                                      annotate, "Greys_r"),
                                config=chart_downloads.config(), width="stretch", key=f"inside-patch-{i}")
        columns[2].plotly_chart(_grid(at.kernel[i] * at.patch[i], "Kernel × patch", annotate),
                                config=chart_downloads.config(), width="stretch", key=f"inside-product-{i}")
    agree = abs(at.weighted_sum - at.output) <= 1e-4 * max(1.0, abs(at.output))
    metrics = st.columns(3)
    metrics[0].metric("Σ kernel × patch + bias", f"{at.weighted_sum:.4f}",
                      help=f"{at.kernel.numel()} products, plus the bias {at.bias:.4f}.")
    metrics[1].metric(f"{layer} computed", f"{at.output:.4f}")
    metrics[2].metric("Agree", "yes ✓" if agree else "no ✗",
                      help="The weighted sum done here in float64 against PyTorch's convolution (float32).")
    st.caption("The patch holds the normalised input the network actually receives (after the preprocessing "
               "shown on the Classify page), not the 0–255 pixel values.")


def show(model: classifiers.Classifier, prepared: imaging.Prepared) -> None:
    """The whole view for one preprocessed image."""
    found = services.stages(model, prepared.tensor, MAPS_PER_STAGE)
    image = prepared.display
    st.subheader("Stage by stage")
    st.caption("At the end of every stage: the tensor's shape, its most active feature maps (bright = strong), and "
               "on the input, in magenta, the receptive field of the stage's centre position: all the pixels that "
               "position can see. Deeper stages have fewer, coarser positions that each see more.")
    overview(image, found)
    st.subheader("Click a position, see what it sees")
    position_explorer(image, found)
    st.subheader("A convolution, computed by hand")
    st.caption("Each value of the first layer's feature map is a weighted sum: the kernel times the patch of the "
               "input under it, plus a bias. Pick a filter and a position, and check PyTorch's result.")
    convolution_by_hand(model, prepared.tensor, image)
