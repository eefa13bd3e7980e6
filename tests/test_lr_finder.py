"""The learning-rate range test: schedule, smoothing, suggestion, and a least-squares problem whose divergence
rate is known analytically (plain gradient descent diverges above 2/λ_max of the loss's Hessian)."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from torch import nn

from core.errors import CancelledError, InvalidArgumentError
from core.training import lr_finder


def test_rates_are_exponential_from_start_to_end() -> None:
    r = lr_finder.rates(1e-4, 1.0, 5)
    assert r[0] == pytest.approx(1e-4) and r[-1] == pytest.approx(1.0)
    assert all(b / a == pytest.approx(10.0) for a, b in zip(r, r[1:], strict=False))
    with pytest.raises(InvalidArgumentError):
        lr_finder.rates(1.0, 0.1, 10)
    with pytest.raises(InvalidArgumentError):
        lr_finder.rates(1e-5, 1.0, lr_finder.MAX_STEPS + 1)


def test_smoothing_is_debiased() -> None:
    assert lr_finder.smooth([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])
    assert lr_finder.has_diverged([1.0, 0.5, 2.5]) and not lr_finder.has_diverged([1.0, 0.5, 1.9])
    assert lr_finder.has_diverged([1.0, math.inf])


def _least_squares(eigenvalues: list[float], n: int = 256) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Data whose MSE loss has Hessian eigenvalues ``eigenvalues`` (plus the target's noise)."""
    g = torch.Generator().manual_seed(0)
    d = len(eigenvalues)
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=g))
    # MSE = mean((Xw - y)^2): Hessian 2 XᵀX / n; XᵀX = n/2 · diag(λ) gives Hessian diag(λ).
    x = u * torch.tensor(eigenvalues).sqrt() * math.sqrt(n / 2)
    w_true = torch.randn(d, generator=g) * 3
    y = x @ w_true + 0.1 * torch.randn(n, generator=g)
    return x, y, max(eigenvalues)


def test_suggestion_lies_below_the_analytic_divergence_rate_and_within_ten_times_of_it() -> None:
    x, y, lam = _least_squares([1.0, 0.8, 0.6, 0.5])
    model = nn.Linear(4, 1, bias=False)
    nn.init.zeros_(model.weight)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    heard: list[tuple[int, float, float]] = []
    sweep = lr_finder.range_test(model, [(x, y)], lambda out, t: nn.functional.mse_loss(out.squeeze(1), t),
                                 optimizer, lr_finder.rates(), on_point=lambda *p: heard.append(p))
    assert len(heard) == len(sweep.losses) == lr_finder.STEPS
    assert torch.equal(model.weight, before)  # weights restored
    suggestion = lr_finder.suggest(sweep.rates, sweep.smoothed)
    limit = 2 / lam
    for rate in (suggestion.steepest, suggestion.minimum_tenth):
        assert limit / 10 <= rate < limit, (rate, limit)


def test_the_sweep_stops_early_once_the_loss_diverges() -> None:
    x, y, _ = _least_squares([1.0, 0.5])
    model = nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sweep = lr_finder.range_test(model, [(x, y)], lambda out, t: nn.functional.mse_loss(out.squeeze(1), t),
                                 optimizer, lr_finder.rates(1e-4, 100.0, 200))
    assert sweep.diverged and len(sweep.losses) < 200
    assert sweep.smoothed[-1] > lr_finder.DIVERGENCE * min(sweep.smoothed)


def test_cancel_stops_the_sweep_and_restores_the_weights() -> None:
    x, y, _ = _least_squares([1.0, 0.5])
    model = nn.Linear(2, 1, bias=False)
    before = model.weight.detach().clone()
    cancel = threading.Event()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def on_point(step: int, rate: float, loss: float) -> None:
        if step == 3:
            cancel.set()

    with pytest.raises(CancelledError):
        lr_finder.range_test(model, [(x, y)], lambda out, t: nn.functional.mse_loss(out.squeeze(1), t),
                             optimizer, lr_finder.rates(1e-4, 1.0, 50), on_point=on_point, cancel=cancel)
    assert torch.equal(model.weight, before)


def test_too_few_points_is_a_typed_error() -> None:
    with pytest.raises(InvalidArgumentError):
        lr_finder.suggest([1e-3, 1e-2], [1.0, 0.5])
