"""core.mistakes: losses ranked per confusion cell, a stratified bounded sample, PCA and t-SNE projections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core import mistakes


class _Tiny(nn.Module):
    """A linear classifier with the explorer's forward_features / forward_head split."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _scores(count: int = 60) -> mistakes.Scores:
    x = torch.randn(count, 4)
    labels = torch.arange(count) % 3
    return mistakes.score(_Tiny(), lambda idx: x[idx], labels, ("a", "b", "c"), batch_size=16)


def test_scores_match_a_direct_cross_entropy_and_keep_features() -> None:
    scores = _scores()
    assert scores.losses.shape == (60,) and scores.top_classes.shape == (60, 3)
    assert scores.features is not None and scores.features.shape == (60, 4)
    assert torch.allclose(scores.top_probs.sum(1), torch.ones(60), atol=1e-5)


def test_ranked_filters_a_cell_and_sorts_by_loss_highest_first() -> None:
    scores = _scores()
    true, predicted, count = mistakes.cells(scores)[0]
    chosen = mistakes.ranked(scores, true, predicted, limit=100)
    assert len(chosen) == count and all(int(scores.labels[i]) == true for i in chosen)
    assert all(int(scores.predicted[i]) == predicted for i in chosen)
    losses = scores.losses[chosen]
    assert torch.all(losses[:-1] >= losses[1:])
    overall = mistakes.ranked(scores, limit=5)
    assert len(overall) == 5 and float(scores.losses[overall[0]]) == float(scores.losses.max())
    counts = [n for _, _, n in mistakes.cells(scores)]
    assert counts == sorted(counts, reverse=True)


def test_stratified_sample_is_bounded_and_has_every_class() -> None:
    labels = torch.tensor([0] * 500 + [1] * 20 + [2] * 2 + [3] * 1)
    sample = mistakes.stratified_sample(labels, 40)
    assert len(sample) <= 40 and len(set(sample)) == len(sample)
    assert set(labels[sample].tolist()) == {0, 1, 2, 3}
    with pytest.raises(mistakes.MistakesError):
        mistakes.stratified_sample(labels, 0)


def test_pca_matches_numpy_svd_up_to_sign() -> None:
    features = torch.randn(50, 8) * torch.arange(1, 9)
    ours = mistakes.pca_2d(features).double().numpy()
    x = features.double().numpy()
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    oracle = x @ vt[:2].T
    for k in range(2):
        assert abs(np.corrcoef(ours[:, k], oracle[:, k])[0, 1]) > 0.9999


def test_tsne_gives_one_point_per_row() -> None:
    assert mistakes.tsne_2d(torch.randn(30, 6)).shape == (30, 2)


def test_a_finished_run_is_scored_and_cached_per_checkpoint(digits_run: str) -> None:
    from explorer import services

    folder = services.run_store().checkpoint_dir(digits_run)
    scored = mistakes.for_run(folder, "digits")
    assert len(scored.scores.labels) > 0 and scored.scores.features is not None
    assert mistakes.for_run(folder, "digits") is scored
    heat = mistakes.heat_map(scored, mistakes.ranked(scored.scores, limit=1)[0])
    assert heat.shape == scored.inputs([0]).shape[-2:]
    with pytest.raises(mistakes.MistakesError, match="checkpoint"):
        mistakes.for_run(folder.parent / "no-such-run", "digits")
