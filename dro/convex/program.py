"""A cvxpy problem over a linear model whose radius is a Parameter, solved with status checks.

Building the problem once and changing only the Parameter lets cvxpy reuse its compiled form,
so a sweep over many radii costs one canonicalisation (the problem must be DPP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dro.errors import DROError, SolverError

__all__ = [
    "DEFAULT_SOLVER",
    "LinearDROProgram",
    "ProgramResult",
    "installed_cvxpy_solvers",
    "linear_scores",
]

DEFAULT_SOLVER = "CLARABEL"


def installed_cvxpy_solvers() -> tuple[str, ...]:
    """Names cvxpy can dispatch to on this machine."""
    import cvxpy as cp

    return tuple(cp.installed_solvers())


def linear_scores(X: np.ndarray, fit_intercept: bool) -> tuple[object, object | None, object]:
    """The linear model's cvxpy variables and its scores: (w, b or None, X w + b)."""
    import cvxpy as cp

    w = cp.Variable(X.shape[1])
    b = cp.Variable() if fit_intercept else None
    return w, b, (X @ w + b if b is not None else X @ w)


@dataclass(frozen=True)
class ProgramResult:
    """Solution of one solve: coefficients, the problem's optimal value and the status."""

    coef: np.ndarray
    intercept: float
    value: float
    status: str
    solver: str
    dual_weights: np.ndarray | None = None  # the adversary's q from the solver's duals


@dataclass
class LinearDROProgram:
    """cvxpy problem + the Parameter that carries the radius (through ``to_parameter``)."""

    problem: object  # cvxpy.Problem
    parameter: object  # cvxpy.Parameter
    coef: object  # cvxpy.Variable
    intercept: object | None
    to_parameter: Callable[[float], float] = field(default=lambda r: r)
    to_objective: Callable[[float], float] = field(default=lambda v: v)
    # Constraint(s) ℓ ≤ s whose duals are the worst-case weights q (for Wasserstein with
    # finite κ two: kept labels, then flipped labels — q has 2n entries).
    weight_constraint: object | None = None

    def __post_init__(self) -> None:
        if not self.problem.is_dcp(dpp=True):  # type: ignore[attr-defined]
            raise DROError("internal: the DRO program is not DPP; radius sweeps would recompile")

    def solve(
        self, radius: float, solver: str = DEFAULT_SOLVER, *, allow_inaccurate: bool = False,
        **kwargs,
    ) -> ProgramResult:
        """Solve at ``radius``; raise SolverError unless the status is exactly optimal.

        ``allow_inaccurate`` lets 'optimal_inaccurate' through for a caller that certifies
        the answer itself (e.g. by a duality-gap or lower-bound check).
        """
        import cvxpy as cp

        self.parameter.value = self.to_parameter(float(radius))  # type: ignore[attr-defined]
        prob = self.problem
        try:
            prob.solve(solver=solver, **kwargs)  # type: ignore[attr-defined]
        except cp.SolverError as exc:
            raise SolverError(f"{solver} failed at radius={radius}: {exc}") from exc
        status = prob.status  # type: ignore[attr-defined]
        ok = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) if allow_inaccurate else (cp.OPTIMAL,)
        if status not in ok:
            other = "" if str(solver).upper() == DEFAULT_SOLVER else f"; try {DEFAULT_SOLVER}"
            raise SolverError(
                f"{solver} returned status {status!r} at radius={radius} (need 'optimal'){other}"
            )
        b = 0.0 if self.intercept is None else float(self.intercept.value)  # type: ignore[attr-defined]
        return ProgramResult(
            coef=np.asarray(self.coef.value, dtype=float).ravel(),  # type: ignore[attr-defined]
            intercept=b,
            value=float(self.to_objective(float(prob.value))),  # type: ignore[attr-defined]
            status=str(status),
            solver=str(solver),
            dual_weights=self._dual_weights(),
        )

    def _dual_weights(self) -> np.ndarray | None:
        cons = self.weight_constraint
        if cons is None:
            return None
        duals = [c.dual_value for c in (cons if isinstance(cons, list) else [cons])]  # type: ignore[attr-defined]
        if any(v is None for v in duals):
            return None
        q = np.maximum(np.concatenate([np.asarray(v, dtype=float).ravel() for v in duals]), 0.0)
        return q / q.sum() if q.sum() > 0 else None

    def sweep(self, radii, solver: str = DEFAULT_SOLVER, **kwargs) -> list[ProgramResult]:
        """Solve at each radius in turn, reusing the compiled problem."""
        return [self.solve(r, solver=solver, **kwargs) for r in radii]
