"""Batched multi-instance training: M models (candidates × instances) in one vmap'd step.

Every model has its own parameters, its own training labels and its own data order, and each
candidate's loss is applied only to its slice of the stacked outputs. The step sums the
per-model mean losses, so each model receives exactly its own gradient; the task's optimizer
(Adam or SGD with momentum, lossevo.evaluation.optimizers) is applied over the stacked tensors
(elementwise, so stacking does not change it). A candidate whose loss raises or goes
non-finite is dropped from the sum; its neighbours in the batch are untouched because no
gradient crosses models.

Losses may follow a schedule: one whose `uses_t` attribute is true (a `SymbolicLoss` whose
expression has the terminal `t`) is called as `loss(outputs, targets, t=t)` with `t` the
fraction of training done before the current step, `k / K` for step k = 0..K−1 of the
K = epochs·⌈N / batch_size⌉ steps (so `t` runs from 0 to 1 − 1/K, the same for every model).
Other losses are called as before.

A `TrainingScheme` is the hook for training schemes (lossevo.baselines.schemes): it turns a
batch into per-model objectives (and may take its own step, e.g. SAM's two gradients). The
base class is plain training, so `scheme=None` is exactly the loop without a hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lossevo.evaluation.models import Params, stacked_forward
from lossevo.evaluation.optimizers import make_optimizer
from lossevo.evaluation.tasks import Budget, Task

__all__ = [
    "Batch",
    "Group",
    "SchemeContext",
    "TrainResult",
    "TrainingScheme",
    "data_orders",
    "train_models",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Group:
    """One candidate's slice [start, stop) of the stacked models and its per-sample loss
    (outputs (n, C), targets (n,)) -> (n,), given `t=` too when its `uses_t` is true."""

    loss: LossFn
    start: int
    stop: int


@dataclass
class TrainResult:
    params: Params
    failures: list[str | None]  # per group: None, or why it was rejected


def _like(leaf: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(leaf).copy_(grad)


def data_orders(seeds: Sequence[int], n: int, epochs: int) -> Iterator[torch.Tensor]:
    """Per epoch, a (len(seeds), n) tensor of permutations, one generator per seed (CPU),
    so a model's data order depends only on its own seed. Built one epoch at a time: memory
    does not grow with the number of epochs."""
    gens = {s: torch.Generator().manual_seed(int(s)) for s in dict.fromkeys(seeds)}
    for _ in range(epochs):
        perms = {s: torch.randperm(n, generator=g) for s, g in gens.items()}
        yield torch.stack([perms[s] for s in seeds])


class _NothingAlive(Exception):
    """Every candidate of the batch has been rejected: training stops."""


def _per_sample(
    groups: Sequence[Group], alive: list[bool], failures: list[str | None],
    out: torch.Tensor, yb: torch.Tensor, t: float = 1.0,
) -> torch.Tensor:
    """(M, n) per-sample losses, each group's loss on its own rows (at the fraction of
    training done `t` where the loss `uses_t`); rows of rejected groups are zeros (no gradient
    reaches their models)."""
    rows = []
    for g, grp in enumerate(groups):
        k = grp.stop - grp.start
        if alive[g]:
            try:
                args = (out[grp.start:grp.stop].reshape(-1, out.shape[-1]),
                        yb[grp.start:grp.stop].reshape(-1))
                uses_t = getattr(grp.loss, "uses_t", False)
                per_sample = grp.loss(*args, t=t) if uses_t else grp.loss(*args)
                if not per_sample.requires_grad:
                    raise ValueError("loss does not depend on the model outputs")
                rows.append(per_sample.reshape(k, yb.shape[1]))
                continue
            except Exception as exc:  # a candidate's bug must not stop the batch
                alive[g] = False
                failures[g] = f"loss raised {type(exc).__name__}: {exc}"
        rows.append(out.new_zeros(k, yb.shape[1]))
    if not any(alive):
        raise _NothingAlive
    return torch.cat(rows)


@dataclass(frozen=True)
class SchemeContext:
    """What a scheme may look at before training: the M models' training data (x (N, D) if
    `shared_x` else (M, N, D); noisy labels y (M, N)), one seed per model for the scheme's own
    randomness (models of the same instance share it), and the task (None outside fitness)."""

    x: torch.Tensor
    y: torch.Tensor
    shared_x: bool
    n_classes: int
    seeds: tuple[int, ...]
    budget: Budget
    task: Task | None = None


@dataclass
class Batch:
    """One training step as a scheme sees it: inputs x (M, b, D), labels y (M, b), sample
    indices idx (M, b) for per-sample state, the epoch, `forward(params, x)` -> outputs
    (M, n, C), `per_sample(outputs, y)` -> (M, n) losses of each candidate's base loss, and
    `t`, the fraction of training done before this step (see the module docstring)."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    epoch: int
    forward: Callable[[Params, torch.Tensor], torch.Tensor]
    per_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    t: float = 0.0


class TrainingScheme:
    """Plain training: per model, the mean of the base loss over the batch. Subclasses change
    `objective` (reweighting, augmentation, adversarial inputs) or `gradients` (SAM)."""

    name = "plain"

    def applies_to(self, task: Task) -> str | None:
        """None, or why this scheme cannot train on `task`."""
        return None

    def init_state(self, ctx: SchemeContext) -> Any:
        """Per-run mutable state (e.g. per-sample targets); None when stateless."""
        return None

    def objective(self, state: Any, batch: Batch, params: Params) -> torch.Tensor:
        """(M,) per-model objective whose gradient trains each model."""
        return batch.per_sample(batch.forward(params, batch.x), batch.y).mean(1)

    def gradients(
        self, state: Any, batch: Batch, params: Params
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(per-model objective, gradients for the leaves of `params` in order)."""
        per_model = self.objective(state, batch, params)
        return per_model, torch.autograd.grad(per_model.sum(), list(params.values()))


_PLAIN = TrainingScheme()


def _weight_l1(groups: Sequence[Group], n_models: int, device: torch.device
               ) -> torch.Tensor | None:
    """(M,) weight δ of the penalty δ‖θ‖₁ that each model's loss asks for through a
    `weight_l1` attribute (ANL-CE); None when no loss asks for one."""
    deltas = [float(getattr(grp.loss, "weight_l1", 0.0) or 0.0) for grp in groups]
    if not any(deltas):
        return None
    per_model = torch.zeros(n_models, device=device)
    for grp, delta in zip(groups, deltas, strict=True):
        per_model[grp.start:grp.stop] = delta
    return per_model


def train_models(
    module: torch.nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: Sequence[Group],
    budget: Budget,
    order_seeds: Sequence[int],
    shared_x: bool,
    scheme: TrainingScheme | None = None,
    state: Any = None,
    on_epoch: Callable[[int, Params], None] | None = None,
) -> TrainResult:
    """Train all stacked models for `budget.epochs` epochs (last batch partial, like a
    DataLoader without drop_last). x: (N, D) if `shared_x` else (M, N, D); y: (M, N).
    `scheme` (with its `state` from `scheme.init_state`) changes the objective or the step;
    an exception inside the scheme rejects every candidate still alive. A loss with a
    `weight_l1` attribute δ > 0 (ANL-CE) gets δ·sign(θ), the subgradient of δ‖θ‖₁, added to
    its own models' gradients at every step, whatever the scheme. `on_epoch(epoch, params)`
    sees the (detached) parameters after every epoch, e.g. for early stopping."""
    scheme = _PLAIN if scheme is None else scheme
    device = y.device
    n_models, n = y.shape
    # Weights are stored with the memory layout vmap gives their gradients ((M, out, in) with
    # `in` outermost), so gradients need no copy before the fused optimizer kernel.
    leaves = {k: (v.detach().transpose(-1, -2).contiguous().transpose(-1, -2) if v.dim() == 3
                  else v.detach().clone()).requires_grad_(True) for k, v in params.items()}
    leaf_list = list(leaves.values())
    opt = make_optimizer(leaf_list, budget)
    l1 = _weight_l1(groups, n_models, device)
    failures: list[str | None] = [None] * len(groups)
    alive = [True] * len(groups)
    rows = torch.arange(n_models, device=device).unsqueeze(1)
    bs = budget.batch_size
    steps_per_epoch = -(-n // bs)
    progress = {"t": 0.0}  # read by per_sample, so a scheme's extra calls see this step's t

    def forward(p: Params, xb: torch.Tensor) -> torch.Tensor:
        return stacked_forward(module, p, xb, shared=False)

    def per_sample(out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return _per_sample(groups, alive, failures, out, yb, progress["t"])

    for epoch, order in enumerate(data_orders(order_seeds, n, budget.epochs)):
        order = order.to(device)
        finite = torch.ones(n_models, dtype=torch.bool, device=device)
        for step, start in enumerate(range(0, n, bs)):
            progress["t"] = (epoch * steps_per_epoch + step) / (budget.epochs * steps_per_epoch)
            idx = order[:, start:start + bs]
            xb = x[idx] if shared_x else x[rows, idx]
            batch = Batch(xb, torch.gather(y, 1, idx), idx, epoch, forward, per_sample,
                          progress["t"])
            try:
                per_model, grads = scheme.gradients(state, batch, leaves)
            except _NothingAlive:
                break
            except Exception as exc:  # the scheme itself failed: nothing can be trusted
                for g in range(len(groups)):
                    if alive[g]:
                        alive[g] = False
                        failures[g] = f"scheme {scheme!r} raised {type(exc).__name__}: {exc}"
                break
            finite &= torch.isfinite(per_model.detach())
            if l1 is not None:  # the subgradient δ·sign(θ) of a loss's δ‖θ‖₁, per model
                grads = tuple(g + l1.view(-1, *[1] * (g.dim() - 1)) * leaf.detach().sign()
                              for leaf, g in zip(leaf_list, grads, strict=True))
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
        if on_epoch is not None:
            on_epoch(epoch, {k: v.detach() for k, v in leaves.items()})
    final = {k: v.detach() for k, v in leaves.items()}
    for g, grp in enumerate(groups):
        if alive[g] and not all(bool(torch.isfinite(v[grp.start:grp.stop]).all())
                                for v in final.values()):
            failures[g] = "non-finite parameters after training"
    return TrainResult(final, failures)
