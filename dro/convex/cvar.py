"""CVaR DRO for linear models: min_{θ,η} η + (1/α)·mean((ℓ − η)₊) (Rockafellar & Uryasev),
the CVaR set (dro.sets.cvar) on a linear model. The Parameter is 1/α so the problem is DPP.
"""

from __future__ import annotations

import numpy as np

from dro.convex.losses import LossSpec
from dro.convex.problem import LinearDROProblem
from dro.convex.program import LinearDROProgram
from dro.sets.cvar import CVAR

__all__ = ["cvar_objective", "cvar_program"]


def cvar_program(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, fit_intercept: bool
) -> LinearDROProgram:
    """Build the DPP cvxpy problem; its Parameter is 1/α."""
    return CVAR.program(LinearDROProblem("cvar", X, y, spec, 1.0, fit_intercept=fit_intercept))


def cvar_objective(
    X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, spec: LossSpec, *,
    alpha: float,
) -> tuple[float, np.ndarray]:
    """Exact CVaR_α of the model's losses, with the worst-case weights."""
    return CVAR.objective(LinearDROProblem("cvar", X, y, spec, alpha), coef, intercept)
