"""Differentiable DRO risks for deep models in torch, over per-sample losses.

The contract with any loss, evolved ones included, is a tensor of per-sample losses
(``reduction="none"``). The named risks (``chi2_risk``, ``cvar_risk``, ``group_dro_risk``,
``GroupDRO``) take one 1-D batch, so a stray class dimension is an error rather than a batch
of problems. ``worst_case_risk`` / ``worst_case_weights`` take losses of shape (..., n) and
any reweighting set of the registry (χ², CVaR, KL, ...): leading dims are independent
problems, e.g. stacked models, solved at once. All the math is the sets' own (dro/sets/).

The reweighting risks return the exact worst case sup_q qᵀℓ of the batch (Levy, Carmon,
Duchi & Sidford 2020) with gradient Σ q*_i ∇ℓ_i (Danskin), because q* is computed without a
graph. ``GroupDRO`` is the online algorithm of Sagawa et al. (2020);
``wasserstein_penalty_risk`` is the Lagrangian relaxation of Sinha, Namkoong & Duchi (2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dro._validation import check_nonneg
from dro.errors import InvalidParameterError
from dro.sets import ReweightingSet, get_set
from dro.sets.chi2 import CHI2
from dro.sets.cvar import CVAR
from dro.sets.group import GROUP
from dro.sets.wasserstein import penalty_risk

__all__ = [
    "GroupDRO",
    "chi2_risk",
    "chi2_weights",
    "cvar_risk",
    "cvar_weights",
    "group_dro_risk",
    "group_dro_step",
    "wasserstein_penalty_risk",
    "worst_case_risk",
    "worst_case_weights",
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


def _reweighting(ambiguity: object) -> ReweightingSet:
    return get_set(ambiguity, ReweightingSet)  # type: ignore[return-value]


def worst_case_weights(losses: Tensor, ambiguity: str, size: float) -> Tensor:
    """Worst-case q* (no graph) for losses (..., n) over the set named ``ambiguity``, sized
    by ``size``: the radius ρ for 'chi2' and 'kl', the level α for 'cvar'."""
    return _reweighting(ambiguity).weights(losses, size)


def worst_case_risk(losses: Tensor, ambiguity: str, size: float) -> Tensor:
    """sup_q Σ q_i ℓ_i for losses (..., n), shape (...): exact value, Danskin gradient."""
    return _reweighting(ambiguity).risk(losses, size)


def chi2_weights(losses: Tensor, radius: float) -> Tensor:
    """Worst-case q over {q ∈ Δ : (1/n)Σ(n q_i − 1)² ≤ radius} for these losses (no graph)."""
    return CHI2.weights(_check_losses(losses), radius)


def chi2_risk(losses: Tensor, radius: float) -> Tensor:
    """sup_q qᵀℓ over the χ² ball E[(dQ/dP̂ − 1)²] ≤ radius (no ½), differentiable."""
    return CHI2.risk(_check_losses(losses), radius)


def cvar_weights(losses: Tensor, alpha: float) -> Tensor:
    """Worst-case q with q_i ≤ 1/(α n): mass on the worst α fraction of the batch."""
    return CVAR.weights(_check_losses(losses), alpha)


def cvar_risk(losses: Tensor, alpha: float) -> Tensor:
    """CVaR_α of the batch losses (mean of the worst α fraction), differentiable."""
    return CVAR.risk(_check_losses(losses), alpha)


def group_dro_risk(losses: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    """Worst group's mean loss in the batch (groups absent from the batch are ignored)."""
    return GROUP.risk(_check_losses(losses), groups, n_groups)


def group_dro_step(q: Tensor, losses: Tensor, groups: Tensor, step_size: float
                   ) -> tuple[Tensor, Tensor]:
    """One online group-DRO step for losses and groups (..., n) and group weights q (..., G):
    returns (new q, risk (...)); each leading index is its own problem (e.g. a model)."""
    return GROUP.online_step(q, losses, groups, step_size)


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
        self.q, risk = GROUP.online_step(self.q, _check_losses(losses), groups, self.step_size)
        return risk


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
    ``loss_fn`` must return per-sample losses (reduction="none") of shape (..., n), x's
    leading dims: leading dims are independent problems and the result has shape (...).
    """
    return penalty_risk(model, loss_fn, x, y, gamma=gamma, steps=steps, step_size=step_size)
