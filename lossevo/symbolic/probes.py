"""Validity probes: cheap reasons to reject a candidate before any model is trained.

Four checks, cheapest first: the expression must depend on ``y_pred`` (otherwise no gradient
reaches the model); it must be finite, with finite gradient, on the task's domain; its value and
gradient on typical inputs must stay within the bounds of :mod:`lossevo.symbolic.scale` (a loss that
trains only because Adam ignores its 1e14 scale is not usable); and a rejection test must pass
— a batch of free predictions optimized directly with the loss for a few steps must get closer
to the targets. EvoMAL ran its expensive tuning before its cheap
rejection test; here the cheap tests always come first.
"""

from __future__ import annotations

import torch

from lossevo.symbolic.compile import compile_expression
from lossevo.symbolic.expression import Y_PRED, to_sympy
from lossevo.symbolic.kinds import TaskKind, task_kind
from lossevo.symbolic.loss import per_sample_loss
from lossevo.symbolic.scale import measure_scale

__all__ = ["PROBE_DOMAINS", "check_expression"]

# Documented domains: probabilities away from 0/1 and one-hot targets; regression on [-10, 10].
PROBE_DOMAINS = {
    TaskKind.CLASSIFICATION: ((1e-6, 1 - 1e-6), (0.0, 1.0)),
    TaskKind.BINARY: ((1e-6, 1 - 1e-6), (0.0, 1.0)),
    TaskKind.REGRESSION: ((-10.0, 10.0), (-10.0, 10.0)),
}
_GRID = 201
_STEPS = 25
_BATCH = 64
_CLASSES = 10
# Measured on the classification probe (error = 1 − p(true class), 0.90 at the start):
# cross-entropy reaches 0.16, MAE 0.10, GCE 0.10, MSE 0.21, while trees that later trained to
# near-chance accuracy on digits reached only 0.61–0.78. Half the error must go.
_MIN_RELATIVE_DROP = 0.5


def _domain_grid(kind: TaskKind) -> tuple[torch.Tensor, torch.Tensor]:
    (lo, hi), (tlo, thi) = PROBE_DOMAINS[kind]
    pred = torch.linspace(lo, hi, _GRID, dtype=torch.float64)
    if kind == TaskKind.REGRESSION:
        true = torch.linspace(tlo, thi, 41, dtype=torch.float64)
    else:
        true = torch.tensor([tlo, thi], dtype=torch.float64)
    return torch.meshgrid(pred, true, indexing="ij")


def _finite_on_domain(fn, kind: TaskKind) -> str | None:
    """None if value and gradient are finite on the kind's domain, at the start and the end of
    training for a loss on a schedule (t = 0 and 1; t = 1 is the default of every loss)."""
    for t in (0.0, 1.0) if getattr(fn, "uses_t", False) else (None,):
        pred, true = _domain_grid(kind)
        pred = pred.clone().requires_grad_(True)
        values = fn(pred, true) if t is None else fn(pred, true, t)
        at = "" if t is None else f" at t = {t:g}"
        if not torch.isfinite(values).all():
            return f"not finite on the {kind} domain{at}"
        (grad,) = torch.autograd.grad(values.sum(), pred, allow_unused=True)
        if grad is not None and not torch.isfinite(grad).all():
            return f"gradient not finite on the {kind} domain{at}"
    return None


def _error(outputs: torch.Tensor, targets: torch.Tensor, kind: TaskKind) -> float:
    """Distance from targets: 1 − p(true class), |p − y|, or mean squared error."""
    if kind == TaskKind.CLASSIFICATION:
        p = torch.softmax(outputs, dim=-1)
        return float(1 - p.gather(-1, targets.unsqueeze(-1)).mean())
    if kind == TaskKind.BINARY:
        return float((torch.sigmoid(outputs) - targets).abs().mean())
    return float(((outputs - targets) ** 2).mean())


def _rejection_test(fn, kind: TaskKind, seed: int) -> str | None:
    gen = torch.Generator().manual_seed(seed)
    if kind == TaskKind.CLASSIFICATION:
        outputs = torch.randn(_BATCH, _CLASSES, generator=gen, dtype=torch.float64)
        targets = torch.randint(0, _CLASSES, (_BATCH,), generator=gen)
    elif kind == TaskKind.BINARY:
        outputs = torch.randn(_BATCH, generator=gen, dtype=torch.float64)
        targets = torch.randint(0, 2, (_BATCH,), generator=gen).to(torch.float64)
    else:
        outputs = torch.randn(_BATCH, generator=gen, dtype=torch.float64) * 3
        targets = torch.randn(_BATCH, generator=gen, dtype=torch.float64) * 3
    outputs.requires_grad_(True)
    before = _error(outputs.detach(), targets, kind)
    optimizer = torch.optim.Adam([outputs], lr=0.1)
    for _ in range(_STEPS):
        optimizer.zero_grad()
        loss = per_sample_loss(fn, outputs, targets, kind).mean()
        if not torch.isfinite(loss):
            return "rejection test: loss became non-finite while fitting predictions"
        loss.backward()
        optimizer.step()
    after = _error(outputs.detach(), targets, kind)
    if not after < before * (1 - _MIN_RELATIVE_DROP):
        return (
            f"rejection test: optimizing predictions with the loss did not reduce the error "
            f"({before:.4g} -> {after:.4g})"
        )
    return None


def check_expression(expr: str, kind: str = TaskKind.CLASSIFICATION, *,
                     seed: int = 0) -> list[str]:
    """Reasons to reject ``expr`` before training; empty when it passes every probe.

    Raises ValueError for invalid text or an unknown kind (bad input is not a rejection).
    """
    kind = task_kind(kind)
    sym = to_sympy(expr)
    if Y_PRED not in sym.free_symbols:
        return ["does not depend on y_pred"]
    fn = compile_expression(expr)
    reason = _finite_on_domain(fn, kind)
    if reason:
        return [reason]
    # Rejected, not rescaled: a scale trick is a known loss at an absurd scale, not a discovery.
    reasons = measure_scale(expr, kind).problems()
    if reasons:
        return reasons
    reason = _rejection_test(fn, kind, seed)
    return [reason] if reason else []
