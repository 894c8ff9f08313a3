"""Schemes that change the inputs of the batch: data augmentation (mixup, CutMix, Cutout,
MaxUp) and adversarial inputs (FGSM, PGD, the Wasserstein penalty of Sinha et al.).

Random draws (λ, partners, patch positions, noise, PGD starts) come from per-instance streams
(`SeedStreams`), so paired candidates see the same augmentations. Adversarial inputs are found
against each model's own base loss with its weights frozen; inputs of all M models are
attacked at once, as their gradients do not mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dro.nn import wasserstein_penalty_risk
from lossevo.baselines.scheme_base import BaselineScheme, SeedStreams, attack_epsilon, input_clip
from lossevo.evaluation.models import Params
from lossevo.evaluation.tasks import DatasetName
from lossevo.evaluation.training import Batch, SchemeContext

__all__ = [
    "AdversarialFGSM",
    "AdversarialPGD",
    "Cutmix",
    "Cutout",
    "MaxUp",
    "Mixup",
    "WassersteinDRO",
    "box_mask",
    "cutout_mask",
]

_SIDE = 8  # digits images are 8×8, stored flat


def _gather_rows(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    return t[torch.arange(t.shape[0], device=t.device).unsqueeze(1), perm]


def _permutations(streams: SeedStreams, b: int) -> torch.Tensor:
    return streams.draw(lambda r: r.permutation(b))


def _mixed_objective(batch: Batch, params: Params, x: torch.Tensor, lam: torch.Tensor,
                     perm: torch.Tensor) -> torch.Tensor:
    """λ·ℓ(f(x̃), y) + (1−λ)·ℓ(f(x̃), y_partner), per model (λ: (M,))."""
    out = batch.forward(params, x)
    own = batch.per_sample(out, batch.y).mean(1)
    other = batch.per_sample(out, _gather_rows(batch.y, perm)).mean(1)
    return lam * own + (1 - lam) * other


@dataclass(frozen=True, repr=False)
class _ImageAugment(BaselineScheme):
    """Base of the image augmentations: 8×8 digits only; their draws come from per-instance
    seed streams."""

    images_only = True

    def init_state(self, ctx: SchemeContext) -> SeedStreams:
        return SeedStreams(ctx.seeds, ctx.y.device)


@dataclass(frozen=True, repr=False)
class Mixup(_ImageAugment):
    """mixup (Zhang et al. 2018): x̃ = λx_i + (1−λ)x_j, λ ~ Beta(α, α) per batch; α = 1.0 is
    their CIFAR value (0.2 for ImageNet); α = 0 means λ = 1 (no mixing)."""

    name = "mixup"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        self._number("alpha", 0.0)

    def objective(self, state: SeedStreams, batch: Batch, params: Params) -> torch.Tensor:
        b = batch.x.shape[1]
        a = self.alpha
        lam = state.draw(lambda r: r.beta(a, a) if a > 0 else 1.0, torch.float32)
        perm = _permutations(state, b)
        lx = lam.view(-1, 1, 1)
        x = lx * batch.x + (1 - lx) * _gather_rows(batch.x, perm)
        return _mixed_objective(batch, params, x, lam, perm)


def box_mask(boxes: torch.Tensor, side: int = _SIDE) -> torch.Tensor:
    """(M, side·side) float mask, 1 inside each model's box (y1, y2, x1, x2), half-open."""
    r = torch.arange(side, device=boxes.device)
    inside_y = (r >= boxes[:, 0:1]) & (r < boxes[:, 1:2])
    inside_x = (r >= boxes[:, 2:3]) & (r < boxes[:, 3:4])
    return (inside_y.unsqueeze(2) & inside_x.unsqueeze(1)).flatten(1).float()


def _cutmix_box(r: np.random.Generator, alpha: float) -> np.ndarray:
    """Yun et al.'s box: side √(1−λ)·W, centre uniform, clipped to the image."""
    lam = r.beta(alpha, alpha) if alpha > 0 else 1.0
    cut = int(_SIDE * np.sqrt(1.0 - lam))
    cy, cx = r.integers(_SIDE), r.integers(_SIDE)
    return np.clip([cy - cut // 2, cy + cut // 2, cx - cut // 2, cx + cut // 2], 0, _SIDE)


@dataclass(frozen=True, repr=False)
class Cutmix(_ImageAugment):
    """CutMix (Yun et al. 2019, α = 1.0): a box from a partner image pasted in; labels mixed by
    the box's exact area, λ = 1 − area/64 on the 8×8 digits."""

    name = "cutmix"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        self._number("alpha", 0.0)

    def objective(self, state: SeedStreams, batch: Batch, params: Params) -> torch.Tensor:
        boxes = state.draw(lambda r: _cutmix_box(r, self.alpha))
        perm = _permutations(state, batch.x.shape[1])
        mask = box_mask(boxes).unsqueeze(1)
        x = batch.x * (1 - mask) + _gather_rows(batch.x, perm) * mask
        lam = 1.0 - mask.squeeze(1).mean(1)
        return _mixed_objective(batch, params, x, lam, perm)


def cutout_mask(centres: torch.Tensor, size: int, side: int = _SIDE) -> torch.Tensor:
    """(M, b, side·side) masks, 0 on a size×size square around each centre (clipped at the
    border, as DeVries & Taylor), 1 elsewhere. centres: (M, b, 2) integer (row, col)."""
    lo = (centres - size // 2).clamp(0, side)
    hi = (centres - size // 2 + size).clamp(0, side)
    r = torch.arange(side, device=centres.device)
    in_y = (r >= lo[..., 0:1]) & (r < hi[..., 0:1])
    in_x = (r >= lo[..., 1:2]) & (r < hi[..., 1:2])
    return 1.0 - (in_y.unsqueeze(-1) & in_x.unsqueeze(-2)).flatten(-2).float()


@dataclass(frozen=True, repr=False)
class Cutout(_ImageAugment):
    """Cutout (DeVries & Taylor 2017): one zeroed square per image, centre uniform; side 4 of
    8 pixels (their CIFAR-10 patch, 16 of 32, in proportion)."""

    name = "cutout"
    size: int = 4

    def __post_init__(self) -> None:
        self._integer("size", 0)

    def objective(self, state: SeedStreams, batch: Batch, params: Params) -> torch.Tensor:
        b = batch.x.shape[1]
        centres = state.draw(lambda r: r.integers(_SIDE, size=(b, 2)))
        x = batch.x * cutout_mask(centres, self.size)
        return batch.per_sample(batch.forward(params, x), batch.y).mean(1)


_AUGMENTS = ("auto", "gauss", "cutout")


@dataclass(frozen=True, repr=False)
class MaxUp(BaselineScheme):
    """MaxUp (Gong et al. 2021, m = 4): per sample, the largest loss over m augmented copies;
    copies: gaussian input noise σ = 0.1, or Cutout on digits (augment="auto")."""

    name = "maxup"
    m: int = 4
    augment: str = "auto"
    sigma: float = 0.1
    size: int = 4

    def __post_init__(self) -> None:
        self._integer("m", 1)
        self._check("augment", self.augment in _AUGMENTS, ", ".join(_AUGMENTS))
        self._number("sigma", 0.0)
        self._integer("size", 0)

    def init_state(self, ctx: SchemeContext) -> tuple[SeedStreams, bool]:
        images = ctx.task is not None and ctx.task.dataset is DatasetName.DIGITS
        use_cutout = self.augment == "cutout" or (self.augment == "auto" and images)
        if use_cutout and ctx.x.shape[-1] != _SIDE * _SIDE:
            raise ValueError(f"maxup augment='cutout' needs 8×8 image inputs, got "
                             f"{ctx.x.shape[-1]} features")
        return SeedStreams(ctx.seeds, ctx.y.device), use_cutout

    def objective(self, state: tuple[SeedStreams, bool], batch: Batch, params: Params
                  ) -> torch.Tensor:
        streams, use_cutout = state
        n_models, b, d = batch.x.shape
        copies = batch.x.unsqueeze(1).expand(n_models, self.m, b, d)
        if use_cutout:
            centres = streams.draw(lambda r: r.integers(_SIDE, size=(self.m, b, 2)))
            copies = copies * cutout_mask(centres.flatten(1, 2), self.size).view_as(copies)
        else:
            noise = streams.draw(
                lambda r: r.standard_normal((self.m, b, d), dtype=np.float32))
            copies = copies + self.sigma * noise.to(batch.x.dtype)
        out = batch.forward(params, copies.reshape(n_models, self.m * b, d))
        per = batch.per_sample(out, batch.y.repeat(1, self.m)).view(n_models, self.m, b)
        return per.max(1).values.mean(1)


def _input_grad(batch: Batch, params: Params, x: torch.Tensor) -> torch.Tensor:
    """∇_x of the summed base losses with frozen weights."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        phi = batch.per_sample(batch.forward(params, x), batch.y).sum()
        (grad,) = torch.autograd.grad(phi, x)
    return grad


def _frozen(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


def _clip(x: torch.Tensor, clip: tuple[float, float] | None) -> torch.Tensor:
    return x if clip is None else x.clamp(*clip)


@dataclass(frozen=True, repr=False)
class AdversarialFGSM(BaselineScheme):
    """FGSM adversarial training (Goodfellow et al. 2015): α·ℓ(x) + (1−α)·ℓ(x + ε·sign ∇ℓ),
    α = 0.5; ε: the task's first FGSM/PGD level (else 0.05), inputs clipped to their range."""

    name = "adv_fgsm"
    epsilon: float | None = None
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.epsilon is not None:
            self._number("epsilon", 0.0)
        self._number("alpha", 0.0, 1.0)

    def init_state(self, ctx: SchemeContext) -> tuple[float, tuple[float, float] | None]:
        return attack_epsilon(self.epsilon, ctx.task), input_clip(ctx)

    def objective(self, state: tuple[float, Any], batch: Batch, params: Params
                  ) -> torch.Tensor:
        eps, clip = state
        grad = _input_grad(batch, _frozen(params), batch.x)
        adv = _clip(batch.x + eps * grad.sign(), clip)
        b = batch.x.shape[1]
        out = batch.forward(params, torch.cat([batch.x, adv], 1))
        per = batch.per_sample(out, batch.y.repeat(1, 2))
        return self.alpha * per[:, :b].mean(1) + (1 - self.alpha) * per[:, b:].mean(1)


@dataclass(frozen=True, repr=False)
class AdversarialPGD(BaselineScheme):
    """PGD adversarial training (Madry et al. 2018): loss at L∞ PGD inputs only, random start,
    7 steps of 2.5ε/7; ε: the task's first FGSM/PGD level (else 0.05), clipped to range."""

    name = "adv_pgd"
    epsilon: float | None = None
    steps: int = 7
    step_size: float | None = None

    def __post_init__(self) -> None:
        if self.epsilon is not None:
            self._number("epsilon", 0.0)
        self._integer("steps", 1)
        if self.step_size is not None:
            self._number("step_size", 0.0)

    def init_state(self, ctx: SchemeContext) -> tuple[float, Any, SeedStreams]:
        return (attack_epsilon(self.epsilon, ctx.task), input_clip(ctx),
                SeedStreams(ctx.seeds, ctx.y.device))

    def objective(self, state: tuple[float, Any, SeedStreams], batch: Batch, params: Params
                  ) -> torch.Tensor:
        eps, clip, streams = state
        step = 2.5 * eps / self.steps if self.step_size is None else self.step_size
        x0 = batch.x
        start = streams.draw(lambda r: r.uniform(-eps, eps, size=x0.shape[1:]), x0.dtype)
        adv = _clip(x0 + start, clip)
        frozen = _frozen(params)
        for _ in range(self.steps):
            adv = adv + step * _input_grad(batch, frozen, adv).sign()
            adv = _clip(torch.minimum(torch.maximum(adv, x0 - eps), x0 + eps), clip)
        return batch.per_sample(batch.forward(params, adv.detach()), batch.y).mean(1)


@dataclass(frozen=True, repr=False)
class WassersteinDRO(BaselineScheme):
    """Sinha, Namkoong & Duchi 2018 (WRM): ℓ(x′) − γ‖x′ − x‖² at x′ from 15 steps of gradient
    ascent (step 1/(2γ)): dro.wasserstein_penalty_risk over the (M, b) losses, all models at
    once (their input gradients do not mix)."""

    name = "wasserstein_dro"
    gamma: float = 2.0
    steps: int = 15
    step_size: float | None = None

    def __post_init__(self) -> None:
        self._number("gamma", 0.0, lo_open=True)
        self._integer("steps", 0)
        if self.step_size is not None:
            self._number("step_size", 0.0)

    def objective(self, state: Any, batch: Batch, params: Params) -> torch.Tensor:
        def model(x: torch.Tensor) -> torch.Tensor:
            return batch.forward(params, x)

        return wasserstein_penalty_risk(model, batch.per_sample, batch.x, batch.y,
                                        gamma=self.gamma, steps=self.steps,
                                        step_size=self.step_size)
