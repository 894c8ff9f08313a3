"""Exact worst-case reweightings of a fixed loss vector (numpy), and cvxpy primals to check them.

For losses ℓ ∈ ℝⁿ these compute sup_q qᵀℓ over
  χ²:   q in the simplex with (1/n)Σ(n·q_i − 1)² ≤ ρ      (no ½ factor)
  CVaR: q in the simplex with q_i ≤ 1/(α·n)
in O(n log n) by sorting. The χ² supremum equals its one-dimensional dual
min_η η + sqrt(1+ρ)·sqrt(mean((ℓ−η)₊²)); the optimal η solves a quadratic on the segment
where exactly the k largest losses exceed it, and q ∝ (ℓ − η)₊.
"""

from __future__ import annotations

import numpy as np

from dro._validation import check_nonneg, check_open_unit
from dro.errors import InvalidParameterError, SolverError

__all__ = [
    "chi2_dual_value",
    "chi2_primal_cvxpy",
    "chi2_worst_case",
    "cvar_primal_cvxpy",
    "cvar_worst_case",
]


def _as_losses(losses: np.ndarray) -> np.ndarray:
    v = np.asarray(losses, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise InvalidParameterError(f"losses must be a non-empty 1-D array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InvalidParameterError("losses must be finite")
    return v


def chi2_dual_value(losses: np.ndarray, radius: float, eta: float) -> float:
    """The dual function η + sqrt(1+ρ)·sqrt(mean((ℓ−η)₊²)): an upper bound for every η."""
    p = np.maximum(_as_losses(losses) - eta, 0.0)
    return float(eta + np.sqrt(1.0 + radius) * np.sqrt(np.mean(p * p)))


def chi2_worst_case(losses: np.ndarray, radius: float) -> tuple[float, np.ndarray]:
    """Return (sup_q qᵀℓ, q) over the χ² ball of radius ρ around the uniform weights."""
    v = _as_losses(losses)
    rho = check_nonneg("radius", radius)
    n = v.size
    if rho == 0.0 or np.ptp(v) == 0.0:
        return float(v.mean()), np.full(n, 1.0 / n)
    order = np.argsort(-v, kind="stable")
    top = v[order[0]]
    s = v[order] - top  # shift by the max so the running variance keeps its digits
    k = np.arange(1, n + 1, dtype=float)
    mean_k = np.cumsum(s) / k
    var_k = np.maximum(np.cumsum(s * s) / k - mean_k**2, 0.0)
    denom = (1.0 + rho) * k - n
    ok = denom > 0
    eta = np.full(n, -np.inf)
    eta[ok] = mean_k[ok] - np.sqrt(n * var_k[ok] / denom[ok])
    nxt = np.append(s[1:], -np.inf)
    scale = 1e-9 * max(1.0, float(np.abs(s).max()))
    valid = ok & (eta <= s + scale) & (eta >= nxt - scale)
    cands = eta[valid]
    if cands.size > 8:
        # Many segments pass only when losses (nearly) tie, e.g. at θ = 0. Rank them by the
        # dual in closed form (on the segment only the top k losses exceed η) and evaluate
        # the best few exactly, not one O(n) dual per segment; the primal check still holds.
        c1, c2, kk = np.cumsum(s)[valid], np.cumsum(s * s)[valid], k[valid]
        approx = cands + np.sqrt((1.0 + rho) * np.maximum(
            c2 - 2.0 * cands * c1 + kk * cands * cands, 0.0) / n)
        cands = cands[np.argsort(approx, kind="stable")[:8]]
    best_val, best_eta = float(top), None  # η ≥ max ℓ gives the value max ℓ
    for e in cands:
        val = chi2_dual_value(v, rho, float(e) + top)
        if val < best_val:
            best_val, best_eta = val, float(e) + top
    if best_eta is None:  # mass on the largest losses (ρ ≥ n/k − 1 for k ties)
        q = (v == top).astype(float)
        q /= q.sum()
        return float(top), q
    p = np.maximum(v - best_eta, 0.0)
    q = p / p.sum()
    primal = float(q @ v)
    if abs(primal - best_val) > 1e-7 * (1.0 + abs(best_val)):
        raise SolverError(f"χ² worst case: primal {primal} and dual {best_val} disagree")
    return primal, q


def cvar_worst_case(losses: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Return (CVaR_α, q): the mean of the worst α-fraction of the losses, with its weights."""
    v = _as_losses(losses)
    a = check_open_unit("alpha", alpha)
    n = v.size
    cap = 1.0 / (a * n)
    order = np.argsort(-v, kind="stable")
    k = min(int(np.floor(a * n + 1e-12)), n)
    q = np.zeros(n)
    q[order[:k]] = cap
    if k < n:
        q[order[k]] = max(0.0, 1.0 - k * cap)
    q /= q.sum()
    return float(q @ v), q


def chi2_primal_cvxpy(losses: np.ndarray, radius: float, solver: str = "CLARABEL") -> float:
    """sup_q qᵀℓ over the χ² ball by a generic conic solver (a brute-force check)."""
    import cvxpy as cp

    v = _as_losses(losses)
    n = v.size
    q = cp.Variable(n, nonneg=True)
    cons = [cp.sum(q) == 1, cp.norm(q - 1.0 / n) <= np.sqrt(float(radius) / n)]
    prob = cp.Problem(cp.Maximize(q @ v), cons)
    prob.solve(solver=solver)
    if prob.status != cp.OPTIMAL:
        raise SolverError(f"χ² primal: {solver} returned status {prob.status!r}")
    return float(prob.value)


def cvar_primal_cvxpy(losses: np.ndarray, alpha: float, solver: str = "CLARABEL") -> float:
    """sup_q qᵀℓ with q in the simplex and q_i ≤ 1/(α n), by a generic LP solver."""
    import cvxpy as cp

    v = _as_losses(losses)
    n = v.size
    q = cp.Variable(n, nonneg=True)
    prob = cp.Problem(cp.Maximize(q @ v), [cp.sum(q) == 1, q <= 1.0 / (float(alpha) * n)])
    prob.solve(solver=solver)
    if prob.status != cp.OPTIMAL:
        raise SolverError(f"CVaR primal: {solver} returned status {prob.status!r}")
    return float(prob.value)
