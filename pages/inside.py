"""Inside the network: follow one image through a model stage by stage."""

import streamlit as st

from explorer import classify_view, filter_view, inside_view, services, widgets

st.title("Inside the network")
choices = services.classifier_choices()
if not choices:
    st.info("No trained model on this machine yet. Train LeNet-5 on the bundled digits from the Classify page "
            "(a few seconds), or put torchvision's ImageNet weights in the torch hub cache.", icon=":material/info:")
    st.page_link("../pages/classify.py", label="Go to Classify", icon=":material/image_search:")
    st.stop()

labels = {choice.key: choice.label for choice in choices}
key = widgets.url_choice("inside-model", list(labels), next(iter(labels)),
                         lambda: st.selectbox("Model", list(labels), format_func=lambda k: labels[k], key="inside-model"))
model = widgets.attempt(services.classifier, key)
if model is None:
    st.stop()
widgets.show_note(model.note)  # the best checkpoint damaged: the last one is used, and said so
name, payload = classify_view.pick_images(model, "inside")[0]
prepared = widgets.attempt(services.read_image, model, name, payload)
if prepared is None:
    st.stop()
inside_view.show(model, prepared)
st.subheader("What a filter looks for")
filter_view.show(key, random_weights=bool(next((c.note for c in choices if c.key == key), "")))
