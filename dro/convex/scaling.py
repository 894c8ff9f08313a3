"""Internal standardization: the solvers see well-scaled features, the user gets their units.

Column j is centred (when there is an intercept) and divided by its spread σ_j, so a solver
sees the same numbers whether the user measured in metres or nanometres. It is a change of
variables, not of problem: θ = θ̃/σ and b = b̃ − θᵀμ give the same scores, the same losses
and so the same χ² and CVaR objectives.

The Wasserstein ball is measured in feature units. With s the geometric mean of the σ_j and
w = s/σ, the cost ‖x − x′‖ equals s·‖(x̃ − x̃′)/w‖, so the standardized problem has radius
ε/s, label cost κ/s and dual norm ‖w ⊙ θ̃‖_* (w = 1 when all columns share one spread):
exactly the user's problem, with the radius expressed in standardized units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Standardizer", "standardizer"]


@dataclass(frozen=True)
class Standardizer:
    """x̃ = (x − mean)/scale; ``unit`` is s, the common feature unit of the Wasserstein ball."""

    mean: np.ndarray
    scale: np.ndarray
    unit: float

    @property
    def weights(self) -> np.ndarray:
        """w = s/σ: the standardized dual norm is ‖w ⊙ θ̃‖_* = s·‖θ‖_*."""
        return self.unit / self.scale

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def to_user(self, coef: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
        """(θ̃, b̃) on standardized features ↦ (θ, b) on the user's features."""
        theta = np.asarray(coef, dtype=float) / self.scale
        return theta, float(intercept - theta @ self.mean)


def standardizer(X: np.ndarray, fit_intercept: bool, max_weight: float = math.inf
                 ) -> Standardizer:
    """Spread per column: std with an intercept (centring is then free), else RMS.

    ``max_weight`` bounds w = s/σ to [1/max_weight, max_weight]. A Wasserstein penalty with
    weights far apart is as ill-conditioned for L-BFGS as raw features of very different
    spread; bounding them splits the difference (the problem stays exactly the same).

    A column with no spread gets scale s (weight 1): it carries no information, and any
    other scale would only put an arbitrary weight in the norm. With an intercept it is
    centred on its own value, so it becomes exactly zero.
    """
    d = X.shape[1]
    mean = X.mean(axis=0) if fit_intercept else np.zeros(d)
    spread = np.sqrt(np.mean((X - mean) ** 2, axis=0)) if X.shape[0] else np.zeros(d)
    if fit_intercept and X.shape[0]:
        # The rounding in a constant column's mean must not look like spread.
        constant = np.ptp(X, axis=0) == 0
        spread = np.where(constant, 0.0, spread)
        mean = np.where(constant, X[0], mean)
    ok = (spread > 0) & np.isfinite(spread)
    unit = float(np.exp(np.mean(np.log(spread[ok])))) if ok.any() else 1.0
    scale = np.clip(np.where(ok, spread, unit), unit / max_weight, unit * max_weight)
    return Standardizer(mean=mean, scale=scale, unit=unit)
