"""KL ball: weights q in the simplex with KL(q ‖ uniform) = Σ q_i log(n·q_i) ≤ ρ.

Hu & Hong (2013): sup_{Q: KL(Q‖P̂) ≤ ρ} E_Q ℓ = inf_{α>0} α·log E_P̂[exp(ℓ/α)] + αρ, attained
by the exponential tilt q_α ∝ exp(ℓ/α). The dual's derivative in α is ρ − KL(q_α ‖ P̂), and
KL(q_α) falls from log(n/k) (α → 0, q uniform on the k largest losses) to 0 (α → ∞). So:
* ρ = 0 or constant losses: the uniform weights (value: the mean);
* ρ ≥ log(n/k): α* = 0, the value is the largest loss, q uniform on its k ties;
* otherwise α* solves KL(q_α) = ρ, found for every row at once (no graph) by Newton's method
  on log α, kept inside a bracket by bisection; the bracket starts from Hoeffding's bound
  KL(q_α) ≤ D²/(8α²) (D: the spread of the losses).
Gradients: the torch risk is Σ q*_i ℓ_i with q* computed without a graph. By the envelope
theorem the dual's derivative in ℓ_i at α* is q*_i (its derivative in α vanishes there), so
this is the exact gradient, and nothing is differentiated through the search for α*.
The conic program is the exponential-cone form of the dual, min η + αρ over s ≥ ℓ with
mean exp((s − η)/α) ≤ 1, scaled by sqrt(ρ) (see ``cvxpy_piece``). Clarabel resolves it down
to ρ ≈ 1e-6; below, a fit with a non-smooth loss (no L-BFGS path) may end in SolverError,
never in a wrong value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from dro._validation import check_nonneg
from dro.errors import SolverError
from dro.sets._xp import Ops
from dro.sets.base import CvxpyPiece, as_losses
from dro.sets.reweighting import ReweightingSet

if TYPE_CHECKING:
    from dro.convex.problem import LinearDROProblem
    from dro.convex.scaling import Standardizer

__all__ = ["KL", "KLBall", "kl_divergence"]

_BRACKET = 80.0 * math.log(2.0)  # log α is searched in [hi − 80 log 2, hi]
_MAX_STEPS = 200  # safeguarded Newton: ~10 steps, at worst bisection to the last bit
_TOL = 1e-14  # stop once no row's log α moves by more than this (relative)


def kl_divergence(q: np.ndarray) -> float:
    """KL(q ‖ uniform) = Σ q_i log(n q_i), with 0·log 0 = 0."""
    q = np.asarray(q, dtype=float)
    pos = q > 0
    return float(np.sum(q[pos] * np.log(q.size * q[pos])))


def _tilt(ops: Ops, s: Any, alpha: Any) -> tuple[Any, Any, Any]:
    """(q_α, KL(q_α ‖ uniform), Var_q(s/α)) for shifted losses s ≤ 0, α > 0 of shape (..., 1).

    For large α both terms of KL = E_q z − log mean exp(z) are small and log(Σ e^z) − log n
    would cancel to noise, so log mean exp(z) is log1p(mean(expm1(z))) there; for small α,
    where mean exp(z) is far below 1, the log-sum-exp form keeps its digits instead.
    """
    xp, n = ops.xp, s.shape[-1]
    z = s / alpha  # ≤ 0 with max 0: no overflow, and mean exp(z) ≥ 1/n
    m1 = xp.mean(xp.expm1(z), axis=-1, keepdims=True)
    log_mean = xp.where(m1 > -0.5, xp.log1p(m1), ops.logsumexp(z) - math.log(n))
    q = xp.exp(z - log_mean) / n
    mean = xp.sum(q * z, axis=-1, keepdims=True)
    var = xp.sum(q * (z - mean) ** 2, axis=-1, keepdims=True)
    return q, mean - log_mean, var


class KLBall(ReweightingSet):
    """The KL ball of radius ρ (``radius``, in nats) around the uniform weights."""

    name = "kl"
    size_name = "radius"

    def check_size(self, value: object) -> float:
        return check_nonneg("radius", value)

    def _solve(self, ops: Ops, v: Any, size: float) -> tuple[Any, Any]:
        xp, rho, n = ops.xp, size, v.shape[-1]
        top = xp.amax(v, axis=-1, keepdims=True)
        s = v - top
        spread = -xp.amin(s, axis=-1, keepdims=True)
        ties = ops.as_dtype(xp.sum(s == 0, axis=-1, keepdims=True), v)
        flat = (spread == 0) | (rho == 0.0)
        corner = ~flat & (rho >= xp.log(n / ties))
        # Safeguarded Newton on t = log α for h(t) = KL(q_α) − ρ, which falls with t at the
        # rate dKL/dt = −Var_q(ℓ/α). hi starts where Hoeffding puts KL(q_α) ≤ ρ, lo far below.
        r8 = math.log(8.0 * max(rho, 1e-300))
        hi = xp.log(ops.clamp_min(spread, 1e-300)) - 0.5 * r8
        lo = hi - _BRACKET
        # Start at the small-ρ answer α ≈ sqrt(Var ℓ / 2ρ) (KL ≈ Var/(2α²)); it is ≤ hi.
        var0 = xp.mean(s * s, axis=-1, keepdims=True) - xp.mean(s, axis=-1, keepdims=True) ** 2
        t = xp.clip(0.5 * (xp.log(ops.clamp_min(var0, 1e-300)) + math.log(4.0) - r8), lo, hi)
        done = flat | corner  # a row stops at its own last step: it ends as if solved alone
        for _ in range(_MAX_STEPS):
            _, kl, var = _tilt(ops, s, xp.exp(t))
            h = kl - rho
            hi = xp.where(h <= 0, t, hi)
            lo = xp.where(h > 0, t, lo)
            newton = t + h / ops.clamp_min(var, 1e-300)
            inside = xp.isfinite(newton) & (newton >= lo) & (newton <= hi)
            nxt = xp.where(inside, newton, 0.5 * (lo + hi))
            still = xp.abs(nxt - t) > _TOL * ops.clamp_min(xp.abs(t), 1.0)
            t = xp.where(done, t, nxt)
            done = done | ~still
            if bool(done.all()):
                break
        alpha = xp.exp(t)
        q, _, _ = _tilt(ops, s, alpha)
        q = q / xp.sum(q, axis=-1, keepdims=True)
        q = xp.where(corner, ops.as_dtype(s == 0, v) / ties, q)
        q = xp.where(flat, 1.0 / n, q)
        dual = xp.where(flat, math.nan, xp.where(corner, 0.0, alpha))
        return q, dual[..., 0]

    def dual_value(self, losses: np.ndarray, size: float, dual: float) -> float:
        """α·log mean exp(ℓ/α) + αρ (α = 0: the largest loss): an upper bound for every α."""
        v = as_losses(losses)
        top = float(v.max())
        if dual == 0.0:
            return top
        z = (v - top) / dual
        zmax = float(z.max())
        log_mean = zmax + math.log(np.mean(np.exp(z - zmax)))
        return top + dual * (log_mean + size)

    def cvxpy_piece(self, ell: object, n: int) -> CvxpyPiece:
        """The dual min_{η, α ≥ 0} η + ρα s.t. mean_i exp((s_i − η)/α) ≤ 1, s ≥ ℓ, in
        variables scaled by r = sqrt(ρ) (the Parameter): a = rα, with (a/n)·e^{r(s_i − η)/a}
        ≤ u_i and Σ u ≤ a as n exponential cones. α* ≈ sqrt(Var ℓ / 2ρ) grows as ρ shrinks,
        while a* stays of the size of the losses' spread, and each u_i is O(a/n): the scaling
        with which Clarabel converged in our trials. Needs ρ > 0 (at 0 nothing bounds η;
        fit_linear_dro solves ρ = 0 as the χ² ball of radius 0, the same set)."""
        import cvxpy as cp

        s = cp.Variable(n)
        eta = cp.Variable()
        a = cp.Variable(nonneg=True)
        u = cp.Variable(n)
        root_rho = cp.Parameter(nonneg=True)
        epigraph = ell <= s  # its dual variable is the worst-case q
        cone = cp.constraints.ExpCone(root_rho * (s - eta) - math.log(n) * a, a * np.ones(n), u)
        return CvxpyPiece(eta + root_rho * a, [epigraph, cone, cp.sum(u) <= a], epigraph,
                          root_rho, math.sqrt)

    def primal_cvxpy(self, losses: np.ndarray, size: float, solver: str = "CLARABEL") -> float:
        import cvxpy as cp

        v = as_losses(losses)
        n = v.size
        q = cp.Variable(n, nonneg=True)
        cons = [cp.sum(q) == 1, cp.sum(cp.rel_entr(q, np.full(n, 1.0 / n))) <= float(size)]
        prob = cp.Problem(cp.Maximize(q @ v), cons)
        prob.solve(solver=solver)
        if prob.status != cp.OPTIMAL:
            raise SolverError(f"KL primal: {solver} returned status {prob.status!r}")
        return float(prob.value)

    def clip(self, size: float, n: int) -> float:
        # KL(q ‖ uniform) ≤ log n for every q: from there the ball is the whole simplex.
        return min(size, math.log(n))

    def standardized(self, problem: LinearDROProblem, std: Standardizer) -> LinearDROProblem:
        from dataclasses import replace

        inner = super().standardized(problem, std)
        n = inner.X.shape[0]
        if 0.0 < inner.radius < math.log(n):
            return inner
        # ρ = 0 is the ball {P̂} and ρ ≥ log n the whole simplex; there the conic program's
        # α runs off to ∞ or to 0, and Clarabel stops inaccurate or fails. The χ² ball of
        # radius 0, resp. n − 1, is the same set, and its program is attained: solve that.
        return replace(inner, formulation="chi2", radius=0.0 if inner.radius == 0 else n - 1.0)

    def shrink(self, q: np.ndarray, size: float) -> np.ndarray:
        n = q.size
        q = q / q.sum()
        if kl_divergence(q) <= size:
            return q
        # KL(t·q + (1−t)/n) is convex in t and 0 at t = 0: keep the feasible end.
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if kl_divergence(mid * q + (1 - mid) / n) <= size else (lo, mid)
        return lo * q + (1.0 - lo) / n


KL = KLBall()
