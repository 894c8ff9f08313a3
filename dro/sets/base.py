"""What an ambiguity set is to the rest of ``dro``: the interfaces the solvers and risks call.

:class:`AmbiguitySet` is a name and the hyperparameter that sizes the set. A
:class:`LinearModelSet` also knows how to fit linear models (``dro.convex``): its cvxpy program,
its exact objective at a model, its best-scaled form, its certificates. The solvers, the
estimators and the torch linear path call these methods instead of branching on a name, so
a set's math lives in its own file (``dro/sets/<name>.py``). Sets are stateless singletons;
cvxpy, scipy and torch are imported inside the methods, so ``import dro.sets`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dro.errors import InvalidParameterError

if TYPE_CHECKING:
    from torch import Tensor

    from dro.convex.losses import LossSpec
    from dro.convex.problem import LinearDROProblem
    from dro.convex.program import LinearDROProgram
    from dro.convex.scaling import Standardizer

__all__ = ["AmbiguitySet", "CvxpyPiece", "LinearModelSet", "as_losses", "check_torch_losses"]


@dataclass(frozen=True)
class CvxpyPiece:
    """A set's part of a conic program over a vector of convex losses ℓ(θ).

    Minimising ``objective`` subject to ``constraints`` over the piece's own variables gives
    the worst case sup_Q E_Q ℓ; ``parameter`` carries the set's size through ``to_parameter``
    (so a sweep recompiles nothing), and the duals of ``weight_constraint`` (ℓ ≤ s) are the
    worst-case weights.
    """

    objective: Any
    constraints: list
    weight_constraint: Any
    parameter: Any
    to_parameter: Any = None


def as_losses(losses: object) -> np.ndarray:
    """A non-empty, finite, 1-D float array of per-sample losses, or InvalidParameterError."""
    v = np.asarray(losses, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise InvalidParameterError(f"losses must be a non-empty 1-D array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InvalidParameterError("losses must be finite")
    return v


def check_torch_losses(losses: object) -> Tensor:
    """A floating tensor of shape (..., n), n ≥ 1: leading dims are independent problems."""
    import torch

    if not isinstance(losses, torch.Tensor) or losses.ndim == 0 or losses.shape[-1] == 0:
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise InvalidParameterError(
            f"losses must be a tensor of per-sample losses of shape (..., n) with n ≥ 1 "
            f"(reduction='none'), got {shape}"
        )
    if not losses.is_floating_point():
        raise InvalidParameterError(f"losses must be floating point, got {losses.dtype}")
    return losses


class AmbiguitySet:
    """A named family of distributions around the empirical one, sized by ``size_name``."""

    name: ClassVar[str] = ""
    size_name: ClassVar[str] = "radius"

    def check_size(self, value: object) -> float:
        """The set's size as a float, or InvalidParameterError naming ``size_name``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<ambiguity set {self.name!r}>"


class LinearModelSet(AmbiguitySet):
    """A set the linear-model solvers (``dro.convex.solve``) can fit.

    ``problem`` arguments are :class:`dro.convex.problem.LinearDROProblem`; their ``radius``
    holds the set's size (α for CVaR).
    """

    max_weight: ClassVar[float] = float("inf")  # bound on the standardization norm weights

    def settings(self, params: Mapping[str, object]) -> dict:
        """Validated solver keyword arguments from an estimator's hyperparameters."""
        return {"radius": self.check_size(params[self.size_name])}

    def program(self, problem: LinearDROProblem) -> LinearDROProgram:
        """The DPP cvxpy program (its Parameter carries the size)."""
        raise NotImplementedError

    def objective(self, problem: LinearDROProblem, coef: np.ndarray, intercept: float
                  ) -> tuple[float, np.ndarray | None]:
        """Exact worst-case loss of the model (θ, b), with the worst-case weights if any."""
        raise NotImplementedError

    def standardized(self, problem: LinearDROProblem, std: Standardizer) -> LinearDROProblem:
        """The same problem on std's features, every number in its best-scaled form."""
        raise NotImplementedError

    def zero_radius_bound(self, problem: LinearDROProblem, center: np.ndarray
                          ) -> tuple[float, str] | None:
        """A size from which θ = 0 is provably optimal (with how it was computed), or None."""
        return None

    def bound_weights(self, problem: LinearDROProblem, q: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(X, y, q′) with min_θ Σ q′_i ℓ_i(θ) ≤ the robust optimum (weak duality), or None.

        ``q`` (non-negative, positive sum) are candidate worst-case weights, e.g. a solver's
        duals; the set moves them into the set (losses are ≥ 0, so smaller weights only help).
        """
        return None

    def lbfgs_supported(self, spec: LossSpec, dual_p: float, kappa: float) -> bool:
        """Whether the structured L-BFGS solver applies to this combination."""
        return False

    def lbfgs(self, problem: LinearDROProblem) -> tuple[np.ndarray, float]:
        """Solve by structured L-BFGS; returns (θ, b)."""
        raise NotImplementedError

    def torch_unsupported(self, spec: LossSpec, dual_p: float, kappa: float) -> str | None:
        """Why solver='torch' cannot fit this combination, or None when it can."""
        return f"solver='torch' does not support formulation={self.name!r}"

    def torch_objective(self, losses: Tensor, coef: Tensor, *, spec: LossSpec, radius: float,
                        weights: Tensor) -> Tensor:
        """The robust objective of the linear model in torch, differentiable in ``coef``."""
        raise NotImplementedError
