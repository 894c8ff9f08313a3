"""Type-1 Wasserstein DRO for linear models (Shafieezadeh-Abadeh, Esfahani & Kuhn 2015, 2019).

Transport cost ‖x − x′‖ + κ·1[y ≠ y′] (classification) or ‖x − x′‖ + κ|y − y′| (regression);
‖·‖_* is the dual norm. For a loss with Lipschitz constant L:
  classification, κ = ∞:  mean ℓ + ε·L‖θ‖_*
  classification, κ < ∞:  min_{λ,s} λε + mean s,  s_i ≥ ℓ(y_i u_i), s_i ≥ ℓ(−y_i u_i) − λκ,
                          L‖θ‖_* ≤ λ
  regression:             mean ℓ + ε·L·max(‖θ‖_*, 1/κ)
The squared loss has no finite type-1 worst case, so for it ``radius`` is a type-2 radius and
the objective is (sqrt(MSE) + ε‖θ‖_*)² (Blanchet, Kang & Murthy 2019; κ must be ∞).
``weights`` w make the dual norm ‖w ⊙ θ‖_*: the form the problem takes on standardized
features (dro.convex.scaling).
"""

from __future__ import annotations

import math

import numpy as np

from dro.convex.losses import LossSpec, cvxpy_losses, loss_and_derivative
from dro.convex.program import LinearDROProgram, linear_scores
from dro.errors import InvalidParameterError

__all__ = ["wasserstein_objective", "wasserstein_program"]


def _check_kappa(spec: LossSpec, kappa: float) -> None:
    if spec.name == "squared" and not math.isinf(kappa):
        raise InvalidParameterError(
            f"kappa={kappa!r} is not allowed with loss='squared' (type-2 formula); use kappa=inf"
        )


def wasserstein_program(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, dual_p: float, kappa: float,
    fit_intercept: bool, weights: np.ndarray | None = None,
) -> LinearDROProgram:
    """Build the DPP cvxpy problem; its Parameter is the radius ε."""
    import cvxpy as cp

    _check_kappa(spec, kappa)
    n = X.shape[0]
    w, b, u = linear_scores(X, fit_intercept)
    eps = cp.Parameter(nonneg=True)
    wnorm = cp.norm(w if weights is None else cp.multiply(weights, w), dual_p)
    to_obj = lambda v: v  # noqa: E731
    if spec.name == "squared":
        objective = cp.norm(y - u, 2) / math.sqrt(n) + eps * wnorm
        to_obj = lambda v: v * v  # noqa: E731
        cons = []
    elif spec.task == "regression":
        reg = wnorm if math.isinf(kappa) else cp.maximum(wnorm, 1.0 / kappa)
        objective = cp.sum(cvxpy_losses(spec, u, y)) / n + spec.lipschitz * eps * reg
        cons = []
    elif math.isinf(kappa):
        objective = cp.sum(cvxpy_losses(spec, u, y)) / n + spec.lipschitz * eps * wnorm
        cons = []
    else:
        # λ ≥ L‖θ‖_* is O(1) on standardized features, but with κ < 1 it must reach the
        # flip price (ℓ̃ − ℓ)/κ: solve for ν = min(κ, 1)·λ, which stays O(1) in both cases.
        c = min(kappa, 1.0)
        nu = cp.Variable(nonneg=True)
        s = cp.Variable(n)
        cons = [
            cvxpy_losses(spec, u, y) <= s,
            cvxpy_losses(spec, u, y, flipped=True) - (kappa / c) * nu <= s,
            c * spec.lipschitz * wnorm <= nu,
        ]
        objective = eps * (1.0 / c) * nu + cp.sum(s) / n
        prob = cp.Problem(cp.Minimize(objective), cons)
        # Their duals: the mass kept on each sample and the mass whose label is flipped.
        return LinearDROProgram(prob, eps, w, b, weight_constraint=cons[:2])
    prob = cp.Problem(cp.Minimize(objective), cons)
    return LinearDROProgram(prob, eps, w, b, to_objective=to_obj)


def wasserstein_objective(
    X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, spec: LossSpec, *,
    radius: float, dual_p: float, kappa: float, weights: np.ndarray | None = None,
) -> float:
    """Exact worst-case expected loss of the model (θ, b) over the Wasserstein ball."""
    _check_kappa(spec, kappa)
    u = X @ coef + intercept
    losses, _ = loss_and_derivative(spec, u, y)
    tn = float(np.linalg.norm(coef if weights is None else weights * coef, ord=dual_p))
    if spec.name == "squared":
        return float((math.sqrt(losses.mean()) + radius * tn) ** 2)
    if spec.task == "regression":
        reg = tn if math.isinf(kappa) else max(tn, 1.0 / kappa)
        return float(losses.mean() + radius * spec.lipschitz * reg)
    lam0 = spec.lipschitz * tn
    if math.isinf(kappa):
        return float(losses.mean() + radius * lam0)
    flipped, _ = loss_and_derivative(spec, u, -y)
    # h(λ) = λε + mean max(ℓ_i, ℓ̃_i − λκ) is convex piecewise linear: its minimum over
    # λ ≥ λ0 sits at λ0 or at the breakpoint where the slope ε − κ·#{λ_i > λ}/n turns ≥ 0.
    bp = np.sort((flipped - losses) / kappa)[::-1]
    k = math.floor(len(bp) * radius / kappa)
    cands = [lam0] + [max(lam0, bp[j]) for j in (k - 1, k, k + 1) if 0 <= j < len(bp)]
    return float(
        min(lam * radius + np.maximum(losses, flipped - lam * kappa).mean() for lam in cands)
    )
