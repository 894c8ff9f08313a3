"""CVaR DRO for linear models: min_{θ,η} η + (1/α)·mean((ℓ − η)₊) (Rockafellar & Uryasev).

Equal to the worst case over reweightings q with q_i ≤ 1/(α n): the mean of the worst α
fraction of the losses. The Parameter is 1/α so the problem stays DPP.
"""

from __future__ import annotations

import numpy as np

from dro.convex.losses import LossSpec, cvxpy_losses, loss_and_derivative
from dro.convex.program import LinearDROProgram, linear_scores
from dro.convex.worst_case import cvar_worst_case

__all__ = ["cvar_objective", "cvar_program"]


def cvar_program(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, fit_intercept: bool
) -> LinearDROProgram:
    """Build the DPP cvxpy problem; its Parameter is 1/α."""
    import cvxpy as cp

    n = X.shape[0]
    w, b, u = linear_scores(X, fit_intercept)
    eta = cp.Variable()
    inv_alpha = cp.Parameter(nonneg=True)
    excess = cp.Variable(n, nonneg=True)
    epigraph = cvxpy_losses(spec, u, y) - eta <= excess  # its dual variable is q
    prob = cp.Problem(cp.Minimize(eta + inv_alpha * cp.sum(excess) / n), [epigraph])
    return LinearDROProgram(
        prob, inv_alpha, w, b, to_parameter=lambda a: 1.0 / a, weight_constraint=epigraph
    )


def cvar_objective(
    X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, spec: LossSpec, *,
    alpha: float,
) -> tuple[float, np.ndarray]:
    """Exact CVaR_α of the model's losses, with the worst-case weights."""
    losses, _ = loss_and_derivative(spec, X @ coef + intercept, y)
    return cvar_worst_case(losses, alpha)
