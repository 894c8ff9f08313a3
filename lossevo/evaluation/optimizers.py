"""The optimizer a task names (`budget.optimizer`), built over stacked model parameters.

Training stacks the parameters of M models into one tensor per layer; both optimizers here are
elementwise (Adam's moments, SGD's momentum buffer and coupled L2 term are per element), so one
optimizer over the stacked tensors is exactly one optimizer per model. Adam ignores a positive
scale of the loss (up to its ε); SGD's step is proportional to it. A loss that trains only
under Adam hides its scale, so a campaign can ask for both (see docs/usable-losses.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lossevo.evaluation.tasks import Budget, OptimizerName
from lossevo.validation import not_allowed

__all__ = ["ignores_loss_scale", "make_optimizer"]


def make_optimizer(params: Sequence[torch.Tensor], budget: Budget) -> torch.optim.Optimizer:
    """`budget.optimizer` over the stacked leaves: torch.optim.Adam, or torch.optim.SGD with
    heavy-ball momentum `budget.momentum`; both with `budget.lr` and the coupled L2 term
    `budget.weight_decay`. The fused kernel (one pass over the state, CPU and CUDA) is used
    where this torch build has it; it needs each gradient in its parameter's memory layout."""
    if budget.optimizer is OptimizerName.ADAM:
        cls, options = torch.optim.Adam, {}
    elif budget.optimizer is OptimizerName.SGD:
        cls, options = torch.optim.SGD, {"momentum": budget.momentum}
    else:  # pragma: no cover - Budget validates its optimizer
        raise not_allowed("budget.optimizer", budget.optimizer, ", ".join(OptimizerName))
    options |= {"lr": budget.lr, "weight_decay": budget.weight_decay}
    try:
        return cls(params, **options, fused=True)
    except (RuntimeError, ValueError):  # pragma: no cover - older torch / unusual device
        return cls(params, **options)


def ignores_loss_scale(budget: Budget) -> bool:
    """True when training with `budget` is blind to a positive factor on the loss: Adam
    without weight decay (its L2 term joins the gradient unscaled). Canonical keys and
    equivalence checks may merge scaled losses only then."""
    return budget.optimizer is OptimizerName.ADAM and budget.weight_decay == 0
