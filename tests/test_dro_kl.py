"""KL DRO (Hu & Hong 2013): the numpy dual against the cvxpy primal over weights and a scalar
search, the torch form against numpy, and the linear-model fit against a direct cvxpy solve."""

from __future__ import annotations

import itertools
import math

import cvxpy as cp
import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from sklearn.utils.estimator_checks import parametrize_with_checks

from dro import DROClassifier, DRORegressor, worst_case_risk, worst_case_weights
from dro.convex.losses import loss_spec
from dro.convex.solve import fit_linear_dro
from dro.errors import InvalidParameterError
from dro.sets.kl import KL, kl_divergence

LOGISTIC = loss_spec("classification", "logistic")
HINGE = loss_spec("classification", "hinge")


def _losses(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).exponential(size=n)


def _dual_by_search(losses: np.ndarray, rho: float) -> float:
    """inf_α α·log mean exp(ℓ/α) + αρ by a bounded scalar search on log α (independent)."""
    top = losses.max()

    def f(t: float) -> float:
        a = math.exp(t)
        z = (losses - top) / a
        return top + a * (math.log(np.mean(np.exp(z))) + rho)

    res = minimize_scalar(f, bounds=(-30.0, 30.0), method="bounded",
                          options={"xatol": 1e-12, "maxiter": 2000})
    return min(float(res.fun), float(top))  # α → 0 gives the largest loss


@pytest.mark.parametrize("n", [2, 7, 60])
@pytest.mark.parametrize("rho", [1e-8, 1e-3, 0.1, 1.0])
def test_value_equals_primal_over_weights_and_the_scalar_dual(n: int, rho: float) -> None:
    loss = _losses(n, seed=n)
    value, q = KL.worst_case(loss, rho)
    if rho >= 0.1:  # below, the conic primal's relative-entropy cone is accurate to ~1e-6
        assert value == pytest.approx(KL.primal_cvxpy(loss, rho), rel=1e-6)
    assert value == pytest.approx(_dual_by_search(loss, rho), rel=1e-9)
    assert q.min() >= 0 and q.sum() == pytest.approx(1.0)
    assert kl_divergence(q) <= min(rho, math.log(n)) + 1e-9
    assert q @ loss == pytest.approx(value, rel=1e-12)
    assert worst_case_risk(torch.tensor(loss), "kl", rho).item() == pytest.approx(value, rel=1e-12)


def test_weights_are_the_exponential_tilt() -> None:
    loss = _losses(30, seed=1)
    _, q = KL.worst_case(loss, 0.2)
    alpha = (loss[0] - loss[1]) / math.log(q[0] / q[1])  # q ∝ exp(ℓ/α*)
    tilt = np.exp((loss - loss.max()) / alpha)
    np.testing.assert_allclose(q, tilt / tilt.sum(), rtol=1e-9)
    assert kl_divergence(q) == pytest.approx(0.2, rel=1e-9)  # the constraint is active


def test_limits_zero_radius_constant_losses_and_ties() -> None:
    loss = _losses(20, seed=2)
    value, q = KL.worst_case(loss, 0.0)
    assert value == pytest.approx(loss.mean()) and np.allclose(q, 1 / 20)
    value, q = KL.worst_case(np.full(5, 0.3), 2.0)
    assert value == pytest.approx(0.3) and np.allclose(q, 0.2)
    # 3 tied maxima of 10: from ρ = log(10/3) on, α* = 0 and q is uniform on the ties.
    ties = np.r_[np.full(3, 2.0), np.ones(7)]
    for rho in (math.log(10 / 3), 5.0):
        value, q = KL.worst_case(ties, rho)
        assert value == 2.0 and np.allclose(q, np.r_[np.full(3, 1 / 3), np.zeros(7)])
    below, _ = KL.worst_case(ties, math.log(10 / 3) - 1e-3)
    assert 1.99 < below < 2.0
    assert below == pytest.approx(KL.primal_cvxpy(ties, math.log(10 / 3) - 1e-3), rel=1e-7)


def test_monotone_in_radius_capped_by_max_and_the_dual_bounds_it() -> None:
    loss = _losses(40, seed=3)
    vals = [KL.worst_case(loss, r)[0] for r in (0, 1e-6, 0.01, 0.1, 1, 3, math.log(40), 100)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(vals))
    assert vals[-1] == pytest.approx(loss.max()) and vals[-2] == pytest.approx(loss.max())
    value, _ = KL.worst_case(loss, 0.3)
    duals = [KL.dual_value(loss, 0.3, a) for a in np.geomspace(1e-3, 1e3, 300)]
    assert min(duals) >= value - 1e-12 and min(duals) == pytest.approx(value, rel=1e-3)


def test_bad_radius_is_named() -> None:
    with pytest.raises(InvalidParameterError, match="radius"):
        KL.worst_case(np.ones(3), -0.1)
    with pytest.raises(InvalidParameterError, match="ambiguity='kll'"):
        worst_case_risk(torch.ones(3), "kll", 0.1)


def test_torch_rows_gradient_and_dtype() -> None:
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(3, 4, 25, generator=gen, dtype=torch.float64)
    w = worst_case_weights(losses, "kl", 0.3)
    for idx in itertools.product(range(3), range(4)):
        _, q = KL.worst_case(losses[idx].numpy(), 0.3)
        np.testing.assert_allclose(w[idx].numpy(), q, rtol=1e-12, atol=1e-15)
    # Envelope theorem: d value / d ℓ_i = q*_i, checked by finite differences of the numpy dual.
    loss = losses[0, 0].numpy()
    _, q = KL.worst_case(loss, 0.3)
    h = 1e-6
    for i in (0, 7, 19):
        up, down = loss.copy(), loss.copy()
        up[i] += h
        down[i] -= h
        fd = (KL.worst_case(up, 0.3)[0] - KL.worst_case(down, 0.3)[0]) / (2 * h)
        assert fd == pytest.approx(q[i], rel=1e-5, abs=1e-9)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    theta = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    per = torch.nn.functional.softplus(x @ theta)
    worst_case_risk(per, "kl", 0.5).backward()
    qt = worst_case_weights(per.detach(), "kl", 0.5)
    torch.testing.assert_close(theta.grad, x.T @ (qt * torch.sigmoid(x @ theta.detach())))
    out = worst_case_risk(torch.rand(2, 10), "kl", 0.1)
    assert out.dtype == torch.float32 and out.shape == (2,)


def test_cvxpy_piece_on_fixed_losses_equals_numpy() -> None:
    loss = _losses(25, seed=4)
    piece = KL.cvxpy_piece(cp.Constant(loss), loss.size)
    prob = cp.Problem(cp.Minimize(piece.objective), piece.constraints)
    piece.parameter.value = piece.to_parameter(0.4)
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL and prob.is_dcp(dpp=True)
    assert prob.value == pytest.approx(KL.worst_case(loss, 0.4)[0], rel=1e-7)


# --- linear models: the certified fit against a direct cvxpy solve of the KL-DRO problem ---

@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 4))
    y = np.where(X @ np.array([1.5, -1.0, 0.5, 0.0]) + 0.3 + rng.standard_normal(150) > 0,
                 1.0, -1.0)
    return X, y


def _direct(X: np.ndarray, y: np.ndarray, rho: float, loss: str) -> float:
    """min_θ inf_α α·log mean exp(ℓ(θ)/α) + αρ as one perspective program (independent of
    dro's exponential-cone form); its model is scored by the scalar dual search, since the
    solver's own value carries its tolerance (~1e-6 here)."""
    n, d = X.shape
    w, b, s, a = cp.Variable(d), cp.Variable(), cp.Variable(n), cp.Variable(nonneg=True)
    if loss == "absolute":
        ell = cp.abs(y - X @ w - b)
    else:
        m = cp.multiply(y, X @ w + b)
        ell = cp.logistic(-m) if loss == "logistic" else cp.pos(1 - m)
    obj = cp.perspective(cp.log_sum_exp(s), a) - a * math.log(n) + a * rho
    prob = cp.Problem(cp.Minimize(obj), [ell <= s])
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    losses = np.asarray(ell.value, dtype=float)
    assert _dual_by_search(losses, rho) == pytest.approx(prob.value, rel=1e-5)
    return _dual_by_search(losses, rho)


@pytest.mark.parametrize("rho", [0.01, 0.1])
def test_fit_matches_a_direct_solve_for_every_solver(data, rho: float) -> None:
    X, y = data
    want = _direct(X, y, rho, "logistic")
    for solver in ("lbfgs", "CLARABEL", "torch"):
        fit = fit_linear_dro(X, y, formulation="kl", spec=LOGISTIC, radius=rho, solver=solver)
        assert fit.objective == pytest.approx(want, rel=1e-6), solver
    hinge = fit_linear_dro(X, y, formulation="kl", spec=HINGE, radius=rho)
    assert hinge.solver == "CLARABEL"
    assert hinge.objective == pytest.approx(_direct(X, y, rho, "hinge"), rel=1e-6)


def test_fit_at_the_ends_of_the_radius_range(data) -> None:
    # ρ = 0 is ERM (as χ² at 0); ρ ≥ log n is the minimax problem (as χ² at n − 1).
    X, y = data
    for rho, chi in ((0.0, 0.0), (math.log(150), 149.0), (1e6, 149.0)):
        kl = fit_linear_dro(X, y, formulation="kl", spec=HINGE, radius=rho)
        ref = fit_linear_dro(X, y, formulation="chi2", spec=HINGE, radius=chi)
        assert kl.objective == pytest.approx(ref.objective, rel=1e-6)


def test_estimators_take_kl_by_name(data) -> None:
    X, y = data
    est = DROClassifier(ambiguity="kl", radius=0.1).fit(X, np.where(y > 0, "b", "a"))
    assert est.robust_objective_ == pytest.approx(_direct(X, y, 0.1, "logistic"), rel=1e-6)
    q = est.worst_case_weights_
    assert q.sum() == pytest.approx(1.0) and kl_divergence(q) <= 0.1 + 1e-9
    margins = y * est.decision_function(X)
    assert q @ np.logaddexp(0, -margins) == pytest.approx(est.robust_objective_, rel=1e-9)
    assert est.solver_status_.startswith("optimal")
    yr = X @ np.array([1.0, -2.0, 0.5, 0.0]) + np.random.default_rng(1).standard_normal(150)
    reg = DRORegressor(ambiguity="kl", loss="absolute", radius=0.05).fit(X, yr)
    assert reg.robust_objective_ == pytest.approx(_direct(X, yr, 0.05, "absolute"), rel=1e-6)


@pytest.mark.parametrize("est,match", [
    (DROClassifier(ambiguity="nope"), "ambiguity='nope' is not allowed; choose one of "
                                      r"\('chi2', 'cvar', 'kl'\)"),
    (DROClassifier(ambiguity="wasserstein"), "ambiguity='wasserstein'"),
    (DROClassifier(ambiguity="kl", radius=-1), "radius=-1"),
    (DRORegressor(ambiguity="cvar", alpha=0), "alpha=0"),
])
def test_bad_ambiguity_and_sizes_are_named(data, est, match) -> None:
    X, y = data
    with pytest.raises(InvalidParameterError, match=match):
        est.fit(X, y)


@parametrize_with_checks([DROClassifier(ambiguity="kl"), DRORegressor(ambiguity="kl")])
def test_sklearn_contract(estimator, check) -> None:
    check(estimator)
