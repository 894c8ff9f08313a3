"""χ²-divergence DRO for linear models: the χ² set (dro.sets.chi2) on a linear model.

sup_{Q: E_P̂[(dQ/dP̂ − 1)²] ≤ ρ} E_Q ℓ  =  min_{s ≥ ℓ, η} mean(s) + sqrt(ρ/n)·‖s − η‖₂
(the variance form of the dual; see dro/sets/chi2.py).
"""

from __future__ import annotations

import numpy as np

from dro.convex.losses import LossSpec
from dro.convex.problem import LinearDROProblem
from dro.convex.program import LinearDROProgram
from dro.sets.chi2 import CHI2

__all__ = ["chi2_objective", "chi2_program"]


def chi2_program(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, fit_intercept: bool
) -> LinearDROProgram:
    """Build the DPP cvxpy problem; its Parameter is sqrt(ρ)."""
    return CHI2.program(LinearDROProblem("chi2", X, y, spec, 0.0, fit_intercept=fit_intercept))


def chi2_objective(
    X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, spec: LossSpec, *,
    radius: float,
) -> tuple[float, np.ndarray]:
    """Exact worst-case loss of (θ, b) over the χ² ball, with the worst-case weights."""
    return CHI2.objective(LinearDROProblem("chi2", X, y, spec, radius), coef, intercept)
