"""Do two losses train alike? Measured, for what symbolic keys cannot prove.

Canonical keys (lossevo.symbolic.expression) merge what algebra shows equal; they miss identities
hidden inside functions, e.g. ``exp(4.409 − p·y)`` is ``e^{2.62}·exp(1.788 − p·y)``, a positive
multiple that Adam ignores. Here a loss is reduced to its gradient with respect to the model
outputs (through the softmax and class sum for classification) on a fixed probe batch, in
float64; two losses whose gradients are positive multiples of each other everywhere on it
train alike (up to Adam's ε), and are counted once where distinct functions are wanted
(compare's top-N). A loss that uses the fraction of training done ``t`` is probed at several
values of ``t`` and its gradients joined into one vector before normalizing, so that only a
scale shared by the whole schedule counts as training alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lossevo.symbolic.kinds import TaskKind, task_kind

__all__ = ["distinct", "gradient_direction"]

_PROBE_SEED = 20261202
_SAMPLES = 64
_CLASSES = 10
# cosine above this: the same direction (positive multiples agree to ~1e-15 in float64)
_SAME = 1.0 - 1e-9
# values of t a schedule is probed at: start, middle and end of training
_TIMES = (0.0, 0.5, 1.0)


def _probe(kind: TaskKind) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(_PROBE_SEED)
    if kind == TaskKind.CLASSIFICATION:
        outputs = torch.randn(_SAMPLES, _CLASSES, generator=gen, dtype=torch.float64) * 2
        return outputs, torch.randint(0, _CLASSES, (_SAMPLES,), generator=gen)
    outputs = torch.randn(_SAMPLES, generator=gen, dtype=torch.float64) * 2
    if kind == TaskKind.BINARY:
        return outputs, torch.randint(0, 2, (_SAMPLES,), generator=gen).double()
    return outputs, torch.randn(_SAMPLES, generator=gen, dtype=torch.float64) * 2


def gradient_direction(expression: str, kind: str) -> torch.Tensor | None:
    """The unit gradient of the summed loss on the probe batch, at each t of ``_TIMES`` one
    after the other (repeated for a loss without t); None when it is zero or not finite (a
    constant loss, or one that overflows there)."""
    from lossevo.symbolic.compile import compile_expression
    from lossevo.symbolic.loss import per_sample_loss

    kind = task_kind(kind)
    fn = compile_expression(expression)
    outputs, targets = _probe(kind)
    outputs.requires_grad_(True)
    grads = []
    for t in _TIMES if fn.uses_t else _TIMES[:1]:
        loss = per_sample_loss(fn, outputs, targets, kind, t).sum()
        if not loss.requires_grad:
            return None
        (grad,) = torch.autograd.grad(loss, outputs, allow_unused=True)
        if grad is None or not bool(torch.isfinite(grad).all()):
            return None
        grads.append(grad.flatten())
    joined = torch.cat(grads if fn.uses_t else grads * len(_TIMES))
    norm = joined.norm()
    return None if norm == 0 else joined / norm


def distinct(expressions: Sequence[str], kinds: Sequence[str]) -> list[int]:
    """Indices of the first expression of each training-equivalence class, in order: a later
    one is dropped when, on every kind in `kinds`, its gradient direction equals that of one
    kept earlier. Losses without a usable direction are kept (nothing is claimed of them)."""
    kept: list[int] = []
    signatures: list[list[torch.Tensor]] = []
    for i, expr in enumerate(expressions):
        sig = [gradient_direction(expr, kind) for kind in kinds]
        usable = all(d is not None for d in sig)
        if usable and any(all(float(a @ b) > _SAME for a, b in zip(sig, other, strict=True))
                          for other in signatures):
            continue
        kept.append(i)
        if usable:
            signatures.append(sig)  # type: ignore[arg-type]
    return kept
