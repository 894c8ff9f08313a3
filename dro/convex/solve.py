"""One entry point that picks a solver for a linear DRO problem and certifies its answer.

Every answer is re-evaluated by the exact worst-case formulas (wasserstein_objective,
chi2_objective, cvar_objective): a cvxpy solver whose reported optimum disagrees with the
objective at its own solution raises SolverError (SCS once reported a wrong "optimal" χ²
value this way), as does any status other than 'optimal'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dro._validation import check_choice
from dro.convex.chi2 import chi2_objective, chi2_program
from dro.convex.cvar import cvar_objective, cvar_program
from dro.convex.losses import LossSpec
from dro.convex.program import DEFAULT_SOLVER, installed_cvxpy_solvers
from dro.convex.structured import (
    lbfgs_chi2,
    lbfgs_supported,
    lbfgs_wasserstein,
    weighted_erm_value,
)
from dro.convex.wasserstein import wasserstein_objective, wasserstein_program
from dro.errors import InvalidParameterError, SolverError

__all__ = ["FORMULATIONS", "LinearDROFit", "fit_linear_dro", "robust_objective"]

FORMULATIONS = ("wasserstein", "chi2", "cvar")
_CHECK_RTOL = 1e-5
_ZERO_ATOL = 1e-6


@dataclass(frozen=True)
class LinearDROFit:
    """A certified solution: model, exact robust objective, worst-case weights (or None)."""

    coef: np.ndarray
    intercept: float
    objective: float
    weights: np.ndarray | None
    status: str
    solver: str


def robust_objective(
    formulation: str, X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float,
    spec: LossSpec, *, radius: float, dual_p: float = 2.0, kappa: float = math.inf,
) -> tuple[float, np.ndarray | None]:
    """Exact worst-case loss of a given linear model, with the worst-case weights if any."""
    if formulation == "wasserstein":
        v = wasserstein_objective(
            X, y, coef, intercept, spec, radius=radius, dual_p=dual_p, kappa=kappa
        )
        return v, None
    if formulation == "chi2":
        return chi2_objective(X, y, coef, intercept, spec, radius=radius)
    return cvar_objective(X, y, coef, intercept, spec, alpha=radius)


def _resolve_solver(solver: str | None, supported: bool) -> str:
    if solver is None or solver == "auto":
        return "lbfgs" if supported else DEFAULT_SOLVER
    if not isinstance(solver, str):
        raise InvalidParameterError(f"solver={solver!r} must be a string or None")
    if solver == "cvxpy":
        return DEFAULT_SOLVER
    if solver in ("lbfgs", "torch"):
        return solver
    names = installed_cvxpy_solvers()
    if solver.upper() not in names:
        raise InvalidParameterError(
            f"solver={solver!r} is not allowed; choose None, 'auto', 'lbfgs', 'torch', 'cvxpy' "
            f"or an installed cvxpy solver {names}"
        )
    return solver.upper()


def fit_linear_dro(
    X: np.ndarray, y: np.ndarray, *, formulation: str, spec: LossSpec, radius: float,
    dual_p: float = 2.0, kappa: float = math.inf, fit_intercept: bool = True,
    solver: str | None = None,
) -> LinearDROFit:
    """Fit a linear model under ``formulation`` (radius = α for CVaR) and certify the result."""
    check_choice("formulation", formulation, FORMULATIONS)
    supported = formulation != "cvar" and lbfgs_supported(formulation, spec, dual_p, kappa)
    method = _resolve_solver(solver, supported)
    if method == "lbfgs" and not supported:
        raise InvalidParameterError(
            f"solver='lbfgs' needs a smooth loss (got {spec.name!r}) and, for Wasserstein, "
            f"kappa=inf with norm 2 or inf; use solver=None or a cvxpy solver"
        )
    auto = solver is None or solver == "auto"
    try:
        coef, b, status, reported, dual_q = _dispatch(
            method, X, y, formulation, spec, radius, dual_p, kappa, fit_intercept
        )
    except SolverError:
        if not (auto and method == "lbfgs"):
            raise
        # A kink at the optimum (e.g. θ = 0 where all losses tie) stalls L-BFGS; the conic
        # program has no such trouble.
        method = DEFAULT_SOLVER
        coef, b, status, reported, dual_q = _dispatch(
            method, X, y, formulation, spec, radius, dual_p, kappa, fit_intercept
        )
    value, weights = robust_objective(
        formulation, X, y, coef, b, spec, radius=radius, dual_p=dual_p, kappa=kappa
    )
    if status == "optimal_inaccurate":
        # Certify by a lower bound: 0 (losses are ≥ 0; separable data never attain the
        # infimum), or min_θ Σ q_i ℓ_i(θ) for the solver's dual weights q (weak duality).
        lower = 0.0
        if value > _ZERO_ATOL and dual_q is not None:
            lower = max(lower, weighted_erm_value(X, y, spec, dual_q, fit_intercept))
        gap = value - lower
        if gap > _ZERO_ATOL * (1.0 + abs(value)):
            raise SolverError(
                f"{method} returned status 'optimal_inaccurate' at radius={radius} and the "
                f"duality gap {gap:.3g} does not certify it; try solver='CLARABEL' or 'lbfgs'"
            )
        status = f"optimal_inaccurate (certified: duality gap {max(gap, 0.0):.1e})"
    elif reported is not None and abs(reported - value) > _CHECK_RTOL * (1.0 + abs(value)):
        raise SolverError(
            f"{method} reported the optimum {reported:.8g} but the worst-case loss at its "
            f"solution is {value:.8g}; the answer is inaccurate (try solver='CLARABEL')"
        )
    return LinearDROFit(np.asarray(coef, float), float(b), float(value), weights, status, method)


def _dispatch(method, X, y, formulation, spec, radius, dual_p, kappa, fit_intercept):
    """Run one solver; returns (θ, b, status, reported optimum or None, dual q or None)."""
    if method == "lbfgs":
        if formulation == "chi2":
            coef, b = lbfgs_chi2(X, y, spec, radius=radius, fit_intercept=fit_intercept)
        else:
            coef, b = lbfgs_wasserstein(
                X, y, spec, radius=radius, dual_p=dual_p, fit_intercept=fit_intercept
            )
        return coef, b, "optimal", None, None
    if method == "torch":
        from dro.torch_linear import fit_linear_torch

        coef, b = fit_linear_torch(
            X, y, formulation=formulation, spec=spec, radius=radius, dual_p=dual_p,
            kappa=kappa, fit_intercept=fit_intercept,
        )
        return coef, b, "converged", None, None
    if formulation == "wasserstein":
        prog = wasserstein_program(
            X, y, spec, dual_p=dual_p, kappa=kappa, fit_intercept=fit_intercept
        )
    elif formulation == "chi2":
        prog = chi2_program(X, y, spec, fit_intercept=fit_intercept)
    else:
        prog = cvar_program(X, y, spec, fit_intercept=fit_intercept)
    res = prog.solve(radius, solver=method, allow_inaccurate=True)
    return res.coef, res.intercept, res.status, res.value, res.dual_weights
