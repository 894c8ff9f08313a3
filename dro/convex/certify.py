"""The checks a linear DRO answer passes before it is called optimal; otherwise SolverError.

All of them judge the answer in the user's units, on the user's data:
* the worst case at the returned model, recomputed exactly in numpy, must match the solver's
  own value and the value on standardized features before the model was mapped back;
* no always-feasible model may beat it: θ = 0 with its best intercept, and the ERM model;
* 'optimal_inaccurate' needs a duality gap: the value minus a lower bound (the ERM optimum,
  or min_θ Σ q_i ℓ_i(θ) for weights q in the ball — weak duality).
Where θ = 0 is provably optimal (Wasserstein above a radius computed from the data) the
answer is written down rather than solved for: there a solver meets only a badly scaled
problem, and that is where the conic solvers returned wrong "optimal" answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize_scalar

from dro.convex.problem import LinearDROProblem
from dro.convex.scaling import Standardizer
from dro.convex.structured import weighted_erm
from dro.errors import SolverError

__all__ = [
    "RTOL",
    "Candidate",
    "Certified",
    "certify",
    "close",
    "erm_candidate",
    "objective_scale",
    "rounding_error",
    "zero_candidate",
    "zero_radius_bound",
]

# What "optimal" promises: within RTOL of the larger of the value and the problem's scale
# (objective_scale: an absolute floor, since on separable data the infimum 0 is not attained).
RTOL = 1e-6
_REPORT_RTOL = 1e-5  # solver's own value vs numpy: a consistency check (SCS's tolerances)


def close(a: float, b: float, scale: float, rtol: float = RTOL) -> bool:
    """|a − b| ≤ rtol·(max(|a|, |b|) + scale), scale being the problem's size."""
    return abs(a - b) <= rtol * (max(abs(a), abs(b)) + scale)


@dataclass(frozen=True)
class Candidate:
    """An always-feasible model in the user's units, its exact objective and a label."""

    label: str
    coef: np.ndarray
    intercept: float
    value: float


@dataclass(frozen=True)
class Certified:
    coef: np.ndarray
    intercept: float
    value: float
    weights: np.ndarray | None
    status: str


def _convex_argmin(f: Callable[[float], float], lo: float, hi: float,
                   extra: Iterable[float]) -> tuple[float, float]:
    """Brent's bounded search of a convex f on [lo, hi], then the best of it and ``extra``.

    ``extra`` holds the kinks where piecewise-linear objectives (hinge, absolute) attain their
    minimum exactly, so the intercept is exact there rather than within the search tolerance.
    """
    best = (f(lo), lo)
    if hi > lo:
        res = minimize_scalar(f, bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-10 * (hi - lo), "maxiter": 500})
        best = min(best, (float(res.fun), float(res.x)), (f(hi), hi))
    best = min([best, *((f(x), x) for x in extra if lo <= x <= hi)])
    return best[1], best[0]


def objective_scale(problem: LinearDROProblem, zero: Candidate) -> float:
    """The size of the problem's objective: at θ = 0 with its best intercept for regression
    (the spread of the labels), at the null model θ = 0, b = 0 for classification (ℓ(0))."""
    if problem.spec.task == "regression":
        return zero.value
    return problem.objective(zero.coef, 0.0)[0]


def zero_candidate(problem: LinearDROProblem) -> Candidate:
    """θ = 0 with its best intercept. The objective is convex in b, and moving b towards the
    labels lowers every loss, so the search runs over [min y, max y] (regression), [−1, 1]
    (hinge) or [−50, 50] (logistic: a wider b changes a loss by less than e^−50)."""
    zero = np.zeros(problem.X.shape[1])
    bare = replace(problem, X=problem.X[:, :0], weights=None)  # θ = 0: no X @ θ to compute

    def f(b: float) -> float:
        return bare.objective(zero[:0], b)[0]

    if not problem.fit_intercept:
        return Candidate("θ = 0", zero, 0.0, f(0.0))
    y = problem.y
    if problem.spec.task == "regression":
        b, v = _convex_argmin(f, float(y.min()), float(y.max()),
                              (float(np.median(y)), float(y.mean())))
    else:
        lim = 1.0 if problem.spec.name == "hinge" else 50.0
        b, v = _convex_argmin(f, -lim, lim, (-1.0, 0.0, 1.0))
    return Candidate("θ = 0 with its best intercept", zero, b, v)


def erm_candidate(user: LinearDROProblem, inner: LinearDROProblem,
                  std: Standardizer) -> tuple[Candidate, float | None]:
    """The ERM model (fitted on standardized features) and the ERM optimum if it converged:
    min_θ mean ℓ ≤ the robust optimum, since every ball contains the empirical distribution."""
    n = inner.X.shape[0]
    coef_s, b_s, value, ok = weighted_erm(inner.X, inner.y, inner.spec, np.full(n, 1.0 / n),
                                          inner.fit_intercept)
    coef, b = std.to_user(coef_s, b_s)
    robust = user.objective(coef, b)[0]
    return Candidate("the ERM model", coef, b, robust), value if ok else None


def zero_radius_bound(problem: LinearDROProblem, center: np.ndarray) -> tuple[float, str] | None:
    """A radius from which θ = 0 is optimal (with how it was computed), or None: the
    problem's set knows (Wasserstein: dro/sets/wasserstein.py; reweightings have none)."""
    return problem.ambiguity.zero_radius_bound(problem, center)


def _lower_bound(inner: LinearDROProblem, erm_value: float | None,
                 weight_sets: Iterable[np.ndarray | None]) -> tuple[float, str]:
    best = (0.0, "losses ≥ 0")
    if erm_value is not None:
        best = max(best, (erm_value, "the ERM optimum"))
    for q in weight_sets:
        if q is None:
            continue
        q = np.maximum(q, 0.0)
        # Weights moved into the set, on the data they weigh (Wasserstein: flipped labels too).
        bound = inner.ambiguity.bound_weights(inner, q) if q.sum() > 0 else None
        if bound is None:
            continue
        X, y, q = bound
        _, _, value, ok = weighted_erm(X, y, inner.spec, q, inner.fit_intercept)
        if ok:
            best = max(best, (value, "min_θ Σ q_i ℓ_i(θ) for worst-case weights q"))
    return best


def rounding_error(problem: LinearDROProblem, coef: np.ndarray, intercept: float) -> float:
    """Bound on what float rounding alone adds to the objective of (θ, b) on these features.

    A score xᵀθ + b carries an error up to (d + 2)·eps·(|x|ᵀ|θ| + |b|); the objectives move
    by at most the loss's slope times the largest score error. Large feature offsets with a
    small spread make it large: the model then cannot be written in the user's units.
    """
    X, y, spec = problem.X, problem.y, problem.spec
    du = (X.shape[1] + 2) * np.finfo(float).eps * (np.abs(X) @ np.abs(coef) + abs(intercept))
    if spec.name == "squared":
        slope = 2.0 * np.abs(y - X @ coef - intercept) + du
    else:
        slope = spec.lipschitz
    return float(np.max(slope * du, initial=0.0))


def certify(
    user: LinearDROProblem, inner: LinearDROProblem, std: Standardizer, coef_s: np.ndarray,
    b_s: float, *, method: str, status: str, reported: float | None,
    dual_q: np.ndarray | None, candidates: list[Candidate], erm_value: float | None,
    scale: float,
) -> Certified:
    """Map (θ̃, b̃) back to the user's units and run every check; raise SolverError on a miss."""
    coef, b = std.to_user(coef_s, b_s)
    value, weights = user.objective(coef, b)
    if not (math.isfinite(value) and np.all(np.isfinite(coef)) and math.isfinite(b)):
        raise SolverError(f"{method} returned a model whose robust objective is {value}")
    inaccurate = status == "optimal_inaccurate"  # its reported value is checked by the gap
    if reported is not None and not inaccurate and not close(reported, value, scale,
                                                              _REPORT_RTOL):
        raise SolverError(
            f"{method} reported the optimum {reported:.10g} but the exact worst-case loss at "
            f"its solution is {value:.10g} (check: solver value vs numpy worst case)"
        )
    inner_value = inner.objective(coef_s, b_s)[0]
    noise = rounding_error(user, coef, b)
    noisy = noise > RTOL * (abs(value) + scale)
    if noisy or not close(inner_value, value, scale):
        why = ("the features' offsets dwarf their spread: subtract their means before fitting"
               if noisy else "precision was lost mapping the model back")
        raise SolverError(
            f"{method}'s solution has objective {inner_value:.10g} on standardized features "
            f"and {value:.10g} once mapped back to your feature units, where float rounding "
            f"alone may move it by {noise:.2g} (check: mapping back); {why}"
        )
    for cand in candidates:
        if value > cand.value and not close(value, cand.value, scale):
            raise SolverError(
                f"{method} returned robust objective {value:.10g}, but {cand.label} (θ norm "
                f"{np.linalg.norm(cand.coef):.3g}, intercept {cand.intercept:.6g}) has "
                f"{cand.value:.10g} (check: no always-feasible model may do better); the "
                "answer is not optimal"
            )
    if inaccurate:
        lower, source = _lower_bound(inner, erm_value, (dual_q, weights))
        gap = value - lower
        if gap > RTOL * (abs(value) + scale):
            raise SolverError(
                f"{method} returned status 'optimal_inaccurate' and the duality gap does not "
                f"certify it: objective {value:.10g}, best lower bound {lower:.10g} "
                f"({source}), gap {gap:.3g} (check: duality gap)"
            )
        status = f"optimal_inaccurate (certified: duality gap {max(gap, 0.0):.1e})"
    return Certified(coef, b, value, weights, status)
