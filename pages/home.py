"""Home: what the explorer is, the device in use, and where to go."""

import streamlit as st

from explorer import services

st.title("🧠 CNN Architecture Explorer")
st.markdown(
    "Open the classic convolutional networks and see them work: every number on these pages is computed "
    "from the live PyTorch model, and wherever the course notes, a paper, torchvision or Keras publish a "
    "different figure, the app shows both and says why."
)
st.markdown(f"**Computing on:** {services.device_name()}")

st.subheader("Pages")
st.page_link("../pages/architectures.py", label="Architectures — layer tables, parameter counts, receptive fields, "
             "a block diagram, the source code and the fidelity panel", icon=":material/account_tree:")
st.page_link("../pages/compare.py", label="Compare — the comparison tables rebuilt from the live models, "
             "MACs vs accuracy, where the parameters live, measured latency", icon=":material/compare_arrows:")
st.page_link("../pages/training.py", label="Training — train a model on digits, MNIST, Fashion-MNIST or CIFAR-10 "
             "and watch the curves live; confusion matrix, per-class scores, mistakes", icon=":material/monitoring:")
st.page_link("../pages/transfer.py", label="Transfer learning — fine-tune an ImageNet backbone on your own images "
             "with the notes' three strategies, and race them", icon=":material/move_up:")
st.page_link("../pages/classify.py", label="Classify — upload or photograph an image and see what a model sees: "
             "each preprocessing step, top-k, Grad-CAM, feature maps", icon=":material/image_search:")

st.subheader("The models")
st.dataframe(
    [
        {"model": spec.display_name, "year": spec.year, "authors": spec.authors, "paper": spec.paper_url,
         "input": f"{spec.input_size}×{spec.input_size}×{spec.in_channels}", "original data": spec.dataset}
        for spec in (services.model_spec(name) for name in services.model_names())
    ],
    hide_index=True,
    height=36 * (len(services.model_names()) + 1) + 3,  # every model, no inner scrolling
    column_config={"paper": st.column_config.LinkColumn(display_text="paper")},
)
st.caption("Link a slide straight to a model: add `?model=resnet50` (or any name) to the Architectures page's address.")
