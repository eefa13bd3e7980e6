"""Components of the Classify page: the preprocessing inspector, top-k, Grad-CAM, feature maps, all models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core import classifiers
from core.errors import ExplorerError
from explorer import services, widgets

MAPS_SHOWN = 16


def _image(picture) -> object:
    """A PIL image or a C × H × W / H × W tensor as something st.image shows."""
    if isinstance(picture, torch.Tensor):
        return picture.numpy()
    return picture


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
    st.subheader("What the model sees")
    shown = [step for step in prepared.steps if step.image is not None]
    columns = st.columns(max(len(shown), 1))
    for column, step in zip(columns, shown, strict=False):
        column.image(step.image, caption=f"{step.name}: {step.detail}", width=150)
    st.caption(" → ".join(f"**{step.name}**" for step in prepared.steps) + f". {prepared.steps[-1].detail}.")
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
    chart.update_layout(title="Top predictions", xaxis=dict(range=[0, 1], tickformat=".0%"), height=300,
                        margin=dict(t=40, l=10), yaxis=dict(type="category"))
    left.plotly_chart(chart, width="stretch", key="classify-topk")
    right.metric("Prediction", prediction.top[0][0], help=f"probability {prediction.top[0][1]:.1%}")
    timed = services.classifier_latency(model.key)
    right.metric("Inference latency", f"{timed['median ms']:.1f} ms",
                 help=f"Batch of 1: {timed['rule']}. The Compare page measures the same way.")

    layers = services.conv_layers(model)
    left, right = st.columns(2)
    with left:
        default = services.default_cam_layer(model.key)
        layer = st.selectbox("Grad-CAM layer", layers, index=layers.index(default), key="classify-cam-layer",
                             help="Default: the last convolution that still has a spatial map, where the "
                                  "evidence is most class-specific.")
        heat = services.grad_cam(model, prepared.tensor, layer)
        base = torch.as_tensor(np.array(prepared.display.convert("RGB")))
        st.image(services.overlay(base, heat).numpy(),
                 caption=f"Grad-CAM for “{widgets.literal(prediction.top[0][0])}” at {layer}", width=360)
    with right:
        layer = st.selectbox("Feature maps of", layers, index=0, key="classify-map-layer")
        maps = services.feature_maps(model, prepared.tensor, layer)
        st.caption(f"First {min(MAPS_SHOWN, len(maps))} of the channels of {layer} ({tuple(maps.shape[1:])} each)")
        grid = st.columns(4)
        for i, feature in enumerate(maps[:MAPS_SHOWN]):
            grid[i % 4].image((feature * 255).byte().numpy(), width="stretch")


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
    if not st.button(f"Run {widgets.literal(name)} through all {len(choices)} models", key="classify-all"):
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
        column.dataframe(pd.DataFrame(prediction.top, columns=["class", "probability"]), hide_index=True,
                         column_config={"probability": st.column_config.NumberColumn(format="percent")})
        column.caption(f"{services.classifier_latency(choice.key)['median ms']:.1f} ms per image (median)")
