"""Transfer learning: fine-tune an ImageNet backbone on your own images with the notes' three strategies."""

import streamlit as st

from explorer import components, opened_models, services, training_view, transfer_view, weights_panel, widgets

st.title("Transfer learning")
widgets.follow_url(widgets.GROUP_PARAM, "transfer-group", widgets.url_group)  # a link, a refresh, Back, Forward
widgets.follow_url(widgets.RUN_PARAM, "transfer-run", widgets.url_run)
group = st.session_state.get("transfer-group")
followed = st.session_state.get("transfer-run")
shown_data = transfer_view.restore(group, followed)  # a refreshed race or run shows its own settings and data


def show_runs() -> None:
    """The race or the run this page follows (after a refresh too: from the URL)."""
    if group:
        transfer_view.race(group)
    elif followed:
        training_view.follow(followed)


st.markdown(
    "Reuse what a network learned on ImageNet: keep its convolutional **backbone**, put a new head on it "
    "(global average pooling → dense 256 → dropout 0.5 → dense *N*, as in the course notes), and train on "
    "your own classes with one of three strategies."
)

# 1. Backbone and its weights -------------------------------------------------------------------------
left, right = st.columns([1, 2])
backbones = opened_models.backbones()  # a torchvision CNN opened on the Architectures page is offered too
arch = left.selectbox("Backbone", backbones, index=backbones.index("resnet18"),
                      format_func=components.display_name, key="transfer-arch")
with right:
    if weights_panel.panel(arch, key="transfer-weights"):
        st.rerun()
    pretrained = services.installed_weights(arch) is not None
    if not pretrained:
        st.caption("Without them the backbone starts from random weights, which shows the mechanics of transfer "
                   "learning but not its benefit.")

# 2. Data ---------------------------------------------------------------------------------------------
st.subheader("Your images")
sources = [*transfer_view.SOURCES, *([transfer_view.SHOWN_DATA] if shown_data and shown_data != "shapes" else [])]
source = st.radio("Data", sources, horizontal=True, key="transfer-source")
dataset_name = None
if source == transfer_view.SHOWN_DATA and shown_data:
    dataset_name = shown_data
    st.caption(f"{widgets.literal(services.dataset_label(shown_data))}: the data set the runs below trained on.")
elif source.startswith("Generated"):
    dataset_name = "shapes"
    st.caption("Circles, squares and triangles in bright colours on grey textures, 300 of each, generated here.")
elif source.startswith("A preset"):
    dataset_name = widgets.preset_picker()
elif source.startswith("Upload"):
    upload = st.file_uploader("Zip with one folder per class (e.g. rock/, paper/, scissors/)", type=["zip"],
                              key="transfer-zip", max_upload_size=widgets.ZIP_UPLOAD_MB)
    if upload is not None:
        dataset_name = widgets.zip_dataset(upload)
else:
    path = st.text_input("Folder inside the server folders", key="transfer-folder", max_chars=services.MAX_FOLDER_TEXT,
                         placeholder="my-photos (holding one sub-folder per class)",
                         help="Relative to the folder the server's administrator set aside for data sets "
                              "($CNN_EXPLORER_FOLDERS, else folders/ in the state folder).")
    if path:
        dataset_name = widgets.attempt(services.folder_dataset, path)

dataset = widgets.attempt(services.load_dataset, dataset_name) if dataset_name else None
if dataset is None:
    st.info("Choose or upload a data set to continue.")
    show_runs()
    st.stop()
transfer_view.health_panel(dataset)

# 3. Strategy -----------------------------------------------------------------------------------------
st.subheader("Strategy")
labels = {"feature_extraction": "Feature extraction (frozen backbone)", "partial": "Partial fine-tuning",
          "full": "Full fine-tuning"}
strategy = st.radio("Strategy", list(services.STRATEGIES), format_func=labels.get, horizontal=True,
                    key="transfer-strategy")
blocks = services.backbone_blocks(arch)
unfreeze = 2
if strategy == "partial":
    unfreeze = st.slider("Unfreeze the last N blocks of the backbone", 1, len(blocks), min(2, len(blocks)),
                         key="transfer-unfreeze")
    st.caption("Unfrozen: " + ", ".join(blocks[-unfreeze:]))
trainable, total = services.trainable_counts(arch, len(dataset.classes), strategy, unfreeze)
st.metric("Trainable parameters", components.format_count(trainable),
          help=f"{trainable:,} of {total:,} ({components.format_count(total)}) in the whole model")

columns = st.columns(4)
epochs = columns[0].number_input("Epochs", 1, 200, 5, key="transfer-epochs")
lr = columns[1].number_input("Learning rate (Adam)", 1e-7, 1.0, services.STRATEGIES[strategy], format="%g",
                             step=services.STRATEGIES[strategy], key=f"transfer-lr-{strategy}",
                             help="The notes' values: 1e-3, 1e-5, 1e-6 (written 0.001, 1e-05, 1e-06).")
batch_size = columns[2].number_input("Batch size", 1, 512, 32, key="transfer-batch")
augment = columns[3].toggle("Augment", value=False, key="transfer-augment",
                            help="Random shifts and flips of the training images. Off with a frozen backbone: "
                                 "features are computed once (feature cache).")
if augment:
    transfer_view.augmentation_preview(dataset)

config = widgets.attempt(services.transfer_config, arch, dataset_name, strategy, pretrained, unfreeze, int(epochs),
                         float(lr), int(batch_size), augment)
if not widgets.store_ok("transfer-store"):
    st.stop()
left, right = st.columns(2)
if left.button("Start fine-tuning", type="primary", key="transfer-start") and config is not None:
    run_id = widgets.attempt(services.submit, config)
    if run_id:
        group, followed = None, run_id
        st.session_state["transfer-run"] = run_id
        st.session_state["transfer-group"] = None
        transfer_view.remember(run_id, shown_data)  # the same data sources stay on offer
        widgets.group_url(None)
        widgets.run_url(run_id)
if right.button("Race the three strategies", key="transfer-race-start") and config is not None:
    race_group = services.new_group()
    started = [widgets.attempt(services.submit, services.with_strategy(config, name), race_group)
               for name in services.STRATEGIES]
    if any(started):
        st.session_state["transfer-group"] = group = race_group
        transfer_view.remember(group, shown_data)
        widgets.run_url(None)
        widgets.group_url(group)

show_runs()
