"""One entry point that picks a solver for a linear DRO problem and certifies its answer.

The solvers work on standardized features (dro.convex.scaling) and the model is mapped back,
so rescaling a feature cannot turn a solvable problem into an ill-conditioned one. Every
answer then passes the checks of dro.convex.certify (exact numpy worst case, no better
always-feasible model, a duality gap for 'optimal_inaccurate') or raises SolverError; with
``solver=None`` a structured L-BFGS answer that fails falls back to Clarabel first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dro.convex.certify import (
    RTOL,
    Candidate,
    certify,
    erm_candidate,
    objective_scale,
    zero_candidate,
    zero_radius_bound,
)
from dro.convex.losses import LossSpec
from dro.convex.problem import LinearDROProblem, robust_objective
from dro.convex.program import DEFAULT_SOLVER, installed_cvxpy_solvers
from dro.convex.scaling import standardizer
from dro.errors import InvalidParameterError, SolverError
from dro.sets import LinearModelSet, get_set, set_names

__all__ = ["FORMULATIONS", "LinearDROFit", "fit_linear_dro", "robust_objective"]

FORMULATIONS = set_names(LinearModelSet)  # every registered set that fits linear models


@dataclass(frozen=True)
class LinearDROFit:
    """A certified solution: model, exact robust objective, worst-case weights (or None)."""

    coef: np.ndarray
    intercept: float
    objective: float
    weights: np.ndarray | None
    status: str
    solver: str


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


def _advice(tried: list[str], supported: bool) -> str:
    """Other solvers worth a try: never one that already failed on this problem."""
    others = ["lbfgs"] if supported else []
    others += [s for s in (DEFAULT_SOLVER, "SCS") if s in installed_cvxpy_solvers()]
    others = [s for s in others if s not in tried]
    return f"; other solvers: {', '.join(f'solver={s!r}' for s in others)}" if others else ""


def fit_linear_dro(
    X: np.ndarray, y: np.ndarray, *, formulation: str, spec: LossSpec, radius: float,
    dual_p: float = 2.0, kappa: float = math.inf, fit_intercept: bool = True,
    solver: str | None = None,
) -> LinearDROFit:
    """Fit a linear model under the set named ``formulation`` (radius = its size: α for
    CVaR) and certify the result."""
    ball: LinearModelSet = get_set(formulation, LinearModelSet, what="formulation")  # type: ignore[assignment]
    supported = ball.lbfgs_supported(spec, dual_p, kappa)
    method = _resolve_solver(solver, supported)
    if method == "lbfgs" and not supported:
        raise InvalidParameterError(
            f"solver='lbfgs' needs a smooth loss (got {spec.name!r}) and, for Wasserstein, "
            f"kappa=inf with norm 2 or inf; use solver=None or a cvxpy solver"
        )
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    user = LinearDROProblem(formulation, X, y, spec, float(radius), float(dual_p),
                            float(kappa), bool(fit_intercept))
    std = standardizer(X, user.fit_intercept, ball.max_weight)
    zero = zero_candidate(user)
    bound = zero_radius_bound(user, std.mean)
    if bound is not None and user.radius >= bound[0]:
        status = f"optimal (θ = 0 proven optimal: radius ≥ {bound[1]} = {bound[0]:.4g})"
        return _closed_form(user, zero, status)
    scale = objective_scale(user, zero)
    if zero.value <= RTOL * scale:  # no objective is negative (one class, constant labels)
        status = f"optimal (θ = 0 is within {zero.value:.1e} of the lower bound 0)"
        return _closed_form(user, zero, status)
    inner = user.standardized(std)
    erm, erm_value = erm_candidate(user, inner, std)
    candidates = [zero, erm]
    # A kink at the optimum (e.g. θ = 0 where all losses tie) can stall L-BFGS; the conic
    # program has no such trouble, so the automatic choice falls back to it.
    auto = solver in (None, "auto") and method == "lbfgs"
    methods = [method, DEFAULT_SOLVER] if auto else [method]
    failures = []
    for m in methods:
        try:
            coef_s, b_s, status, reported, dual_q = _dispatch(m, inner)
            out = certify(user, inner, std, coef_s, b_s, method=m, status=status,
                          reported=reported, dual_q=dual_q, candidates=candidates,
                          erm_value=erm_value, scale=scale)
        except SolverError as exc:
            failures.append(str(exc))
            continue
        return LinearDROFit(out.coef, out.intercept, out.value, out.weights, out.status, m)
    raise SolverError("; then ".join(failures) + _advice(methods, supported))


def _closed_form(user: LinearDROProblem, zero: Candidate, status: str) -> LinearDROFit:
    weights = user.objective(zero.coef, zero.intercept)[1]
    return LinearDROFit(zero.coef, zero.intercept, zero.value, weights, status, "closed form")


def _dispatch(method: str, p: LinearDROProblem):
    """Run one solver on ``p``; returns (θ, b, status, reported optimum or None, dual q or None)."""
    if method == "lbfgs":
        coef, b = p.ambiguity.lbfgs(p)
        return coef, b, "optimal", None, None
    if method == "torch":
        from dro.torch_linear import fit_linear_torch

        coef, b = fit_linear_torch(
            p.X, p.y, formulation=p.formulation, spec=p.spec, radius=p.radius,
            dual_p=p.dual_p, kappa=p.kappa, fit_intercept=p.fit_intercept, weights=p.weights,
        )
        return coef, b, "converged", None, None
    res = p.ambiguity.program(p).solve(p.radius, solver=method, allow_inaccurate=True)
    return res.coef, res.intercept, res.status, res.value, res.dual_weights
