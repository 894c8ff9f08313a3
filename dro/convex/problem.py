"""A linear DRO problem as posed (data, loss, ball), and its exact objective at any model.

``robust_objective`` is the judge of every answer: the worst case computed in numpy (closed
forms, sorts, one-dimensional duals), never a solver's own report. ``LinearDROProblem.
standardized`` poses the same problem on standardized features (dro.convex.scaling), which is
what the solvers see. Both ask the problem's ambiguity set (dro.sets) for its own math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dro.convex.losses import LossSpec
from dro.convex.scaling import Standardizer
from dro.sets import LinearModelSet, get_set

__all__ = ["LinearDROProblem", "robust_objective"]


def robust_objective(
    formulation: str, X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float,
    spec: LossSpec, *, radius: float, dual_p: float = 2.0, kappa: float = math.inf,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray | None]:
    """Exact worst-case loss of a given linear model, with the worst-case weights if any."""
    problem = LinearDROProblem(formulation, X, y, spec, radius, dual_p, kappa, weights=weights)
    return problem.objective(coef, intercept)


@dataclass(frozen=True)
class LinearDROProblem:
    """min over (θ, b) of the worst-case loss; ``radius`` is the set's size (α for CVaR).

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

    @property
    def ambiguity(self) -> LinearModelSet:
        """The problem's ambiguity set, from the registry."""
        return get_set(self.formulation, LinearModelSet, what="formulation")  # type: ignore[return-value]

    def objective(self, coef: np.ndarray, intercept: float) -> tuple[float, np.ndarray | None]:
        return self.ambiguity.objective(self, coef, intercept)

    def standardized(self, std: Standardizer) -> LinearDROProblem:
        """The same problem on std's features, with every number in its best-scaled form."""
        return self.ambiguity.standardized(self, std)
