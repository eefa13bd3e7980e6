"""What the pages write, in words a reader uses: no "None" for a figure not there yet, names instead of ids."""

from __future__ import annotations

from tests.apptest import open_page


def test_history_leaves_missing_figures_blank_and_names_data_sets_and_strategies() -> None:
    from core import training
    from explorer import services

    store = services.run_store()
    plain = store.create_run(training.TrainConfig(dataset="fashion_mnist", epochs=1), status="stopped")
    transfer = store.create_run(training.TrainConfig(arch="resnet18", dataset="shapes", strategy="feature_extraction",
                                                     epochs=1), status="stopped")
    at = open_page("training")
    history = at.dataframe[-1].value.set_index("run")
    assert "None" not in history.astype(str).to_numpy()
    assert history.loc[plain, "data"] == "Fashion-MNIST" and history.loc[plain, "strategy"] == "From scratch"
    assert history.loc[transfer, "strategy"] == "Feature extraction"
    assert history["best val acc"].isna().loc[[plain, transfer]].all()  # blank, not the text "None"
    overlay = at.multiselect(key="overlay")
    assert overlay.format_func(plain).startswith("LeNet-5 on Fashion-MNIST · ")
