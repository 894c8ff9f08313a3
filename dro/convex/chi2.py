"""χ²-divergence DRO for linear models, as a bounded DPP conic program.

sup_{Q: E_P̂[(dQ/dP̂ − 1)²] ≤ ρ} E_Q ℓ  =  min_{s ≥ ℓ, η} mean(s) + sqrt(ρ/n)·‖s − η‖₂,
the variance form of the dual min_η η + sqrt(1+ρ)·sqrt(mean((ℓ−η)₊²)). Unlike the η form
it is attained at ρ = 0 (s = ℓ) and keeps the solver well scaled, which matters for SCS.
"""

from __future__ import annotations

import math

import numpy as np

from dro.convex.losses import LossSpec, cvxpy_losses, loss_and_derivative
from dro.convex.program import LinearDROProgram, linear_scores
from dro.convex.worst_case import chi2_worst_case

__all__ = ["chi2_objective", "chi2_program"]


def chi2_program(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, fit_intercept: bool
) -> LinearDROProgram:
    """Build the DPP cvxpy problem; its Parameter is sqrt(ρ)."""
    import cvxpy as cp

    n = X.shape[0]
    w, b, u = linear_scores(X, fit_intercept)
    s = cp.Variable(n)
    eta = cp.Variable()  # min_η ‖s − η‖ is attained at mean(s); a free η keeps the cone sparse
    root_rho = cp.Parameter(nonneg=True)
    objective = cp.sum(s) / n + root_rho / math.sqrt(n) * cp.norm(s - eta, 2)
    epigraph = cvxpy_losses(spec, u, y) <= s  # its dual variable is the worst-case q
    prob = cp.Problem(cp.Minimize(objective), [epigraph])
    return LinearDROProgram(
        prob, root_rho, w, b, to_parameter=math.sqrt, weight_constraint=epigraph
    )


def chi2_objective(
    X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, spec: LossSpec, *,
    radius: float,
) -> tuple[float, np.ndarray]:
    """Exact worst-case loss of (θ, b) over the χ² ball, with the worst-case weights."""
    losses, _ = loss_and_derivative(spec, X @ coef + intercept, y)
    return chi2_worst_case(losses, radius)
