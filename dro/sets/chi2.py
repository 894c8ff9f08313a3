"""χ² ball: weights q in the simplex with (1/n)Σ(n·q_i − 1)² ≤ ρ, i.e. E_P̂[(dQ/dP̂ − 1)²] ≤ ρ.

No ½ factor (ρ_half = ρ/2 in the other convention). The supremum equals its one-dimensional
dual min_η η + sqrt(1+ρ)·sqrt(mean((ℓ−η)₊²)) (Levy, Carmon, Duchi & Sidford 2020). On the
segment where exactly the k largest losses exceed η the stationary η solves a quadratic, so
all n candidates come from running sums after one sort, and q* ∝ (ℓ − η*)₊. The conic program
uses the variance form min_{s ≥ ℓ, η} mean(s) + sqrt(ρ/n)·‖s − η‖₂: attained at ρ = 0 (s = ℓ)
and well scaled, which matters for SCS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dro._validation import check_nonneg
from dro.errors import SolverError
from dro.sets._xp import Ops
from dro.sets.base import CvxpyPiece, as_losses
from dro.sets.reweighting import ReweightingSet

__all__ = ["CHI2", "Chi2"]


class Chi2(ReweightingSet):
    """The χ² ball of radius ρ (``radius``) around the uniform weights."""

    name = "chi2"
    size_name = "radius"

    def check_size(self, value: object) -> float:
        return check_nonneg("radius", value)

    def _solve(self, ops: Ops, v: Any, size: float) -> tuple[Any, Any]:
        xp, rho, n = ops.xp, size, v.shape[-1]
        s = ops.sort_desc(v)
        top = s[..., :1]
        s = s - top  # shift by the max so the running variance keeps its digits
        k = ops.arange_like(v, 1, n + 1)
        c1, c2 = xp.cumsum(s, axis=-1), xp.cumsum(s * s, axis=-1)
        mean_k = c1 / k
        var_k = ops.clamp_min(c2 / k - mean_k**2, 0.0)
        denom = (1.0 + rho) * k - n
        ok = denom > 0
        eta = xp.where(ok, mean_k - xp.sqrt(n * var_k / ops.clamp_min(denom, 1e-300)), 0.0)
        nxt = xp.concatenate([s[..., 1:], xp.full_like(top, -math.inf)], axis=-1)
        tol = 1e-9 * ops.clamp_min(xp.amax(xp.abs(s), axis=-1, keepdims=True), 1.0)
        valid = ok & (eta <= s + tol) & (eta >= nxt - tol)
        # The dual on segment k in closed form (only the k largest losses exceed η): valid
        # segments hold stationary points of one convex function, so this only ranks ties.
        g = eta + math.sqrt(1.0 + rho) * xp.sqrt(
            ops.clamp_min(c2 - 2.0 * eta * c1 + k * eta * eta, 0.0) / n)
        g = xp.where(valid, g, math.inf)
        best = xp.argmin(g, axis=-1, keepdims=True)
        eta_best = ops.take(eta, best)
        inner = ops.take(g, best) < 0.0  # beats all mass on the largest loss (value 0 here)
        q = xp.where(inner, ops.clamp_min(v - top - eta_best, 0.0), ops.as_dtype(v == top, v))
        dual = xp.where(inner, top + eta_best, top)  # η = max ℓ certifies the point mass
        flat = (s[..., -1:] == 0) | (rho == 0.0)  # uniform weights: nothing to certify
        q = xp.where(flat, 1.0, q)
        dual = xp.where(flat, math.nan, dual)
        return q / xp.sum(q, axis=-1, keepdims=True), dual[..., 0]

    def dual_value(self, losses: np.ndarray, size: float, dual: float) -> float:
        """η + sqrt(1+ρ)·sqrt(mean((ℓ−η)₊²)): an upper bound for every η."""
        p = np.maximum(as_losses(losses) - dual, 0.0)
        return float(dual + np.sqrt(1.0 + size) * np.sqrt(np.mean(p * p)))

    def cvxpy_piece(self, ell: object, n: int) -> CvxpyPiece:
        import cvxpy as cp

        s = cp.Variable(n)
        eta = cp.Variable()  # min_η ‖s − η‖ is attained at mean(s); a free η keeps the cone sparse
        root_rho = cp.Parameter(nonneg=True)
        epigraph = ell <= s  # its dual variable is the worst-case q
        objective = cp.sum(s) / n + root_rho / math.sqrt(n) * cp.norm(s - eta, 2)
        return CvxpyPiece(objective, [epigraph], epigraph, root_rho, math.sqrt)

    def primal_cvxpy(self, losses: np.ndarray, size: float, solver: str = "CLARABEL") -> float:
        import cvxpy as cp

        v = as_losses(losses)
        n = v.size
        q = cp.Variable(n, nonneg=True)
        cons = [cp.sum(q) == 1, cp.norm(q - 1.0 / n) <= np.sqrt(float(size) / n)]
        prob = cp.Problem(cp.Maximize(q @ v), cons)
        prob.solve(solver=solver)
        if prob.status != cp.OPTIMAL:
            raise SolverError(f"χ² primal: {solver} returned status {prob.status!r}")
        return float(prob.value)

    def clip(self, size: float, n: int) -> float:
        # ρ ≥ n − 1 already admits every reweighting (a point mass has χ² = n − 1), and a huge
        # ρ would only put a huge coefficient into the conic program.
        return min(size, n - 1.0)

    def shrink(self, q: np.ndarray, size: float) -> np.ndarray:
        n = q.size
        q = q / q.sum()
        div = float(np.mean((n * q - 1.0) ** 2))
        if div > size:  # shrink towards uniform: the divergence scales with the square
            t = math.sqrt(size / div)
            q = t * q + (1.0 - t) / n
        return q


CHI2 = Chi2()
