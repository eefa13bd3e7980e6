"""Components of the Classify page: the preprocessing inspector, top-k, Grad-CAM and the other explanations, feature
maps, all models."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

from core import classifiers, labels
from core.errors import CancelledError, ExplorerError
from explorer import chart_downloads, components, latencies, presenter, services, widgets
from explorer.digit_pad import digit_pad

MAPS_SHOWN = 16


def _image(picture) -> object:
    """A PIL image or a C × H × W / H × W tensor as something st.image shows."""
    if isinstance(picture, torch.Tensor):
        return picture.numpy()
    return picture


def _class_list(classes: tuple[str, ...], shown: int = 6) -> str:
    """The first few class names (as text: a folder name can hold Markdown), then how many more."""
    names = ", ".join(widgets.literal(name) for name in classes[:shown])
    return names if len(classes) <= shown else f"{names} and {len(classes) - shown} more"


def pick_images(model: classifiers.Classifier, prefix: str, several: bool = False) -> list[tuple[str, bytes]]:
    """(name, bytes) of the chosen image: a bundled sample, uploads (``several`` at once if allowed), a camera shot
    or, for digit models, a drawing. Widget keys start with ``prefix``; the source and the sample live in the URL.
    Stops the page with a hint while nothing is chosen."""
    sources = ["Sample photos", "Upload", "Camera"] + (["Draw a digit"] if model.digits else [])
    source = widgets.url_choice(f"{prefix}-source", sources, sources[0], lambda: st.radio(
        "Image", sources, horizontal=True, key=f"{prefix}-source",
        help="Drawing is offered for digit models (28×28, one channel)."))
    inputs: list[tuple[str, bytes]] = []
    if source == "Sample photos":
        photos = list(services.SAMPLES)
        name = widgets.url_choice(f"{prefix}-sample", photos, photos[0], lambda: st.selectbox(
            "Photo", photos, key=f"{prefix}-sample", help="Real photographs bundled with scikit-image.")) or photos[0]
        inputs = [(f"{name}.png", services.sample_photo(name))]
        if len(model.classes) < 1000:  # a run's model: the photos show none of its classes
            st.info(f"This model knows only the {len(model.classes):,} classes it was trained on "
                    f"({_class_list(model.classes)}), so it names one of them for any photo."
                    + (" Draw a digit, or upload a photo of one, for a fair test." if model.digits else ""),
                    icon=":material/info:")
    elif source == "Upload":
        uploads = st.file_uploader("Images" if several else "Image", type=list(services.IMAGE_EXTENSIONS),
                                   accept_multiple_files=several, key=f"{prefix}-upload",
                                   help="GIFs use their first frame.", max_upload_size=widgets.IMAGE_UPLOAD_MB)
        files = uploads if isinstance(uploads, list) else [uploads] if uploads is not None else []
        inputs = [(upload.name, upload.getvalue()) for upload in files
                  if widgets.within_limit(upload, widgets.IMAGE_UPLOAD_MB)]
    elif source == "Camera":
        shot = st.camera_input("Take a photo", key=f"{prefix}-camera")
        if shot is not None and widgets.within_limit(shot, widgets.IMAGE_UPLOAD_MB):  # a client can send any size
            inputs = [("camera.jpg", shot.getvalue())]
    else:
        st.caption("Draw one digit, large, with the mouse or a finger; each stroke updates the page.")
        drawing = digit_pad(key=f"{prefix}-pad")
        if drawing is None:
            st.info("The pad is empty: draw a digit.")
            st.stop()
        inputs = [("drawing.png", drawing)]
    if not inputs:
        st.info("Choose a sample, upload an image or take a photo.")
        st.stop()
    return inputs


def inspect(model: classifiers.Classifier, name: str, payload: bytes) -> None:
    """Everything about one image: each preprocessing step, top-k, Grad-CAM, feature maps."""
    convention = True
    if model.digits:
        convention = st.toggle("MNIST convention (crop to the stroke, fit 20×20, centre by mass in 28×28)",
                               value=True, key="classify-convention",
                               help="Turn off to see what the model makes of a plainly resized digit.")
    try:
        prepared = services.read_image(model, name, payload, convention)
    except ExplorerError as error:
        widgets.show_error(error)
        return
    with st.container(key="classify-steps"):
        st.subheader("What the model sees")
        steps_to_scale(prepared.steps)
    with st.expander("The exact tensor"):
        x = prepared.tensor
        st.code(f"shape {tuple(x.shape)}, dtype {x.dtype}\n"
                f"channel means {[round(v, 4) for v in x.mean(dim=(0, 2, 3)).tolist()]}\n"
                f"top-left 4×4 of channel 0:\n{x[0, 0, :4, :4].numpy().round(3)}", language="text")

    prediction = services.predict(model, prepared.tensor)
    left, right = st.columns([2, 1])
    chart = go.Figure(go.Bar(x=[p for _, p in prediction.top][::-1],
                             y=[widgets.chart_literal(c) for c, _ in prediction.top][::-1],
                             orientation="h", marker_color="#4a6fa5", text=[f"{p:.1%}" for _, p in prediction.top][::-1]))
    chart.update_layout(title="Top predictions", xaxis=dict(range=[0, 1], tickformat=".0%"),
                        margin=dict(t=40, l=10), yaxis=dict(type="category"))
    left.plotly_chart(presenter.figure(chart, height=300),
                      config=chart_downloads.config(), width="stretch", key="classify-topk")
    right.metric("Prediction", widgets.literal(prediction.top[0][0]),  # a class (folder) name: Markdown renders it
                 help=f"probability {prediction.top[0][1]:.1%}")
    with st.spinner("Timing the model…"):
        timed = latencies.for_classifier(model.key)
    right.metric("Inference latency", components.milliseconds(timed["median ms"]),
                 help=f"Batch of 1, the median: {timed['rule']}. Measured again when a run starts or stops "
                      f"training, and after {latencies.FRESH_SECONDS / 60:g} minutes. The Compare page measures "
                      "the same way.")
    with right.container(key="classify-latency-conditions"):
        st.caption(components.latency_note(timed))

    layers, titles = services.conv_layers(model), services.conv_titles(model)
    grad_cam(model, prepared, prediction.top[0][0], layers, titles)
    st.subheader("Feature maps")
    layer = widgets.url_choice("classify-map-layer", layers, layers[0], lambda: st.selectbox(
        "Feature maps of", layers, key="classify-map-layer", format_func=titles.__getitem__)) or layers[0]
    maps = services.feature_maps(model, prepared.tensor, layer)
    height, width = maps.shape[1:]
    st.caption(f"First {min(MAPS_SHOWN, len(maps))} of the {labels.plural(len(maps), 'channel')} of {layer} "
               f"({height}×{width} each)")
    grid = st.columns(8)
    for i, feature in enumerate(maps[:MAPS_SHOWN]):
        grid[i % 8].image((feature * 255).byte().numpy(), width="stretch")


STEPS_PER_ROW = 4
SLOT_MIN = 0.2  # the narrowest slot, as a share of the widest row: room for a tiny step's caption
SLOT_PIXELS = 640  # a step's picture is sent at most this wide (the browser scales it anyway)


def _at_scale(image: Image.Image, slot: float) -> Image.Image:
    """``image`` on a transparent canvas ``slot`` pixels wide (at least its own width), so that stretched to its
    column it keeps its true size relative to the other steps; shrunk for sending if large."""
    picture = image.convert("RGBA")
    factor = min(1.0, SLOT_PIXELS / slot)
    if factor < 1:
        picture = picture.resize((max(1, round(picture.width * factor)), max(1, round(picture.height * factor))),
                                 Image.Resampling.BILINEAR)
    canvas = Image.new("RGBA", (max(picture.width, round(slot * factor)), picture.height), (0, 0, 0, 0))
    canvas.paste(picture, (0, 0))
    return canvas


def scale_layout(widths: list[int]) -> list[tuple[list[int], list[float]]]:
    """Rows of at most four pictures: each row's indices and its column weights (a slot per picture, then a spacer),
    all on one scale, so a picture stretched to its slot shows at its true width relative to every other."""
    rows = [list(range(i, min(i + STEPS_PER_ROW, len(widths)))) for i in range(0, len(widths), STEPS_PER_ROW)]
    widest_row = max(sum(widths[i] for i in row) for row in rows)
    slots = [max(float(width), SLOT_MIN * widest_row) for width in widths]
    span = max(sum(slots[i] for i in row) for row in rows)
    layout = []
    for row in rows:
        spare = span - sum(slots[i] for i in row)
        layout.append((row, [slots[i] for i in row] + ([spare] if spare > 1e-6 * span else [])))
    return layout


def steps_to_scale(steps: list) -> None:
    """Every preprocessing step that has a picture, drawn at its true size relative to the others (a 224-px crop
    is visibly smaller than a 451×300 original), four to a row; columns stretch, so nothing overlaps."""
    shown = [step for step in steps if step.image is not None]
    if not shown:
        return
    for row, weights in scale_layout([step.image.width for step in shown]):
        columns = st.columns(weights, gap="small", vertical_alignment="top")
        for column, i, slot in zip(columns, row, weights, strict=False):
            step = shown[i]
            column.image(_at_scale(step.image, slot), width="stretch")
            column.caption(f"**{step.name}** · {step.image.width}×{step.image.height} px  \n"
                           f"{widgets.literal(step.detail)}")
    st.caption("Drawn to scale: each picture's width is its true width in pixels relative to the others.")
    _magnified(shown)


MAGNIFIED_PX = 224  # a small step (LeNet's 28×28) is also shown enlarged to about this width, pixel by pixel


def _magnified(shown: list) -> None:
    """Beside the to-scale row, a magnified copy of each step much smaller than the largest (a 28×28 input is a
    speck next to a 451×300 photo): the same pixels, enlarged by a whole factor without smoothing."""
    widest = max(step.image.width for step in shown)
    small = [step for step in shown if step.image.width * 4 <= widest]
    if not small:
        return
    small = small[:STEPS_PER_ROW]
    factor = max(1, MAGNIFIED_PX // max(max(step.image.size) for step in small))  # one factor: still to scale
    columns = st.columns(len(small) + 1)  # a spare column: each copy keeps its own width
    for column, step in zip(columns, small, strict=False):
        enlarged = step.image.convert("RGB").resize((step.image.width * factor, step.image.height * factor),
                                                    Image.Resampling.NEAREST)
        column.image(enlarged, width=enlarged.width)
        column.caption(f"**{step.name}**, magnified ×{factor}")


EXPLAINED_KEPT = 4  # heat maps a session keeps: a new colour or opacity must not recompute a slow method
CANCELLED = "classify-cam-cancelled"  # the request whose computation the user cancelled


def _request(model: classifiers.Classifier, x: torch.Tensor, method: str, layer: str) -> tuple[str, ...]:
    """What a heat map depends on: the model, the image's exact tensor, the method and (if it uses one) the layer."""
    uses_layer = services.EXPLANATIONS[method].uses_layer
    return model.key, hashlib.sha1(x.numpy().tobytes()).hexdigest(), method, layer if uses_layer else ""


def _explained(model: classifiers.Classifier, x: torch.Tensor, method: str, layer: str) -> torch.Tensor | None:
    """The heat map of the top class by ``method``, kept for the session. A slow method shows a progress bar and a
    Cancel button: pressing it starts a new run at once (``runner.fastReruns``: the button's callback marks the
    request cancelled) and tells the running one to stop, which it does at its next element update, the progress
    bar's, within one batch, freeing the model (seen in a browser with Streamlit 1.67). None while cancelled."""
    request = _request(model, x, method, layer)
    kept = st.session_state.setdefault("classify-cam-kept", {})
    if request in kept:
        return kept[request]
    if st.session_state.get(CANCELLED) == request:
        holder = st.empty()
        with holder.container():
            note = st.empty()
            again = st.button(f"Compute {method}", key="classify-cam-again")
        if not again:
            note.info(f"{method} was cancelled.", icon=":material/cancel:")
            return None
        holder.empty()
        del st.session_state[CANCELLED]
    try:
        heat = _computed(model, x, method, layer, request)
    except CancelledError:
        st.info(f"{method} was cancelled.", icon=":material/cancel:")
        return None
    except ExplorerError as error:  # a model whose arithmetic overflows
        widgets.show_error(error)
        return None
    while len(kept) >= EXPLAINED_KEPT:
        kept.pop(next(iter(kept)))
    kept[request] = heat
    return heat


def _computed(model: classifiers.Classifier, x: torch.Tensor, method: str, layer: str,
              request: tuple[str, ...]) -> torch.Tensor:
    """Compute a heat map; a slow method with a progress bar and a Cancel button, both gone when it is done."""
    if not services.EXPLANATIONS[method].slow:
        return services.explanation(model, x, method, layer)
    holder = st.empty()
    with holder.container():
        bar = st.progress(0.0, text=f"{method}: starting…")
        st.button("Cancel", key="classify-cam-cancel", on_click=st.session_state.__setitem__,
                  args=(CANCELLED, request), help="Stops the computation; the rest of the page stays.")

    def report(done: float) -> None:
        bar.progress(done, text=f"{method}: {done:.0%}")

    try:
        return services.explanation(model, x, method, layer, progress=report)
    except CancelledError:
        st.session_state[CANCELLED] = request
        raise
    finally:
        holder.empty()


def grad_cam(model: classifiers.Classifier, prepared, label: str, layers: list[str], titles: dict[str, str]) -> None:
    """The top class explained by a chosen method (Grad-CAM by default): the image, the heat map with its colour
    scale, and the overlay side by side, with the method, the layer (for the class activation maps), the colour
    map and the overlay's opacity to choose (all kept in the URL)."""
    heading = st.empty()
    methods = list(services.EXPLANATIONS)
    method = widgets.url_choice("classify-cam-method", methods, methods[0], lambda: st.radio(
        "Method", methods, horizontal=True, key="classify-cam-method",
        help="Grad-CAM, Grad-CAM++ and Score-CAM map a layer's evidence; the others score each input pixel. "
             "Score-CAM, SmoothGrad, integrated gradients and occlusion take many forward passes.")) or methods[0]
    chosen = services.EXPLANATIONS[method]
    heading.subheader(f"{method} for “{widgets.literal(label)}”: where the evidence is")
    default = services.default_cam_layer(model.key)
    left, middle, right = st.columns([2, 1, 2])
    layer = widgets.url_choice("classify-cam-layer", layers, default, lambda: left.selectbox(
        "Layer", layers, key="classify-cam-layer", format_func=titles.__getitem__, disabled=not chosen.uses_layer,
        help="Default: the last convolution that still has a spatial map, where the evidence is most "
             "class-specific." if chosen.uses_layer else f"{method} scores the input's pixels: no layer.")) or default
    colours = list(services.COLORMAPS)
    colormap = widgets.url_choice("classify-cam-colours", colours, colours[0], lambda: middle.radio(
        "Colours", colours, horizontal=True, key="classify-cam-colours",
        help="Turbo: blue (none) → red (strongest), readable on warm and cold photos. "
             "Inferno: black → yellow, perceptually uniform.")) or colours[0]
    alpha = right.slider("Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="classify-cam-opacity", bind="query-params",
                         help="0 shows the photo only, 1 the heat map only.")
    st.caption(chosen.summary)
    heat = _explained(model, prepared.tensor, method, layer)
    if heat is not None:
        _heat_figure(prepared, heat, f"{method} at {layer}" if chosen.uses_layer else f"{method}, per pixel",
                     alpha, colormap)


def _heat_figure(prepared, heat: torch.Tensor, title: str, alpha: float, colormap: str) -> None:
    """The model's input, the heat map with its colour scale, and the overlay, side by side."""
    base = torch.as_tensor(np.array(prepared.display.convert("RGB")))
    blended = services.overlay(base, heat, alpha, colormap)
    figure = make_subplots(rows=1, cols=3, horizontal_spacing=0.03,
                           subplot_titles=("The model's input", title, f"Overlay, opacity {alpha:.2f}"))
    figure.add_trace(go.Image(z=base.numpy(), hoverinfo="skip"), row=1, col=1)
    figure.add_trace(go.Heatmap(z=heat.numpy(), zmin=0, zmax=1, colorscale=services.plotly_colorscale(colormap),
                                colorbar=dict(title=dict(text="evidence", side="right"), tickvals=[0, 0.5, 1],
                                              ticktext=["none", "half", "strongest"], len=0.9, thickness=14),
                                hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"), row=1, col=2)
    figure.add_trace(go.Image(z=blended.numpy(), hoverinfo="skip"), row=1, col=3)
    for col in (1, 2, 3):
        axis = "" if col == 1 else str(col)
        figure.update_layout({f"xaxis{axis}": dict(visible=False, constrain="domain"),
                              f"yaxis{axis}": dict(visible=False, autorange="reversed", scaleanchor=f"x{axis}",
                                                   constrain="domain")})
    figure.update_layout(margin=dict(t=40, b=10, l=10, r=10))
    st.plotly_chart(presenter.figure(figure, height=340),
                    config=chart_downloads.config(), width="stretch", key="classify-gradcam")


def batch_table(model: classifiers.Classifier, inputs: list[tuple[str, bytes]]) -> None:
    """Top-1 of every uploaded image; a bad file gets its message in its row."""
    rows = []
    for name, payload in inputs:
        try:
            prediction = services.predict(model, services.read_image(model, name, payload).tensor)
            rows.append({"image": name, "prediction": prediction.top[0][0], "probability": prediction.top[0][1],
                         "problem": ""})
        except ExplorerError as error:
            rows.append({"image": name, "prediction": "", "probability": None,
                         "problem": services.public_text(str(error))})
    st.dataframe(pd.DataFrame(rows), hide_index=True,
                 column_config={"probability": st.column_config.ProgressColumn(format="percent", min_value=0,
                                                                                max_value=1)})


def all_models(choices: list[classifiers.Choice], name: str, payload: bytes) -> None:
    """One image through every available model, side by side, with top-5 and latency."""
    st.subheader("All models")
    if not st.button(f"Run {widgets.literal(name)} through {labels.every(len(choices), 'model')}",
                     key="classify-all"):
        return
    columns = st.columns(min(len(choices), 4))
    for i, choice in enumerate(choices):
        column = columns[i % len(columns)]
        column.markdown(f"**{widgets.literal(choice.label)}**")
        try:
            model = services.classifier(choice.key)
            prediction = services.predict(model, services.read_image(model, name, payload).tensor)
        except ExplorerError as error:
            column.caption(widgets.literal(services.public_text(str(error))))
            continue
        if model.note:  # the best checkpoint damaged: these are the last one's predictions
            column.caption(widgets.literal(services.public_text(model.note)))
        column.dataframe(pd.DataFrame(prediction.top, columns=["class", "probability"]), hide_index=True,
                         column_config={"probability": st.column_config.NumberColumn(format="percent")})
        timed = latencies.for_classifier(choice.key)
        column.caption(f"{components.milliseconds(timed['median ms'])} per image (median; "
                       f"{components.latency_note(timed)})")
