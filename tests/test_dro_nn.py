"""Torch risks: gradients are worst-case weights times per-sample gradients; group DRO;
Sinha et al.'s penalty against its closed form; the torch linear path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dro.convex.losses import loss_spec
from dro.convex.solve import fit_linear_dro
from dro.errors import InvalidParameterError
from dro.nn import (
    GroupDRO,
    chi2_risk,
    chi2_weights,
    cvar_risk,
    cvar_weights,
    group_dro_risk,
    wasserstein_penalty_risk,
)


@pytest.mark.parametrize("risk,weights,arg", [(chi2_risk, chi2_weights, 0.5),
                                              (cvar_risk, cvar_weights, 0.2)])
def test_gradient_is_weights_times_per_sample_gradients(risk, weights, arg) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    w = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    losses = torch.nn.functional.softplus(x @ w)  # any per-sample loss (reduction="none")
    risk(losses, arg).backward()
    q = weights(losses.detach(), arg)
    expected = x.T @ (q * torch.sigmoid(x @ w.detach()))
    torch.testing.assert_close(w.grad, expected)


def test_float32_losses_keep_dtype_and_reject_bad_shapes() -> None:
    out = chi2_risk(torch.rand(10, dtype=torch.float32), 0.1)
    assert out.dtype == torch.float32 and out.ndim == 0
    with pytest.raises(InvalidParameterError, match="1-D"):
        chi2_risk(torch.rand(3, 2), 0.1)
    with pytest.raises(InvalidParameterError, match="radius"):
        chi2_risk(torch.rand(3), -1.0)


def test_group_dro_risk_and_online_weights() -> None:
    losses = torch.tensor([1.0, 3.0, 2.0, 0.5], requires_grad=True)
    groups = torch.tensor([0, 1, 1, 2])
    assert group_dro_risk(losses, groups, 4).item() == pytest.approx(2.5)
    gdro = GroupDRO(3, step_size=1.0)
    first = gdro(losses, groups)
    assert first.item() == pytest.approx(float((gdro.q * torch.tensor([1.0, 2.5, 0.5])).sum()))
    for _ in range(30):
        gdro(losses, groups)
    assert int(torch.argmax(gdro.q)) == 1 and gdro.q.sum().item() == pytest.approx(1.0)
    with pytest.raises(InvalidParameterError, match="n_groups"):
        group_dro_risk(losses, torch.tensor([0, 1, 5, 0]), 3)


def test_wasserstein_penalty_matches_closed_form() -> None:
    # Linear model, squared loss: sup_Δ (r − wᵀΔ)² − γ‖Δ‖² = r²γ/(γ − ‖w‖²) for γ > ‖w‖².
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(20, generator=gen, dtype=torch.float64)
    w = torch.tensor([0.5, -0.3, 0.2, 0.1], dtype=torch.float64, requires_grad=True)
    gamma = 1.0

    def model(inp):
        return inp @ w

    def loss_fn(pred, target):
        return (target - pred) ** 2

    risk = wasserstein_penalty_risk(model, loss_fn, x, y, gamma=gamma, steps=60)
    wn = float((w.detach() ** 2).sum())
    r = (y - x @ w.detach()).numpy()
    assert risk.item() == pytest.approx(np.mean(r**2 * gamma / (gamma - wn)), rel=1e-8)
    risk.backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


@pytest.mark.parametrize("formulation", ["wasserstein", "chi2"])
def test_torch_linear_path_matches_exact(formulation: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = np.where(X @ np.array([1.0, -1, 0.5, 0, 0]) + rng.standard_normal(300) > 0, 1.0, -1.0)
    spec = loss_spec("classification", "logistic")
    kw = dict(formulation=formulation, spec=spec, radius=0.1)
    exact = fit_linear_dro(X, y, solver="CLARABEL", **kw)
    fast = fit_linear_dro(X, y, solver="torch", **kw)
    assert fast.objective == pytest.approx(exact.objective, rel=1e-6)
