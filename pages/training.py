"""Training: pick a model, a data set and a recipe; watch the curves live; inspect the result."""

import streamlit as st

from explorer import components, dataset_panel, lr_finder_view, opened_models, replay, services, training_view, widgets

st.title("Training")
if not widgets.store_ok():
    st.stop()
widgets.follow_url(widgets.RUN_PARAM, "run", widgets.url_run)  # a link, a refresh, Back and Forward
followed = st.session_state.get("run")

left, middle, right = st.columns(3)
arch = left.selectbox("Model", opened_models.options(), format_func=components.display_name, key="train-arch",
                      help="The explorer's models, then those opened this session on the Architectures page: "
                           "your design, or a torchvision CNN.")
dataset = middle.selectbox("Data set", services.IN_MEMORY_DATASETS, key="train-dataset",
                           help="digits: scikit-learn's bundled 8×8 digits, upsampled; always available offline.")
preset_name = right.selectbox("Preset", list(services.TRAINING_PRESETS), index=list(services.TRAINING_PRESETS).index("Fast"),
                              key="train-preset",
                              help="The course notes' recipes as written, or three tuned for time to accuracy: Fast; "
                                   "Fast, few epochs (CPU), for tens of thousands of images such as MNIST on a "
                                   "CPU; and Fast, large batch (GPU), with fewer, larger steps for a GPU.")
recipe = services.TrainConfig(**services.TRAINING_PRESETS[preset_name])
dataset_panel.local_copy(dataset)
lr_key = f"train-lr-{preset_name}"  # the finder's "Use" buttons fill it
st.session_state.setdefault(lr_key, recipe.lr)

with st.form(f"train-{preset_name}"):  # a new preset gives a fresh form with its values
    with st.expander("Hyperparameters (the preset's values; change any)"):
        columns = st.columns(4)
        epochs = columns[0].number_input("Epochs", 1, 500, recipe.epochs)
        batch_size = columns[1].number_input("Batch size", 1, 4096, recipe.batch_size)
        optimizer = columns[2].selectbox("Optimizer", services.OPTIMIZERS, index=services.OPTIMIZERS.index(recipe.optimizer))
        lr = columns[3].number_input("Learning rate", 1e-6, 10.0, format="%.6f", key=lr_key)
        momentum = columns[0].number_input("Momentum (SGD)", 0.0, 0.999, recipe.momentum)
        nesterov = columns[1].checkbox("Nesterov", recipe.nesterov, help="Nesterov momentum (SGD only).")
        weight_decay = columns[2].number_input("Weight decay", 0.0, 1.0, recipe.weight_decay, format="%.5f")
        schedule = columns[3].selectbox("Schedule", services.SCHEDULES, index=services.SCHEDULES.index(recipe.schedule))
        label_smoothing = columns[0].number_input("Label smoothing", 0.0, 0.9, recipe.label_smoothing)
        grad_clip = columns[1].number_input("Gradient clipping (0 = off)", 0.0, 100.0, recipe.grad_clip)
        patience = columns[2].number_input("Early stopping patience (0 = off)", 0, 100, recipe.patience)
        seed = columns[3].number_input("Seed", 0, 2**31 - 1, recipe.seed)
        augment = columns[0].checkbox("Augment", recipe.augment, help="Random shifts of the training images.")
        device = columns[1].selectbox("Device", ["auto", *services.available_devices()])
        cuda_graphs = recipe.cuda_graphs
        if "cuda" in services.available_devices():  # a small model on a GPU is bound by kernel launches
            cuda_graphs = columns[2].checkbox("CUDA graphs", recipe.cuda_graphs,
                                              help="Replay each training step and evaluation from a CUDA graph "
                                                   "(one launch instead of about a hundred); off runs them eagerly.")
    started = st.form_submit_button("Start training", type="primary")
    find_rate = st.form_submit_button("Find a learning rate", icon=":material/query_stats:",
                                      help="fastai's range test on this model, data and recipe: a few hundred "
                                           "batches at growing rates in a worker; then pick a suggested rate.")

if started or find_rate:
    config = services.TrainConfig(
        arch=arch, dataset=dataset, epochs=int(epochs), batch_size=int(batch_size), optimizer=optimizer, lr=float(lr),
        momentum=float(momentum), nesterov=bool(nesterov), weight_decay=float(weight_decay), schedule=schedule,
        label_smoothing=float(label_smoothing), grad_clip=float(grad_clip), patience=int(patience),
        augment=bool(augment), seed=int(seed), device=device, cuda_graphs=bool(cuda_graphs),
    )
    run_id = None if find_rate else widgets.attempt(services.submit, config)
    if find_rate:
        lr_finder_view.start(config)
    if run_id:
        followed = st.session_state["run"] = run_id
        widgets.run_url(run_id)

lr_finder_view.show(lr_key)

if followed:
    training_view.follow(followed, replay.view)  # a finished run can be replayed (?replay=30)

st.divider()
training_view.history()
