"""Scale probe: how large a loss and its gradient are on typical inputs, and the bounds.

Adam ignores a positive factor on the loss, so a campaign trained with it cannot see scale:
protected division by ``y_true`` turns ``a/y_true`` into ``a/1e-7`` on every non-target class,
and ``div(div(p, y_true), y_true)`` is ≈ 1e14·(1 − p_y) plus a constant — MAE at an absurd
scale that scores like MAE under Adam and overflows under SGD or in float16. The probe measures,
on a fixed seeded batch of typical inputs in float64, the 90th percentile of the per-sample
|loss| and of the norm of each sample's gradient with respect to the model outputs (what any
optimizer sees); :func:`lossevo.symbolic.probes.check_expression` rejects a loss beyond either
bound.

A percentile, not the mean: a denominator that crosses zero inside the domain (a pole) makes the
mean heavy-tailed, so the verdict would depend on the seed (measured: 2e3..2e5 over four
seeds); not the median: on binary tasks a ``y_true`` division touches only the samples with
``y = 0``, half of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from lossevo.symbolic.compile import compile_expression
from lossevo.symbolic.kinds import TaskKind, task_kind
from lossevo.symbolic.loss import per_sample_loss

__all__ = ["MAX_GRADIENT", "MAX_VALUE", "TYPICAL_INPUTS", "Scale", "measure_scale"]

# Bounds: over a thousand times cross-entropy (|loss| 6.7, gradient norm 1.3 here) and MSE
# (5.8, 4.8), and below float16's largest number (65504). Measured on the 259 distinct trees
# that passed the other probes in the two campaigns under runs/: the 232 kept stay below 2.8e3
# in both; the 27 rejected reach 1.9e6..1.2e15 in one or both — protected division by
# y_true = 0, log(0) = log(1e-7) inside exp, exp clamped at e^30 on the non-target classes.
MAX_VALUE = 1e4
MAX_GRADIENT = 1e4
_SEED = 20260412
_SAMPLES = 256
_CLASSES = 10
_QUANTILE = 0.9
_LOGIT_STD = 2.0  # near-uniform to confident softmax rows: p from ~1e-5 to ~0.99
_TIMES = (0.0, 0.5, 1.0)  # fractions of training done, for losses that use the terminal t
TYPICAL_INPUTS = {
    TaskKind.CLASSIFICATION: f"{_SAMPLES} rows of {_CLASSES} logits ~ N(0, {_LOGIT_STD:g}²), "
                      "uniform labels (y_pred = softmax, y_true = one-hot)",
    TaskKind.BINARY: f"{_SAMPLES} logits ~ N(0, {_LOGIT_STD:g}²), labels 0/1 (y_pred = sigmoid)",
    TaskKind.REGRESSION: f"{_SAMPLES} standardized predictions and targets, each ~ N(0, 1)",
}


@dataclass(frozen=True)
class Scale:
    """A loss's scale on :data:`TYPICAL_INPUTS` for its kind: ``value`` is the 90th percentile
    of the per-sample |loss|, ``gradient`` that of the norm of a sample's gradient with respect
    to the model outputs (logits for classification and binary, predictions for regression)."""

    kind: TaskKind
    value: float
    gradient: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", task_kind(self.kind))  # also from a plain string

    def problems(self) -> list[str]:
        """Why the loss is beyond the bounds (empty when within): it would overflow float16 or
        need a learning rate far from any that trains cross-entropy under SGD."""
        out = []
        if not self.value <= MAX_VALUE:  # `not <=` also catches nan
            out.append(f"scale: |loss| {self.value:.3g} (90th percentile on typical "
                       f"{self.kind} inputs) is beyond the bound {MAX_VALUE:.3g}")
        if not self.gradient <= MAX_GRADIENT:
            out.append(f"scale: gradient norm {self.gradient:.3g} (90th percentile on typical "
                       f"{self.kind} inputs) is beyond the bound {MAX_GRADIENT:.3g}")
        return out

    @property
    def unit_factor(self) -> float:
        """The power of ten that brings the gradient scale within √10 of 1 (cross-entropy's):
        multiply the loss by it to reuse learning rates tuned for cross-entropy with SGD.
        1.0 when the gradient is zero or not finite (nothing to rescale)."""
        if not 0 < self.gradient < math.inf:
            return 1.0
        return 10.0 ** -round(math.log10(self.gradient))

    def as_dict(self) -> dict[str, float | str]:
        """Plain data for exported modules and records: the measurements, the bounds and the
        inputs they were measured on (the kind as its plain string: exported files hold no
        enum)."""
        return {**asdict(self), "kind": str(self.kind), "max_value": MAX_VALUE,
                "max_gradient": MAX_GRADIENT, "unit_factor": self.unit_factor,
                "inputs": TYPICAL_INPUTS[self.kind]}


def _typical_inputs(kind: TaskKind) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(_SEED)
    if kind == TaskKind.CLASSIFICATION:
        outputs = torch.randn(_SAMPLES, _CLASSES, generator=gen, dtype=torch.float64)
        return outputs * _LOGIT_STD, torch.randint(0, _CLASSES, (_SAMPLES,), generator=gen)
    if kind == TaskKind.BINARY:
        outputs = torch.randn(_SAMPLES, generator=gen, dtype=torch.float64) * _LOGIT_STD
        return outputs, torch.randint(0, 2, (_SAMPLES,), generator=gen).to(torch.float64)
    outputs = torch.randn(_SAMPLES, generator=gen, dtype=torch.float64)
    return outputs, torch.randn(_SAMPLES, generator=gen, dtype=torch.float64)


def _percentile(x: torch.Tensor) -> float:
    # One non-finite sample would end training (lossevo.evaluation.training), so it is beyond any
    # bound.
    return float(x.quantile(_QUANTILE)) if torch.isfinite(x).all() else math.inf


def measure_scale(expr: str, kind: str = TaskKind.CLASSIFICATION) -> Scale:
    """The :class:`Scale` of an expression text for a loss kind (see :data:`TYPICAL_INPUTS`).

    Deterministic (a fixed seed, float64), so an exported loss carries the same numbers as the
    campaign saw. A loss that uses ``t`` (the fraction of training done) is measured at
    t = 0, 0.5 and 1 and gets the largest of each. Raises ValueError for invalid text or an
    unknown kind.
    """
    kind = task_kind(kind)
    fn = compile_expression(expr)
    # A loss on a schedule is measured along it; its scale is the worst point.
    times = _TIMES if getattr(fn, "uses_t", False) else (None,)
    value = gradient = 0.0
    for t in times:
        outputs, targets = _typical_inputs(kind)
        outputs.requires_grad_(True)
        extra = () if t is None else (t,)
        losses = per_sample_loss(fn, outputs, targets, kind, *extra)
        value = max(value, _percentile(losses.detach().abs()))
        if losses.requires_grad:  # else free of y_pred: no gradient reaches the outputs
            # Each sample's loss reads only its own row: the gradient of the sum is per sample.
            (grad,) = torch.autograd.grad(losses.sum(), outputs)
            norms = grad.norm(dim=-1) if grad.dim() > 1 else grad.abs()
            gradient = max(gradient, _percentile(norms))
    return Scale(kind, value, gradient)
