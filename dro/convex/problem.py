"""A linear DRO problem as posed (data, loss, ball), and its exact objective at any model.

``robust_objective`` is the judge of every answer: the worst case computed in numpy (closed
forms and sorts), never a solver's own report. ``LinearDROProblem.standardized`` poses the
same problem on standardized features (dro.convex.scaling), which is what the solvers see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dro.convex.chi2 import chi2_objective
from dro.convex.cvar import cvar_objective
from dro.convex.losses import LossSpec
from dro.convex.scaling import Standardizer
from dro.convex.wasserstein import wasserstein_objective

__all__ = ["LinearDROProblem", "robust_objective"]


def robust_objective(
    formulation: str, X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float,
    spec: LossSpec, *, radius: float, dual_p: float = 2.0, kappa: float = math.inf,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray | None]:
    """Exact worst-case loss of a given linear model, with the worst-case weights if any."""
    if formulation == "wasserstein":
        v = wasserstein_objective(
            X, y, coef, intercept, spec, radius=radius, dual_p=dual_p, kappa=kappa,
            weights=weights,
        )
        return v, None
    if formulation == "chi2":
        return chi2_objective(X, y, coef, intercept, spec, radius=radius)
    return cvar_objective(X, y, coef, intercept, spec, alpha=radius)


@dataclass(frozen=True)
class LinearDROProblem:
    """min over (θ, b) of the worst-case loss; ``radius`` is α for CVaR.

    ``weights`` w make the Wasserstein dual norm ‖w ⊙ θ‖_* (only on standardized features).
    """

    formulation: str
    X: np.ndarray
    y: np.ndarray
    spec: LossSpec
    radius: float
    dual_p: float = 2.0
    kappa: float = math.inf
    fit_intercept: bool = True
    weights: np.ndarray | None = None

    def objective(self, coef: np.ndarray, intercept: float) -> tuple[float, np.ndarray | None]:
        return robust_objective(
            self.formulation, self.X, self.y, coef, intercept, self.spec, radius=self.radius,
            dual_p=self.dual_p, kappa=self.kappa, weights=self.weights,
        )

    def standardized(self, std: Standardizer) -> LinearDROProblem:
        """The same problem on std's features, with every number in its best-scaled form."""
        X = std.transform(self.X)
        n = X.shape[0]
        if self.formulation == "wasserstein":
            return replace(self, X=X, radius=self.radius / std.unit,
                           kappa=self.kappa / std.unit, weights=std.weights)
        if self.formulation == "chi2":
            # ρ ≥ n − 1 already admits every reweighting (a point mass has χ² = n − 1), and
            # a huge ρ would only put a huge coefficient into the conic program.
            return replace(self, X=X, radius=min(self.radius, n - 1.0))
        # CVaR_α for α ≤ 1/n is the largest loss, exactly as at α = 1/n.
        return replace(self, X=X, radius=max(self.radius, 1.0 / n))
