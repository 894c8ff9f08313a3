"""Sets of reweightings of the sample (χ², CVaR, KL): one algorithm per set, every form from it.

Each such set supplies its worst case once (``_solve``: the weights q* and a dual variable for
losses of shape (..., n)), written against an array namespace (dro/sets/_xp.py) so that the
same lines run as numpy or as batched torch, plus the closed form of its dual function, its
cvxpy piece and its brute-force cvxpy primal. From these this base class derives

* ``weights`` / ``risk``: the batched torch forms. q* is computed without a graph, so
  ``risk = Σ q*_i ℓ_i`` has the exact worst-case value and, by Danskin's theorem (the
  envelope theorem for the dual variable), the gradient Σ q*_i ∇ℓ_i wherever q* is unique;
* ``worst_case``: the exact numpy worst case (the same algorithm run by numpy), whose primal
  value qᵀℓ must match the dual function at the returned dual variable;
* the linear-model methods (cvxpy program, exact objective, lower-bound weights, L-BFGS).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dro.errors import SolverError
from dro.sets._xp import NUMPY, TORCH, Ops
from dro.sets.base import CvxpyPiece, LinearModelSet, as_losses, check_torch_losses

if TYPE_CHECKING:
    from torch import Tensor

    from dro.convex.losses import LossSpec
    from dro.convex.problem import LinearDROProblem
    from dro.convex.program import LinearDROProgram
    from dro.convex.scaling import Standardizer

__all__ = ["ReweightingSet"]

_DUAL_RTOL = 1e-7  # primal qᵀℓ vs the dual function: the numpy worst case's self-check


class ReweightingSet(LinearModelSet):
    """A convex set of weights q on the n samples around the uniform ones."""

    # The worst case is differentiable in the losses (q* unique for generic losses), so the
    # Danskin gradient serves L-BFGS and the torch path. CVaR's is piecewise linear.
    smooth: ClassVar[bool] = True

    # --- what a set supplies -------------------------------------------------------------
    def _solve(self, ops: Ops, v: Any, size: float) -> tuple[Any, Any]:
        """(q*, dual) for float64 losses v of shape (..., n) (numpy or torch, no graph, as
        ``ops`` says); dual has shape (...) and is nan where none is needed (uniform q)."""
        raise NotImplementedError

    def dual_value(self, losses: np.ndarray, size: float, dual: float) -> float:
        """The dual function at ``dual``: an upper bound on the worst case, tight at the optimum."""
        raise NotImplementedError

    def cvxpy_piece(self, ell: object, n: int) -> CvxpyPiece:
        """The set's part of the conic program over the cvxpy loss vector ``ell``."""
        raise NotImplementedError

    def primal_cvxpy(self, losses: np.ndarray, size: float, solver: str = "CLARABEL") -> float:
        """sup_q qᵀℓ over the set by a generic conic solver (a brute-force check)."""
        raise NotImplementedError

    def clip(self, size: float, n: int) -> float:
        """The same set for n samples with its size in the best-scaled range."""
        return size

    def shrink(self, q: np.ndarray, size: float) -> np.ndarray:
        """Weights in the set, no larger than what gives a lower bound (q ≥ 0, Σ q > 0)."""
        raise NotImplementedError

    # --- torch and numpy forms -----------------------------------------------------------
    def weights(self, losses: Tensor, size: float) -> Tensor:
        """Worst-case q* for losses of shape (..., n), each row its own problem (no graph)."""
        import torch

        losses = check_torch_losses(losses)
        s = self.check_size(size)
        with torch.no_grad():
            q, _ = self._solve(TORCH, losses.detach().to(torch.float64), s)
        return q.to(losses.dtype)

    def risk(self, losses: Tensor, size: float) -> Tensor:
        """sup_q Σ q_i ℓ_i per row, shape (...): exact value, Danskin gradient Σ q*_i ∇ℓ_i."""
        return (self.weights(losses, size) * losses).sum(-1)

    def worst_case(self, losses: np.ndarray, size: float) -> tuple[float, np.ndarray]:
        """Return (sup_q qᵀℓ, q*) for a 1-D array of losses, checked against the dual."""
        v = as_losses(losses)
        s = self.check_size(size)
        q, dual_arr = self._solve(NUMPY, v, s)
        value = float(q @ v)
        dual = float(dual_arr)
        if not math.isnan(dual):
            bound = self.dual_value(v, s, dual)
            if abs(value - bound) > _DUAL_RTOL * (1.0 + abs(bound)):
                raise SolverError(
                    f"{self.name} worst case: primal {value} and dual {bound} disagree"
                )
        return value, q

    # --- linear models -------------------------------------------------------------------
    def program(self, problem: LinearDROProblem) -> LinearDROProgram:
        import cvxpy as cp

        from dro.convex.losses import cvxpy_losses
        from dro.convex.program import LinearDROProgram, linear_scores

        w, b, u = linear_scores(problem.X, problem.fit_intercept)
        piece = self.cvxpy_piece(cvxpy_losses(problem.spec, u, problem.y), problem.X.shape[0])
        prob = cp.Problem(cp.Minimize(piece.objective), piece.constraints)
        to_parameter = piece.to_parameter or (lambda r: r)
        return LinearDROProgram(prob, piece.parameter, w, b, to_parameter=to_parameter,
                                weight_constraint=piece.weight_constraint)

    def objective(self, problem: LinearDROProblem, coef: np.ndarray, intercept: float
                  ) -> tuple[float, np.ndarray]:
        from dro.convex.losses import loss_and_derivative

        losses, _ = loss_and_derivative(problem.spec, problem.X @ coef + intercept, problem.y)
        return self.worst_case(losses, problem.radius)

    def standardized(self, problem: LinearDROProblem, std: Standardizer) -> LinearDROProblem:
        from dataclasses import replace

        X = std.transform(problem.X)  # the objective depends on the losses only
        return replace(problem, X=X, radius=self.clip(problem.radius, X.shape[0]))

    def bound_weights(self, problem: LinearDROProblem, q: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if q.size != problem.X.shape[0]:
            return None
        return problem.X, problem.y, self.shrink(q, problem.radius)

    def lbfgs_supported(self, spec: LossSpec, dual_p: float, kappa: float) -> bool:
        return self.smooth and spec.smooth

    def lbfgs(self, problem: LinearDROProblem) -> tuple[np.ndarray, float]:
        from dro.convex.structured import lbfgs_reweighted

        def worst_case(losses: np.ndarray) -> tuple[float, np.ndarray]:
            return self.worst_case(losses, problem.radius)

        return lbfgs_reweighted(problem.X, problem.y, problem.spec, worst_case,
                                fit_intercept=problem.fit_intercept, what=self.name)

    def torch_unsupported(self, spec: LossSpec, dual_p: float, kappa: float) -> str | None:
        if self.smooth:
            return None
        return (f"solver='torch' needs a set whose worst case is differentiable in the losses, "
                f"got formulation={self.name!r}")

    def torch_objective(self, losses: Tensor, coef: Tensor, *, spec: LossSpec, radius: float,
                        weights: Tensor) -> Tensor:
        return self.risk(losses, radius)
