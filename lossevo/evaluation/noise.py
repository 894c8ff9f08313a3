"""Train-time corruption drawn from an explicit numpy Generator: labels, inputs, targets.

Each instance of an evaluation draws its own corruption from its own seed, so the spread of a
loss's quality across instances includes the luck of the noise draw.
"""

from __future__ import annotations

import numpy as np

from lossevo.evaluation.tasks import LabelNoise, Noise, TargetNoise

__all__ = [
    "asymmetric_noise",
    "corrupt_inputs",
    "corrupt_labels",
    "corrupt_targets",
    "instance_noise",
    "pair_flip_target",
    "symmetric_noise",
]


def symmetric_noise(
    y: np.ndarray, n_classes: int, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Flip each label with probability `rate` to a uniformly chosen *different* class."""
    flip = rng.random(y.shape[0]) < rate
    offset = rng.integers(1, n_classes, size=y.shape[0])
    return np.where(flip, (y + offset) % n_classes, y)


def pair_flip_target(y: np.ndarray, n_classes: int) -> np.ndarray:
    """The fixed other class of pair-flip noise: c → (c + 1) mod C."""
    return (y + 1) % n_classes


def asymmetric_noise(
    y: np.ndarray, n_classes: int, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Pair flip: with probability `rate`, class c becomes (c + 1) mod C."""
    flip = rng.random(y.shape[0]) < rate
    return np.where(flip, pair_flip_target(y, n_classes), y)


def instance_noise(
    x: np.ndarray, y: np.ndarray, n_classes: int, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Instance-dependent noise (Xia et al., 2020): the flip rate and the wrong class depend on x.

    Per-sample rates q_i come from N(rate, 0.1²) truncated to [0, 1] (mean close to `rate`);
    the wrong class follows softmax(x_i · W) over the other classes, W a random projection.
    """
    n, d = x.shape
    q = np.empty(n)
    todo = np.ones(n, dtype=bool)
    while todo.any():  # rejection sampling: exact truncation without scipy's global state
        draw = rng.normal(rate, 0.1, size=int(todo.sum()))
        q[np.flatnonzero(todo)] = draw
        todo = (q < 0) | (q > 1)
    w = rng.normal(size=(d, n_classes))
    scores = (x - x.mean(0)) @ w
    scores[np.arange(n), y] = -np.inf
    scores -= scores.max(1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(1, keepdims=True)
    wrong = (probs.cumsum(1) > rng.random((n, 1))).argmax(1)
    flip = rng.random(n) < q
    return np.where(flip, wrong, y)


def corrupt_labels(
    x: np.ndarray, y: np.ndarray, n_classes: int, noise: Noise, rng: np.random.Generator
) -> np.ndarray:
    """Noisy copy of `y` under `noise.labels` at `noise.rate`."""
    if noise.labels is LabelNoise.NONE or noise.rate == 0:
        return y.copy()
    if noise.labels is LabelNoise.SYMMETRIC:
        return symmetric_noise(y, n_classes, noise.rate, rng)
    if noise.labels is LabelNoise.ASYMMETRIC:
        return asymmetric_noise(y, n_classes, noise.rate, rng)
    return instance_noise(x, y, n_classes, noise.rate, rng)


def corrupt_inputs(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive gaussian input noise (train time or a test environment)."""
    if sigma == 0:
        return x.copy()
    return (x + rng.normal(0.0, sigma, size=x.shape)).astype(x.dtype)


def corrupt_targets(y: np.ndarray, noise: Noise, rng: np.random.Generator) -> np.ndarray:
    """Regression target noise: gaussian (mean, σ) or student-t (df, scale σ), then gross
    outliers: a fraction of targets moved by ±U(1, 2)·outlier_scale."""
    out = y.astype(np.float64).copy()
    if noise.target is TargetNoise.GAUSSIAN:
        out += rng.normal(noise.target_mean, noise.target_sigma, size=y.shape)
    elif noise.target is TargetNoise.STUDENT_T:
        out += noise.target_mean + noise.target_sigma * rng.standard_t(noise.target_df, y.shape)
    if noise.outlier_fraction > 0:
        hit = rng.random(y.shape) < noise.outlier_fraction
        sign = rng.choice(np.array([-1.0, 1.0]), size=y.shape)
        out += hit * sign * noise.outlier_scale * rng.uniform(1.0, 2.0, size=y.shape)
    return out.astype(y.dtype)
