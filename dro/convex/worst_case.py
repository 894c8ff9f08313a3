"""Exact worst-case reweightings of a fixed loss vector (numpy), and cvxpy primals to check them.

For losses ℓ ∈ ℝⁿ these compute sup_q qᵀℓ over
  χ²:   q in the simplex with (1/n)Σ(n·q_i − 1)² ≤ ρ      (no ½ factor)
  CVaR: q in the simplex with q_i ≤ 1/(α·n)
The math is the sets' own (dro/sets/chi2.py, dro/sets/cvar.py; KL: dro/sets/kl.py); these
names stay importable from here.
"""

from __future__ import annotations

import numpy as np

from dro.sets.chi2 import CHI2
from dro.sets.cvar import CVAR

__all__ = [
    "chi2_dual_value",
    "chi2_primal_cvxpy",
    "chi2_worst_case",
    "cvar_primal_cvxpy",
    "cvar_worst_case",
]


def chi2_dual_value(losses: np.ndarray, radius: float, eta: float) -> float:
    """The dual function η + sqrt(1+ρ)·sqrt(mean((ℓ−η)₊²)): an upper bound for every η."""
    return CHI2.dual_value(losses, radius, eta)


def chi2_worst_case(losses: np.ndarray, radius: float) -> tuple[float, np.ndarray]:
    """Return (sup_q qᵀℓ, q) over the χ² ball of radius ρ around the uniform weights."""
    return CHI2.worst_case(losses, radius)


def cvar_worst_case(losses: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Return (CVaR_α, q): the mean of the worst α-fraction of the losses, with its weights."""
    return CVAR.worst_case(losses, alpha)


def chi2_primal_cvxpy(losses: np.ndarray, radius: float, solver: str = "CLARABEL") -> float:
    """sup_q qᵀℓ over the χ² ball by a generic conic solver (a brute-force check)."""
    return CHI2.primal_cvxpy(losses, radius, solver)


def cvar_primal_cvxpy(losses: np.ndarray, alpha: float, solver: str = "CLARABEL") -> float:
    """sup_q qᵀℓ with q in the simplex and q_i ≤ 1/(α n), by a generic LP solver."""
    return CVAR.primal_cvxpy(losses, alpha, solver)
