"""CVaR: weights q in the simplex with q_i ≤ 1/(α·n), the mean of the worst α fraction.

Equal to min_η η + (1/α)·mean((ℓ − η)₊) (Rockafellar & Uryasev), minimised at the value at
risk: the loss that receives the leftover mass. The worst case puts 1/(αn) on the ⌊αn⌋ largest
losses and the rest on the next one; ties go to the lower index (a stable descending sort).
The conic program's Parameter is 1/α, which keeps it DPP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dro._validation import check_open_unit
from dro.errors import SolverError
from dro.sets._xp import Ops
from dro.sets.base import CvxpyPiece, as_losses
from dro.sets.reweighting import ReweightingSet

__all__ = ["CVAR", "CVaR"]


class CVaR(ReweightingSet):
    """CVaR at level α ∈ (0, 1] (``alpha``); α = 1 is the mean, α ≤ 1/n the largest loss."""

    name = "cvar"
    size_name = "alpha"
    smooth = False  # piecewise linear in the losses: q* jumps where losses cross

    def check_size(self, value: object) -> float:
        return check_open_unit("alpha", value)

    def _solve(self, ops: Ops, v: Any, size: float) -> tuple[Any, Any]:
        xp, n = ops.xp, v.shape[-1]
        cap = 1.0 / (size * n)
        k = min(int(size * n + 1e-12), n)
        rank = ops.arange_like(v, 0, n)
        rest = xp.where(rank == k, max(0.0, 1.0 - k * cap), xp.zeros_like(rank))
        by_rank = xp.where(rank < k, cap, rest)  # float64 throughout, as v
        order = ops.argsort_desc(v)
        q = ops.put(v, order, by_rank)
        j = min(k, n - 1)  # the value at risk: the loss with the leftover mass
        var = ops.take(v, order[..., j : j + 1])[..., 0]
        return q / xp.sum(q, axis=-1, keepdims=True), var

    def dual_value(self, losses: np.ndarray, size: float, dual: float) -> float:
        """η + (1/α)·mean((ℓ − η)₊): an upper bound for every η."""
        return float(dual + np.maximum(as_losses(losses) - dual, 0.0).mean() / size)

    def cvxpy_piece(self, ell: object, n: int) -> CvxpyPiece:
        import cvxpy as cp

        eta = cp.Variable()
        inv_alpha = cp.Parameter(nonneg=True)
        excess = cp.Variable(n, nonneg=True)
        epigraph = ell - eta <= excess  # its dual variable is q
        objective = eta + inv_alpha * cp.sum(excess) / n
        return CvxpyPiece(objective, [epigraph], epigraph, inv_alpha, lambda a: 1.0 / a)

    def primal_cvxpy(self, losses: np.ndarray, size: float, solver: str = "CLARABEL") -> float:
        import cvxpy as cp

        v = as_losses(losses)
        n = v.size
        q = cp.Variable(n, nonneg=True)
        prob = cp.Problem(cp.Maximize(q @ v), [cp.sum(q) == 1, q <= 1.0 / (float(size) * n)])
        prob.solve(solver=solver)
        if prob.status != cp.OPTIMAL:
            raise SolverError(f"CVaR primal: {solver} returned status {prob.status!r}")
        return float(prob.value)

    def clip(self, size: float, n: int) -> float:
        return max(size, 1.0 / n)  # CVaR_α for α ≤ 1/n is the largest loss, as at α = 1/n

    def shrink(self, q: np.ndarray, size: float) -> np.ndarray:
        return np.minimum(q, 1.0 / (size * q.size))  # the mass left over only adds loss


CVAR = CVaR()
