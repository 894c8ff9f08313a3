"""Differentiable DRO risks for deep models in torch, over per-sample losses.

The contract with any loss, evolved ones included, is a 1-D tensor of per-sample losses
(``reduction="none"``). ``chi2_risk`` and ``cvar_risk`` return the exact worst-case
reweighting of the batch (Levy, Carmon, Duchi & Sidford 2020): the value is sup_q qᵀℓ and
the gradient is Σ q*_i ∇ℓ_i (Danskin), because q* is computed without a graph by a sort.
``GroupDRO`` is the online algorithm of Sagawa et al. (2020); ``wasserstein_penalty_risk``
is the Lagrangian relaxation of Sinha, Namkoong & Duchi (2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dro._validation import check_nonneg, check_open_unit
from dro.errors import InvalidParameterError

__all__ = [
    "GroupDRO",
    "chi2_risk",
    "chi2_weights",
    "cvar_risk",
    "cvar_weights",
    "group_dro_risk",
    "wasserstein_penalty_risk",
]


def _check_losses(losses: object) -> Tensor:
    if not isinstance(losses, Tensor) or losses.ndim != 1 or losses.numel() == 0:
        shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
        raise InvalidParameterError(
            f"losses must be a non-empty 1-D tensor of per-sample losses "
            f"(reduction='none'), got {shape}"
        )
    if not losses.is_floating_point():
        raise InvalidParameterError(f"losses must be floating point, got {losses.dtype}")
    return losses


@torch.no_grad()
def chi2_weights(losses: Tensor, radius: float) -> Tensor:
    """Worst-case q over {q ∈ Δ : (1/n)Σ(n q_i − 1)² ≤ radius} for these losses (no graph)."""
    v = _check_losses(losses).detach().to(torch.float64)
    rho = check_nonneg("radius", radius)
    n = v.numel()
    uniform = torch.full_like(v, 1.0 / n)
    if rho == 0.0 or bool(v.max() == v.min()):
        return uniform.to(losses.dtype)
    s = torch.sort(v, descending=True).values
    top = s[0]
    s = s - top  # shift by the max so the running variance keeps its digits
    k = torch.arange(1, n + 1, dtype=v.dtype, device=v.device)
    mean_k = torch.cumsum(s, 0) / k
    var_k = (torch.cumsum(s * s, 0) / k - mean_k**2).clamp_min(0.0)
    denom = (1.0 + rho) * k - n
    ok = denom > 0
    eta = torch.where(ok, mean_k - torch.sqrt(n * var_k / denom.clamp_min(1e-300)), -torch.inf)
    nxt = torch.cat([s[1:], s.new_full((1,), -torch.inf)])
    tol = 1e-9 * max(1.0, float(s.abs().max()))
    cand = eta[ok & (eta <= s + tol) & (eta >= nxt - tol)]
    if cand.numel():
        p = (s[None, :] - cand[:, None]).clamp_min(0.0)
        g = cand + (1.0 + rho) ** 0.5 * torch.sqrt((p * p).mean(1))
        best = int(torch.argmin(g))
        if float(g[best]) < 0.0:  # beats putting all mass on the largest loss (value 0 here)
            q = (v - top - cand[best]).clamp_min(0.0)
            return (q / q.sum()).to(losses.dtype)
    q = (v == top).to(v.dtype)
    return (q / q.sum()).to(losses.dtype)


def chi2_risk(losses: Tensor, radius: float) -> Tensor:
    """sup_q qᵀℓ over the χ² ball E[(dQ/dP̂ − 1)²] ≤ radius (no ½), differentiable."""
    return (chi2_weights(losses, radius) * losses).sum()


@torch.no_grad()
def cvar_weights(losses: Tensor, alpha: float) -> Tensor:
    """Worst-case q with q_i ≤ 1/(α n): mass on the worst α fraction of the batch."""
    v = _check_losses(losses).detach()
    a = check_open_unit("alpha", alpha)
    n = v.numel()
    cap = 1.0 / (a * n)
    k = min(int(a * n + 1e-12), n)
    order = torch.argsort(v, descending=True, stable=True)
    q = torch.zeros(n, dtype=torch.float64, device=v.device)
    q[order[:k]] = cap
    if k < n:
        q[order[k]] = max(0.0, 1.0 - k * cap)
    return (q / q.sum()).to(losses.dtype)


def cvar_risk(losses: Tensor, alpha: float) -> Tensor:
    """CVaR_α of the batch losses (mean of the worst α fraction), differentiable."""
    return (cvar_weights(losses, alpha) * losses).sum()


def _group_means(losses: Tensor, groups: Tensor, n_groups: int) -> tuple[Tensor, Tensor]:
    losses = _check_losses(losses)
    if not isinstance(groups, Tensor) or groups.shape != losses.shape or groups.is_floating_point():
        raise InvalidParameterError("groups must be an integer tensor with the shape of losses")
    if int(n_groups) < 1 or bool((groups < 0).any()) or bool((groups >= n_groups).any()):
        raise InvalidParameterError(f"groups must lie in [0, n_groups={n_groups})")
    counts = torch.bincount(groups, minlength=n_groups).to(losses.dtype)
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(
        0, groups, losses
    )
    return sums / counts.clamp_min(1.0), counts > 0


def group_dro_risk(losses: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    """Worst group's mean loss in the batch (groups absent from the batch are ignored)."""
    means, present = _group_means(losses, groups, n_groups)
    return means[present].max()


class GroupDRO:
    """Online group DRO (Sagawa et al. 2020, Alg. 1): q ← q·exp(step·group loss), risk = qᵀL_g.

    Holds the group weights ``q`` across batches; call it on each batch's per-sample losses.
    """

    def __init__(self, n_groups: int, step_size: float = 0.01, device: str | None = None):
        if int(n_groups) < 1:
            raise InvalidParameterError(f"n_groups={n_groups!r} must be >= 1")
        self.n_groups = int(n_groups)
        self.step_size = check_nonneg("step_size", step_size)
        self.q = torch.full((self.n_groups,), 1.0 / self.n_groups, device=device)

    def __call__(self, losses: Tensor, groups: Tensor) -> Tensor:
        means, present = _group_means(losses, groups, self.n_groups)
        with torch.no_grad():
            q = self.q.to(device=losses.device, dtype=losses.dtype)
            q = q * torch.exp(self.step_size * means.detach() * present)
            self.q = q / q.sum()
        return (self.q * means).sum()


def wasserstein_penalty_risk(
    model: Callable[[Tensor], Tensor],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    gamma: float,
    steps: int = 15,
    step_size: float | None = None,
) -> Tensor:
    """Sinha et al.'s robust surrogate mean_i sup_x′ [ℓ(model(x′), y_i) − γ‖x′ − x_i‖²].

    The inner sup is solved by ``steps`` of gradient ascent on the inputs (step 1/(2γ) by
    default, exact for strongly concave inner problems when γ exceeds the loss curvature);
    the returned value's gradient in the model parameters is that at the adversarial inputs.
    ``loss_fn`` must return per-sample losses (reduction="none").
    """
    g = check_nonneg("gamma", gamma)
    if g == 0:
        raise InvalidParameterError("gamma=0 is not allowed; the penalty must be > 0")
    if int(steps) < 0:
        raise InvalidParameterError(f"steps={steps!r} must be >= 0")
    lr = 1.0 / (2.0 * g) if step_size is None else check_nonneg("step_size", step_size)
    x0 = x.detach()
    x_adv = x0.clone()
    for _ in range(int(steps)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            per = _check_losses(loss_fn(model(x_adv), y))
            phi = per.sum() - g * ((x_adv - x0) ** 2).sum()
            (grad,) = torch.autograd.grad(phi, x_adv)
        x_adv = (x_adv + lr * grad).detach()
    per = _check_losses(loss_fn(model(x_adv), y))
    cost = ((x_adv - x0) ** 2).flatten(1).sum(1) if x0.ndim > 1 else (x_adv - x0) ** 2
    return (per - g * cost).mean()
