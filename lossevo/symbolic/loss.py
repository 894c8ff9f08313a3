"""SymbolicLoss: an expression applied to model outputs, as a torch.nn.Module.

The elementwise expression ``f(y_pred, y_true)`` is lifted to a loss the way GANetic-style
searches use it: for classification ``y_pred`` is the softmax probability and ``y_true`` the
one-hot entry, summed over classes; for binary tasks ``y_pred`` is the sigmoid probability; for
regression ``f`` sees the raw prediction and target. The last axis ``f`` sees is the class axis
of the class reductions ``csum``/``cmax``: binary and regression tasks get a single-output axis
there, so the reductions are the identity. ``reduction="none"`` returns per-sample losses, the
contract with :mod:`dro`'s risks.

``t``, the fraction of training done, is an argument of the call and a settable attribute
(default 1.0, the loss at the end of training); :func:`lossevo.evaluation.training.train_models`
passes the current value to every loss whose ``uses_t`` is true.
"""

from __future__ import annotations

import torch
from torch import nn

from lossevo.symbolic.compile import compile_expression
from lossevo.symbolic.kinds import KINDS, TaskKind, task_kind
from lossevo.validation import not_allowed

__all__ = ["KINDS", "REDUCTIONS", "SymbolicLoss", "one_hot", "per_sample_loss"]

REDUCTIONS = ("mean", "sum", "none")


def one_hot(targets: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot encoding by comparison, which (unlike in-place scatter) works under vmap."""
    classes = torch.arange(num_classes, device=targets.device)
    return (targets.unsqueeze(-1) == classes).to(dtype)


# Exported modules copy this function's source and import only torch: it compares ``kind``
# with the plain spellings of TaskKind (a member equals its string) and keeps its own wording.
def per_sample_loss(fn, outputs: torch.Tensor, targets: torch.Tensor, kind: str,
                    t: float | torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample losses of ``fn(y_pred, y_true)`` for the given task kind; with ``t`` (the
    fraction of training done, in [0, 1]) the call is ``fn(y_pred, y_true, t)``."""
    if t is None:
        extra = ()
    elif isinstance(t, torch.Tensor) or (isinstance(t, int | float) and 0 <= t <= 1):
        extra = (t,)
    else:
        raise ValueError(f"t = {t!r} is not allowed; allowed: a number in [0, 1] (the fraction "
                         "of training done)")
    if kind == "classification":
        p = torch.softmax(outputs, dim=-1)
        return fn(p, one_hot(targets, outputs.shape[-1], p.dtype), *extra).sum(dim=-1)
    if kind == "binary":
        if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        p = torch.sigmoid(outputs).unsqueeze(-1)  # a single-output class axis
        return fn(p, targets.to(p.dtype).unsqueeze(-1), *extra).squeeze(-1)
    if kind == "regression":
        if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        losses = fn(outputs.unsqueeze(-1), targets.to(outputs.dtype).unsqueeze(-1), *extra)
        losses = losses.squeeze(-1)
        return losses.flatten(start_dim=1).mean(dim=1) if losses.dim() > 1 else losses
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


class SymbolicLoss(nn.Module):
    """A loss module compiled from an expression text (see module docstring).

    >>> loss = SymbolicLoss("mul(-1.0, mul(y_true, log(y_pred)))")  # cross-entropy
    >>> loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])).item()  # doctest: +ELLIPSIS
    1.0986...
    """

    def __init__(self, expr: str, kind: str = TaskKind.CLASSIFICATION, reduction: str = "mean",
                 t: float = 1.0):
        super().__init__()
        kind = task_kind(kind)
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:
            raise not_allowed("t", t, "a number in [0, 1]")
        self.expression = expr
        self.kind = kind
        self.reduction = reduction
        self.t = float(t)
        self._fn = compile_expression(expr)

    @property
    def uses_t(self) -> bool:
        """Whether the loss depends on ``t``, so that a trainer must pass it."""
        return self._fn.uses_t

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor,
                t: float | None = None) -> torch.Tensor:
        """Losses at the fraction of training done ``t`` (default: the attribute ``t``)."""
        t = self.t if t is None else t
        losses = per_sample_loss(self._fn, outputs, targets, self.kind, t)
        if self.reduction == "mean":
            return losses.mean()
        if self.reduction == "sum":
            return losses.sum()
        return losses

    def extra_repr(self) -> str:
        return f"{self.expression!r}, kind={str(self.kind)!r}, reduction={self.reduction!r}"

    # The compiled function is generated code and cannot be pickled: rebuild it from the text.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fn", None)
        return state

    def __setstate__(self, state):
        state.setdefault("t", 1.0)  # pickled before losses had a schedule
        self.__dict__.update(state)
        self._fn = compile_expression(self.expression)
