"""Schemes that reweight or re-target the per-sample losses of the clean batch, and SAM.

All of them act on the (M, b) per-sample base losses of the M stacked models, row by row, so
each model is trained exactly as if alone. The DRO weights (χ², CVaR, group DRO) are dro's
own batched forms, which solve each row as its own problem. Per-sample state (ELR and SAT
targets) is indexed by the sample's position in the training set, per model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dro.nn import group_dro_step, worst_case_risk, worst_case_weights
from lossevo.baselines.scheme_base import BaselineScheme, SeedStreams
from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.environments import shifted_set
from lossevo.evaluation.models import Params
from lossevo.evaluation.tasks import EnvKind, Task
from lossevo.evaluation.training import Batch, SchemeContext
from lossevo.symbolic.loss import one_hot

__all__ = [
    "GROUP_ENV_KINDS",
    "CVaRDRO",
    "Chi2DRO",
    "ClassWeightedERM",
    "EarlyLearningRegularization",
    "GroupDRO",
    "SelfAdaptiveTraining",
    "SharpnessAwareMinimization",
    "class_weights",
    "cvar_weights_rows",
    "group_dro_step",
]

GROUP_ENV_KINDS = (EnvKind.GAUSS, EnvKind.ROTATE, EnvKind.TRANSLATE, EnvKind.RESCALE)


def _rows(n_models: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n_models, device=device).unsqueeze(1)


def class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(M, C) weights n / (C_present · n_c) per model (scikit-learn's 'balanced'): the
    weighted training set has mean weight 1 and every present class the same total weight."""
    counts = one_hot(y, n_classes, torch.float64).sum(1)
    present = (counts > 0).sum(1, keepdim=True)
    w = y.shape[1] / (present * counts.clamp_min(1.0))
    return torch.where(counts > 0, w, torch.zeros_like(w)).to(torch.float32)


@dataclass(frozen=True, repr=False)
class ClassWeightedERM(BaselineScheme):
    """Class-weighted ERM: each sample weighted by the inverse frequency of its (noisy) label
    in its instance's training set (the 'balanced' heuristic of King & Zeng 2001)."""

    name = "cw_erm"

    def init_state(self, ctx: SchemeContext) -> torch.Tensor:
        return class_weights(ctx.y, ctx.n_classes)

    def objective(self, state: torch.Tensor, batch: Batch, params: Params) -> torch.Tensor:
        per = batch.per_sample(batch.forward(params, batch.x), batch.y)
        return (torch.gather(state, 1, batch.y).to(per.dtype) * per).mean(1)


@dataclass(frozen=True, repr=False)
class Chi2DRO(BaselineScheme):
    """χ²-DRO on each batch (Levy, Carmon, Duchi & Sidford 2020); radius 2 in dro's convention
    (no ½) is their uncertainty-set size ρ = 1 (divergence ½·mean((nq − 1)²))."""

    name = "chi2_dro"
    radius: float = 2.0

    def __post_init__(self) -> None:
        self._number("radius", 0.0)

    def objective(self, state: Any, batch: Batch, params: Params) -> torch.Tensor:
        per = batch.per_sample(batch.forward(params, batch.x), batch.y)
        return worst_case_risk(per, "chi2", self.radius)


def cvar_weights_rows(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """Row-wise `dro.cvar_weights` for (M, b) losses: 1/(αb) on the ⌊αb⌋ largest, the
    remaining mass on the next one (ties: stable descending order), all rows in one sort."""
    return worst_case_weights(losses, "cvar", alpha)


@dataclass(frozen=True, repr=False)
class CVaRDRO(BaselineScheme):
    """CVaR-DRO on each batch (Levy et al. 2020): the mean of the worst α fraction; α = 0.1 is
    the CVaR level of their ImageNet and MNIST experiments."""

    name = "cvar_dro"
    alpha: float = 0.1

    def __post_init__(self) -> None:
        self._number("alpha", 0.0, 1.0, lo_open=True, hi_open=True)

    def objective(self, state: Any, batch: Batch, params: Params) -> torch.Tensor:
        per = batch.per_sample(batch.forward(params, batch.x), batch.y)
        return worst_case_risk(per, "cvar", self.alpha)


# `group_dro_step(q, losses, groups, eta)` is dro's batched online step (re-exported): group
# means of the (M, b) losses, q ← q·exp(η·mean) over the groups present, normalised; risk
# Σ q_g mean_g. Returns (new q (M, G), risk (M,)), each model as `dro.GroupDRO` alone.


@dataclass
class _GroupState:
    q: torch.Tensor  # (M, G)
    x: torch.Tensor | None  # (U, N, D) grouped inputs per instance, None: the batch's own
    groups: torch.Tensor | None  # (U, N) group ids, None: the (noisy) labels
    owner: torch.Tensor  # model -> instance row


def _environment_groups(ctx: SchemeContext, task: Task, streams: SeedStreams
                        ) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """Each training sample of an instance moved into one group: the clean data or one of the
    task's input-shift environments (balanced random assignment, drawn per instance)."""
    envs = [e for e in task.environments if e.kind in GROUP_ENV_KINDS]
    if not envs:
        return None
    data = load_dataset(task)
    first = {int(u): m for m, u in reversed(list(enumerate(streams.owner.tolist())))}
    xs, gs = [], []
    for u, rng in enumerate(streams.rngs):
        x = (ctx.x if ctx.shared_x else ctx.x[first[u]]).cpu().numpy()
        copies = np.stack([x] + [shifted_set(e, x, data.y_train, data.image_shape, rng)[0]
                                 for e in envs])
        g = rng.permutation(len(x)) % copies.shape[0]
        xs.append(copies[g, np.arange(len(x))])
        gs.append(g)
    dev = ctx.y.device
    return (torch.as_tensor(np.stack(xs), dtype=torch.float32, device=dev),
            torch.as_tensor(np.stack(gs), device=dev), len(envs) + 1)


@dataclass(frozen=True, repr=False)
class GroupDRO(BaselineScheme):
    """Online group DRO (Sagawa et al. 2020, η_q = 0.01). Groups: clean data plus the task's
    gauss/rotate/translate/rescale environments applied to training inputs; if it has none,
    the (noisy) classes."""

    name = "group_dro"
    eta: float = 0.01

    def __post_init__(self) -> None:
        self._number("eta", 0.0)

    def init_state(self, ctx: SchemeContext) -> _GroupState:
        streams = SeedStreams(ctx.seeds, ctx.y.device)
        built = None if ctx.task is None else _environment_groups(ctx, ctx.task, streams)
        x, groups, n_groups = built if built is not None else (None, None, ctx.n_classes)
        q = torch.full((ctx.y.shape[0], n_groups), 1.0 / n_groups, device=ctx.y.device)
        return _GroupState(q, x, groups, streams.owner)

    def objective(self, state: _GroupState, batch: Batch, params: Params) -> torch.Tensor:
        own = state.owner.unsqueeze(1)
        xb = batch.x if state.x is None else state.x[own, batch.idx]
        gb = batch.y if state.groups is None else state.groups[own, batch.idx]
        per = batch.per_sample(batch.forward(params, xb), batch.y)
        state.q, risk = group_dro_step(state.q, per, gb, self.eta)
        return risk


@dataclass
class _TargetState:
    t: torch.Tensor  # (M, N, C) per-sample targets
    rows: torch.Tensor
    warmup: int = 0


@dataclass(frozen=True, repr=False)
class EarlyLearningRegularization(BaselineScheme):
    """ELR (Liu et al. 2020): targets t_i ← βt_i + (1−β)p_i, loss + λ·log(1 − ⟨p_i, t_i⟩);
    β = 0.7, λ = 3 are their CIFAR-10 values."""

    name = "elr"
    beta: float = 0.7
    lam: float = 3.0

    def __post_init__(self) -> None:
        self._number("beta", 0.0, 1.0, hi_open=True)
        self._number("lam", 0.0)

    def init_state(self, ctx: SchemeContext) -> _TargetState:
        m, n = ctx.y.shape
        return _TargetState(torch.zeros(m, n, ctx.n_classes, device=ctx.y.device),
                            _rows(m, ctx.y.device))

    def objective(self, state: _TargetState, batch: Batch, params: Params) -> torch.Tensor:
        out = batch.forward(params, batch.x)
        per = batch.per_sample(out, batch.y)
        p = torch.softmax(out, -1).clamp(1e-4, 1.0 - 1e-4)  # their clamp keeps log finite
        with torch.no_grad():
            pd = p.detach()
            t = self.beta * state.t[state.rows, batch.idx] + (1 - self.beta) * (
                pd / pd.sum(-1, keepdim=True))
            state.t[state.rows, batch.idx] = t
        return (per + self.lam * torch.log(1.0 - (t * p).sum(-1))).mean(1)


@dataclass(frozen=True, repr=False)
class SelfAdaptiveTraining(BaselineScheme):
    """SAT (Huang et al. 2020): after a warm-up, soft targets t_i ← αt_i + (1−α)p_i and the
    loss weighted by max_j t_ij; α = 0.9, warm-up E_s = 60 of 200 epochs → 0.3 of the budget."""

    name = "sat"
    alpha: float = 0.9
    warmup: float = 0.3

    def __post_init__(self) -> None:
        self._number("alpha", 0.0, 1.0)
        self._number("warmup", 0.0, 1.0)

    def init_state(self, ctx: SchemeContext) -> _TargetState:
        t = one_hot(ctx.y, ctx.n_classes, torch.float32)
        return _TargetState(t, _rows(ctx.y.shape[0], ctx.y.device),
                            round(self.warmup * ctx.budget.epochs))

    def objective(self, state: _TargetState, batch: Batch, params: Params) -> torch.Tensor:
        out = batch.forward(params, batch.x)
        if batch.epoch < state.warmup:
            return batch.per_sample(out, batch.y).mean(1)
        with torch.no_grad():
            t = self.alpha * state.t[state.rows, batch.idx] + (1 - self.alpha) * torch.softmax(
                out.detach(), -1)
            state.t[state.rows, batch.idx] = t
        # Soft targets through any base loss: E_{j~t_i} ℓ(f(x_i), j) (= soft CE for CE).
        soft = sum(t[..., j] * batch.per_sample(out, torch.full_like(batch.y, j))
                   for j in range(out.shape[-1]))
        w = t.max(-1).values
        return (w * soft).sum(1) / w.sum(1)


@dataclass(frozen=True, repr=False)
class SharpnessAwareMinimization(BaselineScheme):
    """SAM (Foret et al. 2021, ρ = 0.05): the gradient at w + ρ·g/‖g‖ (norm per model over all
    its parameters) steps the base optimizer (Adam here)."""

    name = "sam"
    rho: float = 0.05

    def __post_init__(self) -> None:
        self._number("rho", 0.0)

    def gradients(self, state: Any, batch: Batch, params: Params
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        per_model, grads = super().gradients(state, batch, params)
        with torch.no_grad():
            norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads))
            scale = self.rho / (norm + 1e-12)
            step = [g * scale.view(-1, *[1] * (g.dim() - 1)) for g in grads]
        # w + e with e constant: the gradient in the leaf w is the one at w + e.
        shifted = {k: v + e for (k, v), e in zip(params.items(), step, strict=True)}
        at_shift = self.objective(state, batch, shifted)
        return per_model, torch.autograd.grad(at_shift.sum(), list(params.values()))
