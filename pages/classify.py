"""Classify: upload or photograph an image, and see what each model sees."""

import streamlit as st

from explorer import classify_view, services, training_view, weights_panel, widgets

st.title("Classify")
store_ok = widgets.store_ok("classify-store")  # without it, the ImageNet models still classify
choices = services.classifier_choices(with_runs=store_ok)
if not choices:
    st.info("No model can classify yet: this machine has no ImageNet weights and no finished training run. "
            "Get an ImageNet model below (one click online; offline, the file to place or upload), or train "
            "LeNet-5 on the bundled digits in a few seconds.", icon=":material/info:")
    if weights_panel.chooser(key="classify-weights"):
        st.rerun()
    st.markdown("**Or train a model here**: LeNet-5 on handwritten digits, then draw one.")
    if store_ok and st.button("Train LeNet-5 on digits now", key="classify-train"):
        run_id = widgets.attempt(services.submit, services.training_preset("Fast", arch="lenet5", dataset="digits"))
        if run_id:
            st.session_state["classify-run"] = run_id
    if st.session_state.get("classify-run"):
        training_view.follow(st.session_state["classify-run"])
        if st.button("Use the trained model", key="classify-ready"):
            st.rerun()
    st.stop()

labels = {choice.key: choice.label for choice in choices}
best = services.best_classifier(choices)
key = st.selectbox("Model", list(labels), format_func=lambda k: labels[k], key="classify-model",
                   index=list(labels).index(best) if best in labels else 0,
                   help="Opens on the best model here: the most accurate cached ImageNet model, else the finished "
                        "run with the highest test accuracy.")
training_view.random_weights_warning(next((c.note for c in choices if c.key == key), ""))
with st.expander("ImageNet weights: which are here, and how to get the others"):
    if weights_panel.chooser(key="classify-weights"):
        st.rerun()
model = widgets.attempt(services.classifier, key)
if model is None:
    st.stop()
widgets.show_note(model.note)  # the best checkpoint damaged: the last one is used, and said so

inputs = classify_view.pick_images(model, "classify", several=True)
if len(inputs) > 1:
    classify_view.batch_table(model, inputs)
    picked = st.selectbox("Inspect", [name for name, _ in inputs], key="classify-pick")
    inputs = [item for item in inputs if item[0] == picked]

name, payload = inputs[0]
classify_view.inspect(model, name, payload)
classify_view.all_models(choices, name, payload)
