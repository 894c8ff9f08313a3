"""NumPy reference evaluation straight from the tree: the oracle for the sympy and torch paths.

It applies each primitive's numpy form in tree order, without sympy's rewriting, so that tests
compare three independent routes to the same value.
"""

from __future__ import annotations

import numpy as np

from lossevo.symbolic.parse import parse
from lossevo.symbolic.primitives import TIME, lookup
from lossevo.validation import not_allowed

__all__ = ["evaluate_numpy"]


def evaluate_numpy(
    expr: str, y_pred, y_true, *, t: float = 1.0, track_magnitude: bool = False
) -> np.ndarray | tuple[np.ndarray, float]:
    """Value of ``expr`` at ``(y_pred, y_true)`` and the fraction of training done ``t`` in
    float64 (broadcast; the class reductions act on the last axis).

    With ``track_magnitude`` also returns the largest finite absolute intermediate value, which
    bounds the rounding error any reordering of the computation can introduce.
    """
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:
        raise not_allowed("t", t, "a number in [0, 1]")
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.float64)
    shape = np.broadcast_shapes(y_pred.shape, y_true.shape)
    leaves = {"y_pred": y_pred, "y_true": y_true, TIME: np.float64(t)}
    stack: list[np.ndarray] = []
    magnitude = 0.0
    with np.errstate(all="ignore"):
        for node in reversed(parse(expr)):
            if node.kind == "variable":
                value = leaves[node.value]
            elif node.kind == "constant":
                value = np.float64(node.value)
            else:
                prim = lookup(node.value)
                args = [stack.pop() for _ in range(prim.arity)]
                if prim.reduces_classes:  # a constant counts once per class
                    args = [np.broadcast_to(a, shape) for a in args]
                value = prim.numpy_fn(*args)
            finite = np.abs(np.asarray(value))[np.isfinite(value)]
            if finite.size:
                magnitude = max(magnitude, float(finite.max()))
            stack.append(value)
    result = np.broadcast_to(np.asarray(stack[0], dtype=np.float64), shape)
    return (result, magnitude) if track_magnitude else result
