"""First-order path for large linear DRO problems: full-batch L-BFGS in torch (CPU or CUDA).

Only gradients are used (no Hessians, no conic solver), so memory and time grow linearly
with N; the objective is the set's own torch form (dro.sets): for χ² and KL the exact worst
case, whose Danskin gradient makes it a differentiable function of the model. Accuracy is
that of the stopping rule; benchmarks/dro.py reports the gap to the exact solvers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dro.convex.losses import LossSpec
from dro.errors import InvalidParameterError, SolverError
from dro.sets import LinearModelSet, get_set

__all__ = ["fit_linear_torch", "torch_losses"]


def torch_losses(spec: LossSpec, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample losses of the linear scores ``u`` (same definitions as dro.convex.losses)."""
    if spec.task == "classification":
        m = y * u
        return F.softplus(-m) if spec.name == "logistic" else torch.relu(1.0 - m)
    r = y - u
    if spec.name == "absolute":
        return r.abs()
    if spec.name == "squared":
        return r * r
    return F.huber_loss(u, y, reduction="none", delta=spec.delta)


def fit_linear_torch(
    X: np.ndarray, y: np.ndarray, *, formulation: str, spec: LossSpec, radius: float,
    dual_p: float = 2.0, kappa: float = math.inf, fit_intercept: bool = True,
    device: str | None = None, dtype: torch.dtype = torch.float64, max_iter: int = 2000,
    gtol: float = 1e-7, weights: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Minimise the set's objective (Wasserstein: κ = ∞, ℓ2 dual norm ‖w ⊙ θ‖₂; χ², KL: the
    exact worst case); returns (θ, b)."""
    ball: LinearModelSet = get_set(formulation, LinearModelSet, what="formulation")  # type: ignore[assignment]
    if not spec.smooth:
        raise InvalidParameterError(f"solver='torch' needs a smooth loss, got {spec.name!r}")
    why = ball.torch_unsupported(spec, dual_p, kappa)
    if why is not None:
        raise InvalidParameterError(why)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    d = Xt.shape[1]
    w = torch.ones(d, dtype=dtype, device=dev) if weights is None else torch.as_tensor(
        weights, dtype=dtype, device=dev)
    z = torch.zeros(d + 1, dtype=dtype, device=dev, requires_grad=True)

    def objective() -> torch.Tensor:
        b = z[d] if fit_intercept else z[d] * 0.0
        losses = torch_losses(spec, Xt @ z[:d] + b, yt)
        return ball.torch_objective(losses, z[:d], spec=spec, radius=radius, weights=w)

    # Start a small step down the ERM gradient: at θ = 0 the worst case and ‖θ‖ have kinks.
    b0 = z[d] if fit_intercept else z[d] * 0.0
    erm = torch_losses(spec, Xt @ z[:d] + b0, yt).mean()
    (g0,) = torch.autograd.grad(erm, z)
    with torch.no_grad():
        if float(g0.norm()) > 0:
            z -= 0.01 * g0 / g0.norm()
    opt = torch.optim.LBFGS(
        [z], lr=1.0, max_iter=max_iter, tolerance_grad=gtol, tolerance_change=1e-15,
        history_size=30, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        val = objective()
        val.backward()
        if not fit_intercept:
            z.grad[d] = 0.0
        return val

    opt.step(closure)
    closure()
    gmax = float(z.grad.abs().max())
    if not math.isfinite(gmax) or gmax > 1e3 * gtol:
        raise SolverError(f"torch L-BFGS stopped with max |gradient| {gmax:.2e} > {1e3 * gtol}")
    out = z.detach().cpu().numpy()
    return out[:d].copy(), float(out[d]) if fit_intercept else 0.0
