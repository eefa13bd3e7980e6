"""Compare: the course notes' comparison tables, rebuilt from the live models."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer import chart_downloads, components, latencies, opened_models, services, widgets

st.title("Compare")
names = opened_models.options()  # the opened ones (a design, a torchvision CNN) are offered, not pre-chosen
chosen = st.multiselect("Models", names, default=services.model_names(), format_func=components.display_name)
if not chosen:
    st.info("Pick at least one model to compare.")
    st.stop()

summaries = {name: summary for name in chosen if (summary := widgets.attempt(services.summary, name)) is not None}


table = pd.DataFrame(components.comparison_rows(summaries))
shown = components.count_columns(table, ["parameters", "MACs"])
shown["top-1 %"] = [f"{value:.1f}" if pd.notna(value) else "—" for value in table["top-1 %"]]
st.subheader("Architecture comparison")
st.dataframe(shown, hide_index=True, width="stretch",
             height=components.table_height(len(table)), column_config={
    "model": st.column_config.TextColumn(pinned=True),
    "top-1 %": st.column_config.TextColumn(help="Published ImageNet top-1 accuracy (source in the last column)"),
    "parameters": st.column_config.TextColumn(help="Exact counts in the CSV"),
    "MACs": st.column_config.TextColumn(help=components.MACS_NOTE + " Exact counts in the CSV."),
    "skip connections": st.column_config.NumberColumn(help="Blocks with a residual connection"),
    "receptive field": st.column_config.NumberColumn(help="Input pixels (square) that one position of the last "
                                                          "feature map sees"),
})
components.csv_button(table, "compare.csv", key="compare-csv")
st.caption(components.MACS_NOTE + " Kernels are listed largest first; 1×7 and 7×1 are Inception's factorised 7×7.")

st.subheader("Cost against accuracy")
bubbles = table.dropna(subset=["top-1 %"])
if bubbles.empty:
    st.caption("None of the chosen models has a published ImageNet accuracy.")
else:
    st.plotly_chart(components.cost_accuracy_chart(bubbles), config=chart_downloads.config(), width="stretch")
    missing = sorted(set(table["model"]) - set(bubbles["model"]))
    st.caption("Bubble area: parameters. Accuracies are published figures (source in the table); "
               "the AlexNet point is the paper's one-network figure, since torchvision's AlexNet is a different variant."
               + (f" Not shown (no ImageNet accuracy): {', '.join(missing)}." if missing else ""))

st.subheader("Where the parameters live")
by_kind = pd.DataFrame([
    {"model": services.model_spec(name).display_name, "kind": kind, "parameters": count}
    for name, summary in summaries.items() for kind, count in summary.params_by("kind").items() if count
])
st.plotly_chart(components.counts_axis(px.bar(by_kind, x="model", y="parameters", color="kind", barmode="stack",
                                             height=420)), config=chart_downloads.config(), width="stretch")
stage_model = st.selectbox("Per stage, for", chosen, format_func=components.display_name,
                           index=components.featured_index(chosen, "stages"))
by_stage = pd.DataFrame([
    {"stage": stage, "parameters": count} for stage, count in summaries[stage_model].params_by("stage").items()
])
st.plotly_chart(components.counts_axis(px.bar(by_stage, x="stage", y="parameters", height=360)),
                config=chart_downloads.config(), width="stretch")

st.subheader("Forward latency on this device")
st.caption(f"Measured here on each press: {latencies.RULE}; random inputs at each model's native size. The "
           "Classify page times its models with the same function and says, as this page does below the chart, "
           "the device, the threads and the training it measured beside.")
left, right = st.columns([3, 2])  # room for both batch chips at 1024 px in presenter mode
quick = [n for n in ("lenet5", "alexnet", "resnet18") if n in chosen]
timed = left.multiselect("Models to time", chosen, default=quick,
                         format_func=components.display_name, key="latency-models")
batches = right.multiselect("Batch sizes", [1, 32], default=[1, 32], key="latency-batches")
if st.button("Measure latency", type="primary", disabled=not (timed and batches)):
    progress = st.progress(0.0, text="Timing…")
    jobs = [(name, batch) for name in timed for batch in batches]
    measured = []
    for i, (name, batch) in enumerate(jobs):
        progress.progress(i / len(jobs), text=f"{components.display_name(name)}, batch {batch}…")
        if (row := widgets.attempt(latencies.measure, name, batch)) is not None:
            measured.append(row)
    progress.empty()
    st.session_state["latency-results"] = measured
if st.session_state.get("latency-results"):
    results = pd.DataFrame(st.session_state["latency-results"])
    results["model"] = results["model"].map(components.display_name)
    st.dataframe(results[["model", "batch", "median ms", "p10 ms", "p90 ms", "images/s", "threads", "load"]],
                 hide_index=True, height=components.table_height(len(results)))
    bars = px.bar(results, x="model", y="median ms", color=results["batch"].astype(str), barmode="group",
                  labels={"color": "batch"}, height=360, text=results["median ms"].map(components.milliseconds),
                  error_y=results["p90 ms"] - results["median ms"],
                  error_y_minus=results["median ms"] - results["p10 ms"])
    st.plotly_chart(bars, config=chart_downloads.config(), width="stretch", key="latency-chart")
    with st.container(key="latency-conditions"):
        st.caption(f"Bars: the median; whiskers: {latencies.SPREAD} (a tenth of the passes were faster than the "
                   "lower end, a tenth slower than the upper).")
        for conditions in results["conditions"].unique():
            st.caption(f"Conditions: {conditions}.")
    rough = [f"{row['model']} (batch {row['batch']})" for row in results.to_dict("records") if components.wide_spread(row)]
    if rough:
        st.warning(f"{', '.join(rough)}: {components.WIDE_SPREAD_NOTE}. Press Measure latency again for a steadier "
                   "figure.", icon=":material/warning:")
