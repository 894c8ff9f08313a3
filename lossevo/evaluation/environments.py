"""Test environments: each turns the clean test set into a shifted one, scored separately.

Input shifts (gaussian noise, rotation, translation, feature rescaling, subgroup resampling,
a widened input range) are drawn once per evaluation from the evaluation's seed and shared by all
instances and candidates, so differences between candidates are not luck of the test draw.
Adversarial environments (FGSM, PGD under L∞, cross-entropy as the attack loss, no random
start) are computed against each trained model, all models at once under vmap.
"""

from __future__ import annotations

import numpy as np
import torch

from lossevo.evaluation.data import POLY3_RANGE, poly3
from lossevo.evaluation.models import Params, stacked_forward
from lossevo.evaluation.tasks import Environment, EnvKind

__all__ = ["PGD_STEPS", "adversarial_inputs", "shifted_set"]

PGD_STEPS = 10


def _rotate(images: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import rotate

    signs = rng.choice(np.array([-1.0, 1.0]), size=len(images))
    return np.stack([
        rotate(img, s * degrees, reshape=False, order=1, mode="constant", cval=0.0)
        for img, s in zip(images, signs, strict=True)
    ])


def _translate(images: np.ndarray, pixels: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import shift

    moves = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)], dtype=float) * pixels
    picks = rng.integers(0, 4, size=len(images))
    return np.stack([
        shift(img, moves[k], order=1, mode="constant", cval=0.0)
        for img, k in zip(images, picks, strict=True)
    ])


def _subgroup(
    x: np.ndarray, y: np.ndarray, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Resample the test set (same size, with replacement) so that the subgroup
    `x[:, 0] > 0` (above the train mean of the first standardized feature) has `share`."""
    inside = np.flatnonzero(x[:, 0] > 0)
    outside = np.flatnonzero(x[:, 0] <= 0)
    n_in = round(share * len(x))
    idx = np.concatenate([
        rng.choice(inside, size=n_in, replace=True),
        rng.choice(outside, size=len(x) - n_in, replace=True),
    ])
    return x[idx], y[idx]


def shifted_set(
    env: Environment, x: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...] | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a non-adversarial environment built from one split's (x, y); adversarial
    kinds return the set unchanged (they are attacked per model when scored). XSHIFT draws
    fresh inputs with clean targets, whatever the split."""
    kind, level = env.kind, env.level
    if kind is EnvKind.GAUSS:
        return (x + rng.normal(0.0, level, size=x.shape)).astype(np.float32), y
    if kind in (EnvKind.ROTATE, EnvKind.TRANSLATE):
        assert image_shape is not None
        images = x.reshape(-1, *image_shape).astype(np.float64)
        moved = (_rotate if kind is EnvKind.ROTATE else _translate)(images, level, rng)
        return moved.reshape(len(x), -1).astype(np.float32), y
    if kind is EnvKind.RESCALE:
        scale = np.where(np.arange(x.shape[1]) % 2 == 0, level, 1.0).astype(np.float32)
        return x * scale, y
    if kind is EnvKind.SUBGROUP:
        return _subgroup(x, y, level, rng)
    if kind is EnvKind.XSHIFT:
        lo, hi = POLY3_RANGE
        pad = level * (hi - lo) / 2
        xs = rng.uniform(lo - pad, hi + pad, size=(len(x), 1))
        return xs.astype(np.float32), poly3(xs[:, 0]).astype(np.float32)
    return x, y


def adversarial_inputs(
    module: torch.nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    env: Environment,
    clip: tuple[float, float] | None,
) -> torch.Tensor:
    """Per-model adversarial copies (M, N, D) of the shared clean inputs x (N, D)."""
    eps = env.level
    frozen = {k: v.detach() for k, v in params.items()}
    n_models = next(iter(frozen.values())).shape[0]
    x0 = x.unsqueeze(0).expand(n_models, *x.shape)
    steps, alpha = (1, eps) if env.kind is EnvKind.FGSM else (PGD_STEPS, 2.5 * eps / PGD_STEPS)
    adv = x0.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            logits = stacked_forward(module, frozen, adv, shared=False)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.repeat(n_models), reduction="sum"
            )
            (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv + alpha * grad.sign()
            adv = torch.minimum(torch.maximum(adv, x0 - eps), x0 + eps)
            if clip is not None:
                adv = adv.clamp(*clip)
    return adv.detach()
