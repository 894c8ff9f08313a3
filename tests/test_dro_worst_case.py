"""Exact worst-case reweightings (numpy and torch) against brute-force conic primals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dro.convex.worst_case import (
    chi2_dual_value,
    chi2_primal_cvxpy,
    chi2_worst_case,
    cvar_primal_cvxpy,
    cvar_worst_case,
)
from dro.errors import InvalidParameterError
from dro.nn import chi2_risk, cvar_risk


def _losses(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).exponential(size=n)


@pytest.mark.parametrize("n", [1, 2, 7, 60])
@pytest.mark.parametrize("rho", [0.0, 1e-4, 0.1, 1.0, 50.0])
def test_chi2_value_equals_primal_and_weights_in_ball(n: int, rho: float) -> None:
    loss = _losses(n, seed=n)
    value, q = chi2_worst_case(loss, rho)
    assert value == pytest.approx(chi2_primal_cvxpy(loss, rho), rel=1e-6, abs=1e-8)
    assert q.min() >= 0 and q.sum() == pytest.approx(1.0)
    assert np.mean((n * q - 1.0) ** 2) <= rho + 1e-9
    assert q @ loss == pytest.approx(value, rel=1e-10)
    torch_value = chi2_risk(torch.tensor(loss), rho).item()
    assert torch_value == pytest.approx(value, rel=1e-9)


def test_chi2_dual_bounds_primal_and_is_tight() -> None:
    loss = _losses(40, seed=3)
    value, _ = chi2_worst_case(loss, 0.3)
    etas = np.linspace(-3, loss.max() + 1, 200)
    duals = [chi2_dual_value(loss, 0.3, e) for e in etas]
    assert min(duals) >= value - 1e-12
    assert min(duals) == pytest.approx(value, rel=1e-2)


def test_chi2_monotone_in_radius_and_capped_by_max() -> None:
    loss = _losses(30, seed=4)
    vals = [chi2_worst_case(loss, r)[0] for r in [0, 0.01, 0.1, 1, 10, 29, 100]]
    assert vals[0] == pytest.approx(loss.mean())
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(vals))
    assert vals[-1] == pytest.approx(loss.max())  # ρ ≥ n − 1 reaches a point mass


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 1.0])
def test_cvar_value_equals_lp(alpha: float) -> None:
    loss = _losses(37, seed=5)
    value, q = cvar_worst_case(loss, alpha)
    assert value == pytest.approx(cvar_primal_cvxpy(loss, alpha), rel=1e-7)
    assert q.max() <= 1.0 / (alpha * loss.size) + 1e-12 and q.sum() == pytest.approx(1.0)
    assert cvar_risk(torch.tensor(loss), alpha).item() == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x"])
def test_bad_radius_is_named(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="radius"):
        chi2_worst_case(np.ones(3), bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.0, 1.5, -1.0])
def test_bad_alpha_is_named(bad: float) -> None:
    with pytest.raises(InvalidParameterError, match="alpha"):
        cvar_worst_case(np.ones(3), bad)


@pytest.mark.parametrize("rho", [0.01, 1.0, 100.0])
def test_chi2_near_tied_losses_equal_primal(rho: float) -> None:
    # Near ties (losses at θ = 0 take two values) make many dual segments admissible.
    loss = np.r_[np.full(250, 0.7), np.full(150, 0.7 + 1e-11), np.full(100, 0.2)]
    value, q = chi2_worst_case(loss, rho)
    assert value == pytest.approx(chi2_primal_cvxpy(loss, rho), rel=1e-6, abs=1e-8)
    assert q @ loss == pytest.approx(value, rel=1e-10)
