"""Per-sample losses of a linear score ``u = Xθ + b``: numpy values/derivatives and cvxpy atoms.

Classification uses labels ±1 and the margin ``m = y·u``; regression the residual ``r = y − u``.
Each loss also records its Lipschitz constant (the slope that Wasserstein DRO charges per unit
of transported mass) and whether it is smooth (so a quasi-Newton solver may be used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from dro._validation import check_choice

__all__ = [
    "CLASSIFICATION_LOSSES",
    "REGRESSION_LOSSES",
    "LossSpec",
    "cvxpy_losses",
    "loss_and_derivative",
    "loss_spec",
]

CLASSIFICATION_LOSSES = ("logistic", "hinge")
REGRESSION_LOSSES = ("absolute", "huber", "squared")


@dataclass(frozen=True)
class LossSpec:
    """What the solvers need to know about a loss."""

    name: str
    task: str  # "classification" | "regression"
    lipschitz: float  # math.inf for the squared loss
    smooth: bool
    delta: float = 1.0  # Huber threshold


def loss_spec(task: str, name: str, delta: float = 1.0) -> LossSpec:
    """Validate ``name`` for ``task`` and describe it."""
    check_choice("task", task, ("classification", "regression"))
    allowed = CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES
    check_choice("loss", name, allowed)
    lip = {"logistic": 1.0, "hinge": 1.0, "absolute": 1.0, "huber": float(delta)}
    smooth = name in ("logistic", "huber", "squared")
    return LossSpec(name, task, lip.get(name, np.inf), smooth, float(delta))


def loss_and_derivative(
    spec: LossSpec, u: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses at scores ``u`` and their derivatives with respect to ``u``."""
    if spec.task == "classification":
        m = y * u
        if spec.name == "logistic":
            return np.logaddexp(0.0, -m), -y * expit(-m)
        return np.maximum(0.0, 1.0 - m), np.where(m < 1.0, -y, 0.0)
    r = y - u
    if spec.name == "absolute":
        return np.abs(r), -np.sign(r)
    if spec.name == "squared":
        return r * r, -2.0 * r
    d = spec.delta
    a = np.abs(r)
    val = np.where(a <= d, 0.5 * r * r, d * a - 0.5 * d * d)
    return val, -np.clip(r, -d, d)


def cvxpy_losses(spec: LossSpec, u, y: np.ndarray, *, flipped: bool = False):
    """cvxpy expression of the per-sample losses at the affine score ``u`` (optionally -y)."""
    import cvxpy as cp

    if spec.task == "classification":
        m = cp.multiply(-y if flipped else y, u)
        return cp.logistic(-m) if spec.name == "logistic" else cp.pos(1 - m)
    r = y - u
    if spec.name == "absolute":
        return cp.abs(r)
    if spec.name == "squared":
        return cp.square(r)
    return 0.5 * cp.huber(r, spec.delta)
