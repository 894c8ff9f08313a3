"""SymbolicLoss: an expression applied to model outputs, as a torch.nn.Module.

The elementwise expression ``f(y_pred, y_true)`` is lifted to a loss the way GANetic-style
searches use it: for classification ``y_pred`` is the softmax probability and ``y_true`` the
one-hot entry, summed over classes; for binary tasks ``y_pred`` is the sigmoid probability; for
regression ``f`` sees the raw prediction and target. ``reduction="none"`` returns per-sample
losses, the contract with :mod:`dro`'s risks.
"""

from __future__ import annotations

import torch
from torch import nn

from lossevo.compile import compile_expression

__all__ = ["KINDS", "REDUCTIONS", "SymbolicLoss", "one_hot", "per_sample_loss"]

KINDS = ("classification", "binary", "regression")
REDUCTIONS = ("mean", "sum", "none")


def one_hot(targets: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot encoding by comparison, which (unlike in-place scatter) works under vmap."""
    classes = torch.arange(num_classes, device=targets.device)
    return (targets.unsqueeze(-1) == classes).to(dtype)


def per_sample_loss(fn, outputs: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample losses of an elementwise function ``fn`` for the given task kind."""
    if kind == "classification":
        p = torch.softmax(outputs, dim=-1)
        return fn(p, one_hot(targets, outputs.shape[-1], p.dtype)).sum(dim=-1)
    if kind == "binary":
        if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        p = torch.sigmoid(outputs)
        return fn(p, targets.to(p.dtype))
    if kind == "regression":
        if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        losses = fn(outputs, targets.to(outputs.dtype))
        return losses.flatten(start_dim=1).mean(dim=1) if losses.dim() > 1 else losses
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


class SymbolicLoss(nn.Module):
    """A loss module compiled from an expression text (see module docstring).

    >>> loss = SymbolicLoss("mul(-1.0, mul(y_true, log(y_pred)))")  # cross-entropy
    >>> loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])).item()  # doctest: +ELLIPSIS
    1.0986...
    """

    def __init__(self, expr: str, kind: str = "classification", reduction: str = "mean"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")
        self.expression = expr
        self.kind = kind
        self.reduction = reduction
        self._fn = compile_expression(expr)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        losses = per_sample_loss(self._fn, outputs, targets, self.kind)
        if self.reduction == "mean":
            return losses.mean()
        if self.reduction == "sum":
            return losses.sum()
        return losses

    def extra_repr(self) -> str:
        return f"{self.expression!r}, kind={self.kind!r}, reduction={self.reduction!r}"

    # The compiled function is generated code and cannot be pickled: rebuild it from the text.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fn", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._fn = compile_expression(self.expression)
