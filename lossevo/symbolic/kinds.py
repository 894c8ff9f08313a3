"""Task kinds: what a loss's outputs and targets are, named once for every part.

A kind decides how ``f(y_pred, y_true)`` becomes a loss (softmax and one-hot over the classes,
a sigmoid, or the raw prediction: :func:`lossevo.symbolic.loss.per_sample_loss`), which probe
domain and typical inputs apply, which rules a canonical key may use, and which metrics and
built-in losses a task has. It lives in the symbolic core, the lowest part that needs it;
evaluation, search, baselines and comparison import it from here.

A ``StrEnum``: a member equals, hashes and formats as its plain string, so users keep passing
``"classification"``, and records, JSON and exported files keep that spelling. Only ``repr``
differs: messages that quote a kind write ``str(kind)``.
"""

from __future__ import annotations

import enum

__all__ = ["KINDS", "TaskKind", "task_kind"]


class TaskKind(enum.StrEnum):
    CLASSIFICATION = "classification"  # softmax over class logits, one-hot targets
    BINARY = "binary"  # one logit through a sigmoid, targets 0/1 (no preset task yet)
    REGRESSION = "regression"  # raw predictions and float targets


# The plain spellings, in declaration order: for messages, and for exported modules, which
# import only torch and so cannot hold enum members.
KINDS: tuple[str, ...] = tuple(k.value for k in TaskKind)


def task_kind(kind: str) -> TaskKind:
    """``kind`` (a member or its string) as a :class:`TaskKind`; a ValueError naming it and the
    allowed kinds otherwise."""
    try:
        return TaskKind(kind)
    except ValueError:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}") from None
