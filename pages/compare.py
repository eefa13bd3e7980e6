"""Compare: the course notes' comparison tables, rebuilt from the live models."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer import components, services, widgets

st.title("Compare")
names = services.model_names()
chosen = st.multiselect("Models", names, default=names, format_func=components.display_name)
if not chosen:
    st.info("Pick at least one model to compare.")
    st.stop()

summaries = {name: summary for name in chosen if (summary := widgets.attempt(services.summary, name)) is not None}


rows = []
for name, summary in summaries.items():
    spec, traits = services.model_spec(name), services.traits(name)
    top1 = spec.published_top1()
    rows.append({
        "model": spec.display_name, "year": spec.year, "parameters": summary.total_params,
        "MACs": summary.total_macs, "depth (weight layers)": summary.weight_layers,
        "modules": summary.module_count, "input": f"{spec.input_size}×{spec.input_size}",
        "kernels": ", ".join(traits.kernels) + (" depthwise" if traits.depthwise else ""),
        "skip connections": traits.residual_blocks, "normalisation": ", ".join(traits.normalisation) or "none",
        "dropout": "yes" if traits.dropout else "no",
        "top-1 (published)": top1.value if top1 else None, "top-1 source": top1.source if top1 else "",
        "receptive field": summary.receptive_field[0],
    })
table = pd.DataFrame(rows)
st.subheader("Architecture comparison")
st.dataframe(table, hide_index=True, column_config={
    "parameters": st.column_config.NumberColumn(format="localized"),
    "MACs": st.column_config.NumberColumn(format="localized", help=components.MACS_NOTE),
    "skip connections": st.column_config.NumberColumn(help="Blocks with a residual connection"),
    "top-1 (published)": st.column_config.NumberColumn(format="%.1f %%"),
})
st.caption(components.MACS_NOTE + " Kernels are listed largest first; 1×7 and 7×1 are Inception's factorised 7×7.")

st.subheader("Cost against accuracy")
bubbles = table.dropna(subset=["top-1 (published)"])
if bubbles.empty:
    st.caption("None of the chosen models has a published ImageNet accuracy.")
else:
    figure = px.scatter(bubbles, x="MACs", y="top-1 (published)", size="parameters", text="model",
                        hover_data=["parameters", "top-1 source"], log_x=True, size_max=60,
                        labels={"MACs": "MACs per image (log scale)", "top-1 (published)": "ImageNet top-1 (%)"})
    figure.update_traces(textposition="top center")
    figure.update_layout(height=480, margin=dict(t=20))
    st.plotly_chart(figure, width="stretch")
    missing = sorted(set(table["model"]) - set(bubbles["model"]))
    st.caption("Bubble area: parameters. Accuracies are published figures (source in the table's hover); "
               "the AlexNet point is the paper's one-network figure, since torchvision's AlexNet is a different variant."
               + (f" Not shown (no ImageNet accuracy): {', '.join(missing)}." if missing else ""))

st.subheader("Where the parameters live")
by_kind = pd.DataFrame([
    {"model": services.model_spec(name).display_name, "kind": kind, "parameters": count}
    for name, summary in summaries.items() for kind, count in summary.params_by("kind").items() if count
])
st.plotly_chart(px.bar(by_kind, x="model", y="parameters", color="kind", barmode="stack", height=420),
                width="stretch")
stage_model = st.selectbox("Per stage, for", chosen, format_func=components.display_name,
                           index=chosen.index("resnet50") if "resnet50" in chosen else 0)
by_stage = pd.DataFrame([
    {"stage": stage, "parameters": count} for stage, count in summaries[stage_model].params_by("stage").items()
])
st.plotly_chart(px.bar(by_stage, x="stage", y="parameters", height=360), width="stretch")

st.subheader("Forward latency on this device")
st.caption(f"Measured here, now, on {services.device_name()}: median of 3 timed passes after one warm-up, "
           "random weights and inputs at each model's native size (bfloat16 and channels_last on CUDA).")
left, right = st.columns([3, 1])
quick = [n for n in ("lenet5", "alexnet", "resnet18") if n in chosen]
timed = left.multiselect("Models to time", chosen, default=quick,
                         format_func=components.display_name, key="latency-models")
batches = right.multiselect("Batch sizes", [1, 32], default=[1, 32], key="latency-batches")
if st.button("Measure latency", type="primary", disabled=not (timed and batches)):
    device = services.device()
    progress = st.progress(0.0, text="Timing…")
    jobs = [(name, batch) for name in timed for batch in batches]
    for i, (name, batch) in enumerate(jobs):
        progress.progress(i / len(jobs), text=f"{components.display_name(name)}, batch {batch}…")
        services.measure_latency(name, batch, device.type)
    progress.empty()
    st.session_state["latency-results"] = [services.measure_latency(n, b, device.type) for n, b in jobs]
if st.session_state.get("latency-results"):
    results = pd.DataFrame(st.session_state["latency-results"])
    results["model"] = results["model"].map(components.display_name)
    st.dataframe(results, hide_index=True)
    st.plotly_chart(px.bar(results, x="model", y="median ms", color=results["batch"].astype(str), barmode="group",
                           labels={"color": "batch"}, height=360), width="stretch")
