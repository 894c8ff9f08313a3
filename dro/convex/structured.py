"""Fast exact solvers that exploit structure (scipy L-BFGS-B), checked against the cvxpy programs.

* Wasserstein, κ = ∞, smooth loss: mean ℓ + ε·L‖w ⊙ θ‖_* (w: standardization weights) is
  smooth except at θ = 0 for the ℓ2 dual norm (θ = 0 is tested first by its optimality
  condition) and, for the ℓ1 dual norm, becomes smooth with bounds after θ = θ⁺ − θ⁻.
* a reweighting set with a smooth worst case (χ², KL), smooth loss: V(θ) = sup_q qᵀℓ(θ) has
  a unique maximiser q* for generic losses, so by Danskin ∇V = Σ q*_i ∇ℓ_i, and q* comes
  exactly from the set's one-dimensional dual (dro.sets).
Which set may use which solver is the set's call (``lbfgs_supported`` in dro/sets/).
A run that does not reach a tiny projected gradient raises SolverError.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from dro.convex.losses import LossSpec, loss_and_derivative
from dro.errors import SolverError

__all__ = [
    "lbfgs_chi2",
    "lbfgs_reweighted",
    "lbfgs_supported",
    "lbfgs_wasserstein",
    "weighted_erm",
]

_GTOL = 1e-6


def lbfgs_supported(formulation: str, spec: LossSpec, dual_p: float, kappa: float) -> bool:
    """Whether a structured solver exists for this combination (the set decides)."""
    from dro.sets import LinearModelSet, get_set

    ball = get_set(formulation, LinearModelSet, what="formulation")
    return ball.lbfgs_supported(spec, dual_p, kappa)  # type: ignore[attr-defined]


def _run(fun: Callable, x0: np.ndarray, bounds=None, *, what: str) -> np.ndarray:
    res = minimize(
        fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": 20000, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-10},
    )
    _, g = fun(res.x)
    if bounds is not None:  # projected gradient: ignore components pushing into a bound
        lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
        g = np.where((res.x <= lo) & (g > 0), 0.0, g)
    gmax = float(np.max(np.abs(g))) if g.size else 0.0
    if not np.all(np.isfinite(res.x)) or gmax > _GTOL:
        raise SolverError(
            f"L-BFGS did not converge for {what}: {res.message!s}, max |gradient| {gmax:.2e}"
        )
    return res.x


def _smooth_part(spec: LossSpec, X: np.ndarray, y: np.ndarray, fit_intercept: bool):
    """(θ, b) ↦ smooth data term and its gradient: mean ℓ, or sqrt(MSE) for 'squared'."""
    n = X.shape[0]

    def f(theta: np.ndarray, b: float) -> tuple[float, np.ndarray, float]:
        val, du = loss_and_derivative(spec, X @ theta + b, y)
        if spec.name == "squared":
            root = math.sqrt(max(val.mean(), 1e-300))
            du = du / (2.0 * n * root)
            value = root
        else:
            du = du / n
            value = float(val.mean())
        return value, X.T @ du, float(du.sum()) if fit_intercept else 0.0

    return f


def lbfgs_wasserstein(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, radius: float, dual_p: float,
    fit_intercept: bool, weights: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Minimise mean ℓ + ε·L‖w ⊙ θ‖_* (κ = ∞; w = 1 unless given); returns (θ, b)."""
    d = X.shape[1]
    w = np.ones(d) if weights is None else np.asarray(weights, dtype=float)
    f = _smooth_part(spec, X, y, fit_intercept)
    pen = radius * (1.0 if spec.name == "squared" else spec.lipschitz)
    nb = 1 if fit_intercept else 0
    if dual_p == 2.0:
        b0 = 0.0
        if fit_intercept:
            def f_b(z):
                v, _, gb = f(np.zeros(d), float(z[0]))
                return v, np.array([gb])

            b0 = float(_run(f_b, np.zeros(1), what="the intercept-only model")[0])
        _, g0, _ = f(np.zeros(d), b0)
        if np.linalg.norm(g0 / w) <= pen * (1.0 + 1e-12):  # 0 ∈ ∂: θ = 0 is optimal
            return np.zeros(d), b0

        def fun(z):
            theta, b = z[:d], z[d] if nb else 0.0
            v, gt, gb = f(theta, b)
            nt = float(np.linalg.norm(w * theta))
            if nt > 0:
                gt = gt + pen * w * w * theta / nt
            return v + pen * nt, np.append(gt, gb) if nb else gt

        # Leave the kink at θ = 0 along −g/w², a descent direction since ‖g/w‖ > pen (−g
        # need not be one when the weights differ), by a small step.
        step = -g0 / (w * w)
        theta0 = 0.01 * step / np.linalg.norm(step)
        z = _run(fun, np.append(theta0, b0) if nb else theta0, what="Wasserstein")
        return z[:d], float(z[d]) if nb else 0.0

    def fun1(z):
        theta = z[:d] - z[d : 2 * d]
        v, gt, gb = f(theta, z[2 * d] if nb else 0.0)
        g = np.concatenate([gt + pen * w, -gt + pen * w] + ([[gb]] if nb else []))
        return v + pen * float(w @ (z[:d] + z[d : 2 * d])), g

    bounds = [(0.0, None)] * (2 * d) + [(None, None)] * nb
    z = _run(fun1, np.zeros(2 * d + nb), bounds, what="Wasserstein (ℓ1 dual norm)")
    return z[:d] - z[d : 2 * d], float(z[2 * d]) if nb else 0.0


def lbfgs_reweighted(
    X: np.ndarray, y: np.ndarray, spec: LossSpec,
    worst_case: Callable[[np.ndarray], tuple[float, np.ndarray]], *, fit_intercept: bool,
    what: str = "the worst case",
) -> tuple[np.ndarray, float]:
    """Minimise V(θ) = worst_case(ℓ(θ)) with Danskin gradients Σ q*_i ∇ℓ_i; returns (θ, b).

    ``worst_case`` maps a loss vector to (sup_q qᵀℓ, q*), e.g. a set's exact numpy form.
    """
    d = X.shape[1]
    nb = 1 if fit_intercept else 0

    def fun(z):
        theta, b = z[:d], z[d] if nb else 0.0
        val, du = loss_and_derivative(spec, X @ theta + b, y)
        value, q = worst_case(val)
        gu = q * du
        g = X.T @ gu
        return value, np.append(g, gu.sum()) if nb else g

    # At θ = 0 every loss is equal and V has a kink (q* is not unique): start a small step
    # down the ERM gradient instead, where the losses differ and V is differentiable.
    _, du0 = loss_and_derivative(spec, np.zeros(X.shape[0]), y)
    g0 = np.append(X.T @ du0, du0.sum()) if nb else X.T @ du0
    gn = float(np.linalg.norm(g0))
    z0 = -0.01 * g0 / gn if gn > 0 else np.zeros(d + nb)
    z = _run(fun, z0, what=what)
    return z[:d], float(z[d]) if nb else 0.0


def lbfgs_chi2(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, radius: float, fit_intercept: bool
) -> tuple[np.ndarray, float]:
    """Minimise the exact χ² worst case V(θ) with Danskin gradients; returns (θ, b)."""
    from dro.sets.chi2 import CHI2

    return lbfgs_reweighted(X, y, spec, lambda v: CHI2.worst_case(v, radius),
                            fit_intercept=fit_intercept, what="χ²")


def weighted_erm(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, q: np.ndarray, fit_intercept: bool
) -> tuple[np.ndarray, float, float, bool]:
    """min_θ Σ q_i ℓ_i(θ): (θ, b, value, converged). For q in the ambiguity set the value of
    a converged run is a lower bound on the robust optimum (q uniform: the ERM optimum).

    An unconverged run (e.g. separable data, where the logistic infimum is not attained)
    still returns its last point: any model is a feasible candidate, just not a bound.
    """
    d = X.shape[1]
    nb = 1 if fit_intercept else 0
    q = np.asarray(q, dtype=float)
    if spec.smooth:
        def fun(z):
            val, du = loss_and_derivative(spec, X @ z[:d] + (z[d] if nb else 0.0), y)
            gu = q * du
            return float(q @ val), np.append(X.T @ gu, gu.sum()) if nb else X.T @ gu

        res = minimize(fun, np.zeros(d + nb), jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
        value, g = fun(res.x)
        # Only a converged run (tiny gradient) is close enough to the minimum to serve.
        ok = bool(np.all(np.isfinite(res.x)) and np.max(np.abs(g), initial=0.0) <= _GTOL)
        return res.x[:d], float(res.x[d]) if nb else 0.0, value, ok
    import cvxpy as cp

    from dro.convex.losses import cvxpy_losses

    w = cp.Variable(d)
    b = cp.Variable() if fit_intercept else None
    u = X @ w + b if b is not None else X @ w
    prob = cp.Problem(cp.Minimize(q @ cvxpy_losses(spec, u, y)))
    try:
        prob.solve(solver="CLARABEL")
    except cp.SolverError:
        return np.zeros(d), 0.0, math.inf, False
    if w.value is None:
        return np.zeros(d), 0.0, math.inf, False
    coef = np.asarray(w.value, dtype=float).ravel()
    icpt = float(b.value) if b is not None else 0.0
    return coef, icpt, float(prob.value), prob.status == cp.OPTIMAL
