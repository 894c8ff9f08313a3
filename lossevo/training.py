"""Batched multi-instance training: M models (candidates × instances) in one vmap'd step.

Every model has its own parameters, its own training labels and its own data order, and each
candidate's loss is applied only to its slice of the stacked outputs. The step sums the
per-model mean losses, so each model receives exactly its own gradient; Adam is applied
as `torch.optim.Adam` over the stacked tensors (elementwise, so stacking does not change
it). A candidate whose loss raises or goes non-finite is dropped
from the sum; its neighbours in the batch are untouched because no gradient crosses models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lossevo.models import Params, stacked_forward
from lossevo.tasks import Budget

__all__ = ["Group", "TrainResult", "data_orders", "make_adam", "train_models"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Group:
    """One candidate's slice [start, stop) of the stacked models and its per-sample loss
    (outputs (n, C), targets (n,)) -> (n,)."""

    loss: LossFn
    start: int
    stop: int


@dataclass
class TrainResult:
    params: Params
    failures: list[str | None]  # per group: None, or why it was rejected


def make_adam(params: Sequence[torch.Tensor], budget: Budget) -> torch.optim.Adam:
    """torch.optim.Adam on the stacked leaves: Adam is elementwise, so one optimizer over
    stacked tensors is exactly one Adam per model. The fused kernel (one pass over the
    state, CPU and CUDA) is used where this torch build has it."""
    try:
        return torch.optim.Adam(params, lr=budget.lr, weight_decay=budget.weight_decay,
                                fused=True)
    except (RuntimeError, ValueError):  # pragma: no cover - older torch / unusual device
        return torch.optim.Adam(params, lr=budget.lr, weight_decay=budget.weight_decay)


def _like(leaf: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(leaf).copy_(grad)


def data_orders(seeds: Sequence[int], n: int, epochs: int) -> list[torch.Tensor]:
    """Per epoch, a (len(seeds), n) tensor of permutations, one generator per seed (CPU),
    so a model's data order depends only on its own seed."""
    gens = {s: torch.Generator().manual_seed(int(s)) for s in dict.fromkeys(seeds)}
    orders = []
    for _ in range(epochs):
        perms = {s: torch.randperm(n, generator=g) for s, g in gens.items()}
        orders.append(torch.stack([perms[s] for s in seeds]))
    return orders


def _group_losses(
    groups: Sequence[Group], alive: list[bool], failures: list[str | None],
    out: torch.Tensor, yb: torch.Tensor,
) -> list[torch.Tensor]:
    losses = []
    for g, grp in enumerate(groups):
        if not alive[g]:
            continue
        k = grp.stop - grp.start
        try:
            per_sample = grp.loss(
                out[grp.start:grp.stop].reshape(-1, out.shape[-1]),
                yb[grp.start:grp.stop].reshape(-1),
            )
            if not per_sample.requires_grad:
                raise ValueError("loss does not depend on the model outputs")
            losses.append(per_sample.reshape(k, -1).mean(1))
        except Exception as exc:  # a candidate's bug must not stop the batch
            alive[g] = False
            failures[g] = f"loss raised {type(exc).__name__}: {exc}"
    return losses


def train_models(
    module: torch.nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: Sequence[Group],
    budget: Budget,
    order_seeds: Sequence[int],
    shared_x: bool,
) -> TrainResult:
    """Train all stacked models for `budget.epochs` epochs (last batch partial, like a
    DataLoader without drop_last). x: (N, D) if `shared_x` else (M, N, D); y: (M, N)."""
    device = y.device
    n_models, n = y.shape
    # Weights are stored with the memory layout vmap gives their gradients ((M, out, in) with
    # `in` outermost), so gradients need no copy before the fused Adam kernel.
    leaves = {k: (v.detach().transpose(-1, -2).contiguous().transpose(-1, -2) if v.dim() == 3
                  else v.detach().clone()).requires_grad_(True) for k, v in params.items()}
    leaf_list = list(leaves.values())
    opt = make_adam(leaf_list, budget)
    failures: list[str | None] = [None] * len(groups)
    alive = [True] * len(groups)
    rows = torch.arange(n_models, device=device).unsqueeze(1)
    bs = budget.batch_size
    live_key: tuple[bool, ...] = ()
    live = rows[:0, 0]
    for epoch, order in enumerate(data_orders(order_seeds, n, budget.epochs)):
        order = order.to(device)
        finite = torch.ones(n_models, dtype=torch.bool, device=device)
        for start in range(0, n, bs):
            idx = order[:, start:start + bs]
            xb = x[idx] if shared_x else x[rows, idx]
            out = stacked_forward(module, leaves, xb, shared=False)
            losses = _group_losses(groups, alive, failures, out, torch.gather(y, 1, idx))
            if not losses:
                break
            per_model = torch.cat(losses)
            if live_key != tuple(alive):
                live_key = tuple(alive)
                live = torch.tensor(
                    [m for gr, a in zip(groups, alive, strict=True) if a
                     for m in range(gr.start, gr.stop)], device=device)
            finite[live] &= torch.isfinite(per_model.detach())
            grads = torch.autograd.grad(per_model.sum(), leaf_list)
            for leaf, grad in zip(leaf_list, grads, strict=True):
                # The fused kernel needs the gradient in the parameter's own memory layout
                # (it silently computes garbage otherwise).
                leaf.grad = grad if grad.stride() == leaf.stride() else _like(leaf, grad)
            opt.step()
        ok = finite.cpu()
        for g, grp in enumerate(groups):
            if alive[g] and not bool(ok[grp.start:grp.stop].all()):
                alive[g] = False
                failures[g] = f"non-finite training loss (nan/inf) in epoch {epoch + 1}"
        if not any(alive):
            break
    final = {k: v.detach() for k, v in leaves.items()}
    for g, grp in enumerate(groups):
        if alive[g] and not all(bool(torch.isfinite(v[grp.start:grp.stop]).all())
                                for v in final.values()):
            failures[g] = "non-finite parameters after training"
    return TrainResult(final, failures)
