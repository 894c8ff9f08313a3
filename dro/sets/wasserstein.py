"""Type-1 Wasserstein ball: the adversary moves samples, at cost ‖x − x′‖ + κ·(label change).

Linear models (Shafieezadeh-Abadeh, Esfahani & Kuhn 2015, 2019), ‖·‖_* the dual norm and L
the loss's Lipschitz constant; cost κ·1[y ≠ y′] (classification) or κ|y − y′| (regression):
  classification, κ = ∞:  mean ℓ + ε·L‖θ‖_*
  classification, κ < ∞:  min_{λ,s} λε + mean s,  s_i ≥ ℓ(y_i u_i), s_i ≥ ℓ(−y_i u_i) − λκ,
                          L‖θ‖_* ≤ λ
  regression:             mean ℓ + ε·L·max(‖θ‖_*, 1/κ)
The squared loss has no finite type-1 worst case, so for it ``radius`` is a type-2 radius and
the objective is (sqrt(MSE) + ε‖θ‖_*)² (Blanchet, Kang & Murthy 2019; κ must be ∞).
``weights`` w make the dual norm ‖w ⊙ θ‖_*: the form the problem takes on standardized
features (dro.convex.scaling).

Deep models: the Lagrangian relaxation of Sinha, Namkoong & Duchi (2018),
mean_i sup_x′ [ℓ(x′, y_i) − γ‖x′ − x_i‖²], by gradient ascent on the inputs (the WRM step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from dro._validation import check_nonneg, dual_norm
from dro.errors import InvalidParameterError
from dro.sets.base import LinearModelSet

if TYPE_CHECKING:
    from torch import Tensor

    from dro.convex.losses import LossSpec
    from dro.convex.problem import LinearDROProblem
    from dro.convex.program import LinearDROProgram
    from dro.convex.scaling import Standardizer

__all__ = ["WASSERSTEIN", "Wasserstein", "penalty_risk", "wasserstein_objective",
           "wasserstein_program"]


def _check_kappa(spec: LossSpec, kappa: float) -> None:
    if spec.name == "squared" and not math.isinf(kappa):
        raise InvalidParameterError(
            f"kappa={kappa!r} is not allowed with loss='squared' (type-2 formula); use kappa=inf"
        )


def wasserstein_program(
    X: np.ndarray, y: np.ndarray, spec: LossSpec, *, dual_p: float, kappa: float,
    fit_intercept: bool, weights: np.ndarray | None = None,
) -> LinearDROProgram:
    """Build the DPP cvxpy problem; its Parameter is the radius ε."""
    import cvxpy as cp

    from dro.convex.losses import cvxpy_losses
    from dro.convex.program import LinearDROProgram, linear_scores

    _check_kappa(spec, kappa)
    n = X.shape[0]
    w, b, u = linear_scores(X, fit_intercept)
    eps = cp.Parameter(nonneg=True)
    wnorm = cp.norm(w if weights is None else cp.multiply(weights, w), dual_p)
    if spec.name == "squared":
        objective = cp.norm(y - u, 2) / math.sqrt(n) + eps * wnorm
        prob = cp.Problem(cp.Minimize(objective))
        return LinearDROProgram(prob, eps, w, b, to_objective=lambda v: v * v)
    if spec.task == "regression" or math.isinf(kappa):
        reg = wnorm if math.isinf(kappa) else cp.maximum(wnorm, 1.0 / kappa)
        objective = cp.sum(cvxpy_losses(spec, u, y)) / n + spec.lipschitz * eps * reg
        return LinearDROProgram(cp.Problem(cp.Minimize(objective)), eps, w, b)
    # λ ≥ L‖θ‖_* is O(1) on standardized features, but with κ < 1 it must reach the flip
    # price (ℓ̃ − ℓ)/κ: solve for ν = min(κ, 1)·λ, which stays O(1) in both cases.
    c = min(kappa, 1.0)
    nu = cp.Variable(nonneg=True)
    s = cp.Variable(n)
    cons = [
        cvxpy_losses(spec, u, y) <= s,
        cvxpy_losses(spec, u, y, flipped=True) - (kappa / c) * nu <= s,
        c * spec.lipschitz * wnorm <= nu,
    ]
    prob = cp.Problem(cp.Minimize(eps * (1.0 / c) * nu + cp.sum(s) / n), cons)
    # Their duals: the mass kept on each sample and the mass whose label is flipped.
    return LinearDROProgram(prob, eps, w, b, weight_constraint=cons[:2])


def wasserstein_objective(
    X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, spec: LossSpec, *,
    radius: float, dual_p: float, kappa: float, weights: np.ndarray | None = None,
) -> float:
    """Exact worst-case expected loss of the model (θ, b) over the Wasserstein ball."""
    from dro.convex.losses import loss_and_derivative

    _check_kappa(spec, kappa)
    u = X @ coef + intercept
    losses, _ = loss_and_derivative(spec, u, y)
    tn = float(np.linalg.norm(coef if weights is None else weights * coef, ord=dual_p))
    if spec.name == "squared":
        return float((math.sqrt(losses.mean()) + radius * tn) ** 2)
    if spec.task == "regression":
        reg = tn if math.isinf(kappa) else max(tn, 1.0 / kappa)
        return float(losses.mean() + radius * spec.lipschitz * reg)
    lam0 = spec.lipschitz * tn
    if math.isinf(kappa):
        return float(losses.mean() + radius * lam0)
    flipped, _ = loss_and_derivative(spec, u, -y)
    # h(λ) = λε + mean max(ℓ_i, ℓ̃_i − λκ) is convex piecewise linear: its minimum over
    # λ ≥ λ0 sits at λ0 or at the breakpoint where the slope ε − κ·#{λ_i > λ}/n turns ≥ 0.
    bp = np.sort((flipped - losses) / kappa)[::-1]
    k = math.floor(len(bp) * radius / kappa)
    cands = [lam0] + [max(lam0, bp[j]) for j in (k - 1, k, k + 1) if 0 <= j < len(bp)]
    return float(
        min(lam * radius + np.maximum(losses, flipped - lam * kappa).mean() for lam in cands)
    )


def penalty_risk(
    model: Callable[[Tensor], Tensor], loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor, y: Tensor, *, gamma: float, steps: int = 15, step_size: float | None = None,
) -> Tensor:
    """Sinha et al.'s robust surrogate mean_i sup_x′ [ℓ(model(x′), y_i) − γ‖x′ − x_i‖²].

    ``loss_fn`` returns per-sample losses of shape (..., n) = x's leading dims: leading dims
    are independent problems (e.g. stacked models, whose input gradients do not mix), and
    the result has shape (...). The inner sup is ``steps`` of gradient ascent on the inputs
    (step 1/(2γ) by default, exact for strongly concave inner problems when γ exceeds the
    loss curvature); the gradient in the model parameters is that at the adversarial inputs.
    """
    import torch

    g = check_nonneg("gamma", gamma)
    if g == 0:
        raise InvalidParameterError("gamma=0 is not allowed; the penalty must be > 0")
    if int(steps) < 0:
        raise InvalidParameterError(f"steps={steps!r} must be >= 0")
    lr = 1.0 / (2.0 * g) if step_size is None else check_nonneg("step_size", step_size)
    x0 = x.detach()

    def per_sample(inputs: Tensor) -> Tensor:
        per = loss_fn(model(inputs), y)
        if (not isinstance(per, torch.Tensor) or per.ndim == 0
                or per.shape != x0.shape[:per.ndim] or not per.is_floating_point()):
            shape = tuple(per.shape) if isinstance(per, torch.Tensor) else type(per).__name__
            raise InvalidParameterError(
                f"loss_fn must return floating per-sample losses (reduction='none') shaped "
                f"like the leading dims of x {tuple(x0.shape)}, got {shape}"
            )
        return per

    x_adv = x0.clone()
    for _ in range(int(steps)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            phi = per_sample(x_adv).sum() - g * ((x_adv - x0) ** 2).sum()
            (grad,) = torch.autograd.grad(phi, x_adv)
        x_adv = (x_adv + lr * grad).detach()
    per = per_sample(x_adv)
    cost = (x_adv - x0) ** 2
    if x0.ndim > per.ndim:
        cost = cost.flatten(per.ndim).sum(-1)
    return (per - g * cost).mean(-1)


class Wasserstein(LinearModelSet):
    """The type-1 Wasserstein ball of radius ε (``radius``, in feature units)."""

    name = "wasserstein"
    size_name = "radius"
    # A norm with very unequal weights w = s/σ is as ill-conditioned for L-BFGS as raw
    # features of very unequal spread: keep them within a factor 100 (any choice is exact).
    max_weight = 100.0

    def check_size(self, value: object) -> float:
        return check_nonneg("radius", value)

    def settings(self, params: Mapping[str, object]) -> dict:
        out = {"radius": self.check_size(params["radius"]), "dual_p": dual_norm(params["norm"]),
               "kappa": check_nonneg("kappa", params["kappa"], allow_inf=True)}
        if out["kappa"] == 0:
            raise InvalidParameterError("kappa=0 is not allowed; labels would move for free")
        return out

    def program(self, problem: LinearDROProblem) -> LinearDROProgram:
        return wasserstein_program(problem.X, problem.y, problem.spec, dual_p=problem.dual_p,
                                   kappa=problem.kappa, fit_intercept=problem.fit_intercept,
                                   weights=problem.weights)

    def objective(self, problem: LinearDROProblem, coef: np.ndarray, intercept: float
                  ) -> tuple[float, None]:
        value = wasserstein_objective(
            problem.X, problem.y, coef, intercept, problem.spec, radius=problem.radius,
            dual_p=problem.dual_p, kappa=problem.kappa, weights=problem.weights)
        return value, None  # the worst case moves samples rather than reweighting them

    def standardized(self, problem: LinearDROProblem, std: Standardizer) -> LinearDROProblem:
        return replace(problem, X=std.transform(problem.X), radius=problem.radius / std.unit,
                       kappa=problem.kappa / std.unit, weights=std.weights)

    def zero_radius_bound(self, problem: LinearDROProblem, center: np.ndarray
                          ) -> tuple[float, str] | None:
        """With m = mean_i ‖x_i − c‖ (transport norm) and b′ = b + θᵀc, an L-Lipschitz loss
        obeys ℓ(θᵀx_i + b) ≥ ℓ(b′) − L‖θ‖_*‖x_i − c‖, so mean ℓ + εL‖θ‖_* ≥ mean ℓ(b′) once
        ε ≥ m. Finite κ (classification) needs ε ≥ κ + m (the adversary can then flip any
        label); the type-2 squared loss ε ≥ sqrt(mean ‖x_i − c‖²) (triangle inequality in
        ℝⁿ). Regression with finite κ has none: θ with ‖θ‖_* ≤ 1/κ costs nothing extra."""
        if problem.spec.task == "regression" and not math.isinf(problem.kappa):
            return None
        primal = {2.0: 2.0, 1.0: math.inf, math.inf: 1.0}[problem.dual_p]
        dist = np.linalg.norm(problem.X - center, ord=primal, axis=1)
        where = "x̄" if problem.fit_intercept else "0"
        if problem.spec.name == "squared":
            return float(np.sqrt(np.mean(dist * dist))), f"sqrt(mean ‖x − {where}‖²)"
        if math.isinf(problem.kappa):
            return float(dist.mean()), f"mean ‖x − {where}‖"
        return float(problem.kappa + dist.mean()), f"κ + mean ‖x − {where}‖"

    def bound_weights(self, problem: LinearDROProblem, q: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """q holds n kept then n flipped masses (finite κ, classification): flipping labels
        without moving x costs κ per unit, so flips are capped at 1/n each and ε/κ in all."""
        X, y, n = problem.X, problem.y, problem.X.shape[0]
        if q.size != 2 * n or math.isinf(problem.kappa):
            return None
        flip = np.minimum(q[n:], 1.0 / n)
        flip *= min(1.0, problem.radius / (problem.kappa * flip.sum())) if flip.sum() > 0 else 1.0
        return np.vstack([X, X]), np.concatenate([y, -y]), np.concatenate([1.0 / n - flip, flip])

    def lbfgs_supported(self, spec: LossSpec, dual_p: float, kappa: float) -> bool:
        return spec.smooth and math.isinf(kappa) and dual_p in (1.0, 2.0)

    def lbfgs(self, problem: LinearDROProblem) -> tuple[np.ndarray, float]:
        from dro.convex.structured import lbfgs_wasserstein

        return lbfgs_wasserstein(problem.X, problem.y, problem.spec, radius=problem.radius,
                                 dual_p=problem.dual_p, fit_intercept=problem.fit_intercept,
                                 weights=problem.weights)

    def torch_unsupported(self, spec: LossSpec, dual_p: float, kappa: float) -> str | None:
        if math.isinf(kappa) and dual_p == 2.0:
            return None
        return (f"solver='torch' supports 'wasserstein' only with kappa=inf and norm=2, got "
                f"kappa={kappa!r}, dual norm {dual_p!r}")

    def torch_objective(self, losses: Tensor, coef: Tensor, *, spec: LossSpec, radius: float,
                        weights: Tensor) -> Tensor:
        import torch

        norm = torch.linalg.vector_norm(weights * coef)
        if spec.name == "squared":
            return torch.sqrt(losses.mean()) + radius * norm
        return losses.mean() + radius * spec.lipschitz * norm


WASSERSTEIN = Wasserstein()
