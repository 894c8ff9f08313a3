"""Named robust losses from the noisy-label literature, as per-sample losses for comparison.

`build_loss("gce", q=0.5)` returns a `PerSampleLoss`: a small frozen, picklable object
(outputs, targets) -> (n,) losses, the contract shared with `lossevo.evaluate` and `dro.nn`.
Classification losses take logits (n, C) and class indices (n,); regression losses take
predictions (n,) or (n, 1) and float targets (n,). Hyperparameters default to the official
code's values for the MNIST family where it has them, else the paper's; its `repr`
(`gce(q=0.7)`) labels the contender in result tables. `TUNING_GRIDS` declares, per loss, the
few values of its main hyperparameters that a fair tuning on validation may try.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lossevo.baselines import frontier
from lossevo.symbolic.kinds import TaskKind
from lossevo.symbolic.loss import one_hot, per_sample_loss
from lossevo.validation import not_allowed

__all__ = ["LOSSES", "LOSS_KINDS", "REGRESSION_LOSSES", "REGRESSION_TUNING_GRIDS",
           "TUNING_GRIDS", "PerSampleLoss", "build_loss", "grid_points", "loss_defaults"]

# The task kinds that have built-in losses (none is binary yet).
LOSS_KINDS = (TaskKind.CLASSIFICATION, TaskKind.REGRESSION)
Tensor = torch.Tensor


@dataclass(frozen=True)
class _Interval:
    """Allowed range of a hyperparameter; `integer` ones must be whole numbers."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_closed: bool = True
    hi_closed: bool = True
    integer: bool = False

    def __contains__(self, v: float) -> bool:
        above = v >= self.lo if self.lo_closed else v > self.lo
        below = v <= self.hi if self.hi_closed else v < self.hi
        return math.isfinite(v) and above and below and (not self.integer or v == int(v))

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.hi == math.inf:
            return f"{kind} {'>=' if self.lo_closed else '>'} {self.lo:g}"
        return (f"{kind} in {'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}"
                f"{']' if self.hi_closed else ')'}")


_POSITIVE = _Interval(0.0, lo_closed=False)
_NONNEG = _Interval(0.0)
_NEGATIVE = _Interval(hi=0.0, hi_closed=False)
_UNIT_OPEN = _Interval(0.0, 1.0, lo_closed=False, hi_closed=False)
_LOG_1E4 = math.log(1e-4)  # RCE's A: the official SCE/APL code clips the one-hot at 1e-4


@dataclass(frozen=True)
class _Spec:
    fn: Callable[..., Tensor]  # (outputs, targets, **params) -> (n,)
    defaults: dict[str, float]
    ranges: dict[str, _Interval]
    # The hyperparameter that is the weight δ of a δ‖θ‖₁ penalty on the model's parameters
    # (not passed to `fn`; the trainer applies it, see `PerSampleLoss.weight_l1`).
    weight_l1: str | None = None


# ---- classification -------------------------------------------------------------------------

def _log_p_true(logits: Tensor, targets: Tensor) -> Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _one_minus_p_true(logits: Tensor, targets: Tensor) -> Tensor:
    # 1 - exp(log p) by expm1: exact for confident predictions, where 1 - p would round to 0.
    return -torch.expm1(_log_p_true(logits, targets))


def _ce(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy."""
    return F.cross_entropy(logits, targets, reduction="none")


def _mae(logits: Tensor, targets: Tensor) -> Tensor:
    """Σ|p − y| = 2(1 − p_y) on softmax probabilities (Ghosh et al., AAAI 2017: robust to
    symmetric noise because the sum over all labels is constant)."""
    return per_sample_loss(lambda p, y: (p - y).abs(), logits, targets, TaskKind.CLASSIFICATION)


def _mse(logits: Tensor, targets: Tensor) -> Tensor:
    """Σ(p − y)² on softmax probabilities (Brier score)."""
    return per_sample_loss(lambda p, y: (p - y) ** 2, logits, targets, TaskKind.CLASSIFICATION)


def _label_smoothing(logits: Tensor, targets: Tensor, eps: float) -> Tensor:
    """CE against (1 − ε)·one-hot + ε/C (Szegedy et al., CVPR 2016: ε = 0.1)."""
    return F.cross_entropy(logits, targets, reduction="none", label_smoothing=eps)


def _huber(logits: Tensor, targets: Tensor, delta: float) -> Tensor:
    """Huber (1964) on softmax probabilities vs one-hot, summed over classes. Residuals lie in
    [0, 1], so δ ≥ 1 is exactly MSE/2 (which Adam trains like MSE); δ = 0.5 makes the
    linear, bounded-gradient regime reachable for badly fitted (often mislabeled) samples."""
    p = torch.softmax(logits, dim=-1)
    y = one_hot(targets, logits.shape[-1], p.dtype)
    return F.huber_loss(p, y, reduction="none", delta=delta).sum(-1)


def _focal(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """−(1 − p_y)^γ log p_y (Lin et al., ICCV 2017: γ = 2; no α class weight, multi-class)."""
    log_p = _log_p_true(logits, targets)
    # clamp: (1 - p)^γ has an infinite slope at 0 for γ < 1; there log p = 0 anyway.
    return -(-torch.expm1(log_p)).clamp_min(1e-30) ** gamma * log_p


def _gce(logits: Tensor, targets: Tensor, q: float) -> Tensor:
    """Generalized CE (1 − p_y^q)/q (Zhang & Sabuncu, NeurIPS 2018: q = 0.7); CE as q → 0,
    MAE-like at q = 1."""
    return -torch.expm1(q * _log_p_true(logits, targets)) / q


def _rce(logits: Tensor, targets: Tensor, A: float) -> Tensor:
    """Reverse CE −Σ p_k log y_k with log 0 := A: −A(1 − p_y), p clipped to [1e-7, 1] as in
    the reference code."""
    p = torch.softmax(logits, dim=-1).clamp(1e-7, 1.0)
    p_true = p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -A * (p.sum(-1) - p_true)


def _sce(logits: Tensor, targets: Tensor, alpha: float, beta: float, A: float) -> Tensor:
    """Symmetric CE α·CE + β·RCE (Wang et al., ICCV 2019; official MNIST α = 0.01, β = 1,
    A = log 1e-4)."""
    return alpha * _ce(logits, targets) + beta * _rce(logits, targets, A)


def _nce_rce(logits: Tensor, targets: Tensor, alpha: float, beta: float, A: float) -> Tensor:
    """Active-passive loss α·NCE + β·RCE, NCE = log p_y / Σ_k log p_k (Ma et al., ICML 2020,
    "Normalized Loss Functions for Deep Learning with Noisy Labels"; official MNIST α = 1,
    β = 10).
    The denominator is ≥ C log C > 0, so NCE is finite for all finite logits."""
    log_p = torch.log_softmax(logits, dim=-1)
    nce = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1) / log_p.sum(-1)
    return alpha * nce + beta * _rce(logits, targets, A)


def _taylor_ce(logits: Tensor, targets: Tensor, t: float) -> Tensor:
    """Σ_{k=1..t} (1 − p_y)^k / k, the order-t Taylor series of −log p_y around p_y = 1
    (Feng et al., IJCAI 2020, "Can cross entropy loss be robust to label noise?": t = 2)."""
    r = _one_minus_p_true(logits, targets)
    return sum(r**k / k for k in range(1, int(t) + 1))


def _log_t(u: Tensor, t: float) -> Tensor:
    return torch.log(u) if t == 1.0 else (u ** (1.0 - t) - 1.0) / (1.0 - t)


def _exp_t(u: Tensor, t: float) -> Tensor:
    return torch.exp(u) if t == 1.0 else F.relu(1.0 + (1.0 - t) * u) ** (1.0 / (1.0 - t))


def _tempered_softmax(logits: Tensor, t: float, num_iters: int) -> Tensor:
    """Tempered softmax for t ≥ 1, normalized by the fixed-point iteration of the reference
    code (google/bi-tempered-loss); plain autograd differentiates through the iterations."""
    if t == 1.0:
        return torch.softmax(logits, dim=-1)
    mu = logits.amax(-1, keepdim=True)
    a0 = logits - mu
    a = a0
    for _ in range(num_iters):
        a = a0 * _exp_t(a, t).sum(-1, keepdim=True) ** (1.0 - t)
    z = _exp_t(a, t).sum(-1, keepdim=True)
    return _exp_t(a0 + _log_t(1.0 / z, t), t)


def _bi_tempered(logits: Tensor, targets: Tensor, t1: float, t2: float,
                 num_iters: int) -> Tensor:
    """Bi-tempered logistic loss (Amid et al., NeurIPS 2019: t1 = 0.8 bounds the loss,
    t2 = 1.2 gives the tempered softmax a heavy tail); equals CE at t1 = t2 = 1."""
    y = one_hot(targets, logits.shape[-1], logits.dtype)
    if t2 == 1.0:  # log-probabilities straight from log_softmax: no underflow at extreme logits
        log_p = torch.log_softmax(logits, dim=-1)
        p = log_p.exp()
    else:  # tiny clamp: p**(1 - t1) has an infinite slope at p = 0 for t1 < 1
        p = _tempered_softmax(logits, t2, int(num_iters)).clamp_min(torch.finfo(y.dtype).tiny)
        log_p = torch.log(p)
    log_t_p = log_p if t1 == 1.0 else torch.expm1((1.0 - t1) * log_p) / (1.0 - t1)
    log_t_y = _log_t(y + 1e-10, t1)
    loss = (log_t_y - log_t_p) * y - (y ** (2.0 - t1) - p ** (2.0 - t1)) / (2.0 - t1)
    return loss.sum(-1)


def _ganetic(logits: Tensor, targets: Tensor) -> Tensor:
    """GANetic loss ŷ³ + sqrt(|3.985·y/(ŷ + 1e-8)| + 1e-8), ŷ clipped to [1e-7, 1 − 1e-7] as
    in its TensorFlow reference (Akhmedova & Körber 2024, found by genetic programming)."""
    def fn(p: Tensor, y: Tensor) -> Tensor:
        p = p.clamp(1e-7, 1.0 - 1e-7)
        return p**3 + torch.sqrt((3.985 * y / (p + 1e-8)).abs() + 1e-8)

    return per_sample_loss(fn, logits, targets, TaskKind.CLASSIFICATION)


def _ngl(logits: Tensor, targets: Tensor) -> Tensor:
    """Next Generation Loss exp(2.4092 − ŷ − ŷ·y) − cos(cos(sin ŷ)) (Akhmedova & Körber 2024,
    found by genetic programming); summed over classes (the reference averages, a factor C)."""
    return per_sample_loss(
        lambda p, y: torch.exp(2.4092 - p - p * y) - torch.cos(torch.cos(torch.sin(p))),
        logits, targets, TaskKind.CLASSIFICATION)


_CLASSIFICATION: dict[str, _Spec] = {
    "ce": _Spec(_ce, {}, {}),
    "mae": _Spec(_mae, {}, {}),
    "mse": _Spec(_mse, {}, {}),
    "label_smoothing": _Spec(_label_smoothing, {"eps": 0.1}, {"eps": _Interval(0.0, 1.0)}),
    "huber": _Spec(_huber, {"delta": 0.5}, {"delta": _POSITIVE}),
    "focal": _Spec(_focal, {"gamma": 2.0}, {"gamma": _NONNEG}),
    "gce": _Spec(_gce, {"q": 0.7}, {"q": _Interval(0.0, 1.0, lo_closed=False)}),
    "sce": _Spec(_sce, {"alpha": 0.01, "beta": 1.0, "A": _LOG_1E4},
                 {"alpha": _NONNEG, "beta": _NONNEG, "A": _NEGATIVE}),
    "nce_rce": _Spec(_nce_rce, {"alpha": 1.0, "beta": 10.0, "A": _LOG_1E4},
                     {"alpha": _NONNEG, "beta": _NONNEG, "A": _NEGATIVE}),
    "taylor_ce": _Spec(_taylor_ce, {"t": 2}, {"t": _Interval(1.0, integer=True)}),
    # t2 < 1 needs the reference code's binary-search normalization, which is not implemented.
    "bi_tempered": _Spec(_bi_tempered, {"t1": 0.8, "t2": 1.2, "num_iters": 5},
                         {"t1": _Interval(0.0, 1.0), "t2": _Interval(1.0),
                          "num_iters": _Interval(1.0, integer=True)}),
    "ganetic": _Spec(_ganetic, {}, {}),
    "ngl": _Spec(_ngl, {}, {}),
    # the stateless frontier (lossevo.baselines.frontier)
    "anl_ce": _Spec(frontier.anl_ce,
                    {"alpha": 1.0, "beta": 1.0, "delta": 1e-6},
                    {"alpha": _NONNEG, "beta": _NONNEG, "delta": _NONNEG}, weight_l1="delta"),
    "nce_agce": _Spec(frontier.nce_agce, {"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2},
                      {"alpha": _NONNEG, "beta": _NONNEG, "a": _POSITIVE, "q": _POSITIVE}),
    "nce_aul": _Spec(frontier.nce_aul, {"alpha": 0.0, "beta": 1.0, "a": 3.0, "q": 0.1},
                     {"alpha": _NONNEG, "beta": _NONNEG, "a": _Interval(1.0, lo_closed=False),
                      "q": _POSITIVE}),
    "ce_eps_mae": _Spec(frontier.ce_eps_mae, {"alpha": 0.01, "beta": 5.0, "m": 1e5},
                        {"alpha": _NONNEG, "beta": _NONNEG, "m": _NONNEG}),
    "js": _Spec(frontier.js, {"pi1": 0.7}, {"pi1": _UNIT_OPEN}),
    "poly1": _Spec(frontier.poly1, {"eps": 1.0}, {"eps": _Interval(-1.0)}),
    "logit_clip": _Spec(frontier.logit_clip, {"tau": 1.0}, {"tau": _POSITIVE}),
}

# ---- regression -----------------------------------------------------------------------------

def _residual(outputs: Tensor, targets: Tensor) -> Tensor:
    if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
        outputs = outputs.squeeze(-1)
    if outputs.shape != targets.shape:
        raise ValueError(f"regression outputs of shape {tuple(outputs.shape)} do not match "
                         f"targets {tuple(targets.shape)}; allowed: (n,) or (n, 1) for (n,)")
    return outputs - targets.to(outputs.dtype)


def _reg_mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Squared error."""
    return _residual(outputs, targets) ** 2


def _reg_mae(outputs: Tensor, targets: Tensor) -> Tensor:
    """Absolute error (the median's loss)."""
    return _residual(outputs, targets).abs()


def _reg_huber(outputs: Tensor, targets: Tensor, delta: float) -> Tensor:
    """Huber (1964): quadratic within δ, linear beyond; δ = 1 on the standardized targets
    the trainer uses (1.345 would give 95% efficiency under unit-variance gaussian noise)."""
    r = _residual(outputs, targets)
    return F.huber_loss(r, torch.zeros_like(r), reduction="none", delta=delta)


_REGRESSION: dict[str, _Spec] = {
    "mse": _Spec(_reg_mse, {}, {}),
    "mae": _Spec(_reg_mae, {}, {}),
    "huber": _Spec(_reg_huber, {"delta": 1.0}, {"delta": _POSITIVE}),
}

LOSSES: tuple[str, ...] = tuple(_CLASSIFICATION)
REGRESSION_LOSSES: tuple[str, ...] = tuple(_REGRESSION)

# ---- tuning grids ---------------------------------------------------------------------------
# Per loss, the values of its main hyperparameters a fair tuning on validation may try: the
# grid is the Cartesian product, at most 4 points per loss, the others stay at their defaults.
# Training uses Adam, which ignores a constant loss scale: for a weighted sum only the ratio
# of the weights matters, so one weight is tuned and the other fixed. Sources: docs/baselines.md.
TUNING_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "ce": {},
    "mae": {},
    "mse": {},
    "label_smoothing": {"eps": (0.05, 0.1, 0.2, 0.4)},
    "huber": {"delta": (0.1, 0.25, 0.5, 1.0)},
    "focal": {"gamma": (0.5, 1.0, 2.0, 5.0)},
    "gce": {"q": (0.3, 0.5, 0.7, 0.9)},
    "sce": {"alpha": (0.01, 0.1, 1.0, 10.0)},
    "nce_rce": {"beta": (0.1, 1.0, 10.0, 100.0)},
    "taylor_ce": {"t": (1, 2, 4, 6)},
    "bi_tempered": {"t1": (0.6, 0.8), "t2": (1.2, 2.0)},
    "ganetic": {},
    "ngl": {},
    "anl_ce": {"alpha": (1.0, 10.0), "beta": (1.0, 5.0)},
    "nce_agce": {"a": (4.0, 6.0), "q": (0.2, 1.5)},
    "nce_aul": {"a": (3.0, 6.3), "q": (0.1, 1.5)},
    "ce_eps_mae": {"alpha": (0.01, 0.05), "m": (1e3, 1e5)},
    "js": {"pi1": (0.1, 0.3, 0.7, 0.9)},
    "poly1": {"eps": (-1.0, 1.0, 2.0, 5.0)},
    "logit_clip": {"tau": (0.4, 0.667, 1.0, 2.0)},
}
REGRESSION_TUNING_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "mse": {},
    "mae": {},
    "huber": {"delta": (0.5, 1.0, 1.345, 2.0)},
}


def _registry(kind: str) -> dict[str, _Spec]:
    if kind == TaskKind.CLASSIFICATION:
        return _CLASSIFICATION
    if kind == TaskKind.REGRESSION:
        return _REGRESSION
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(LOSS_KINDS)}")


def _spec(name: str, kind: str) -> _Spec:
    registry = _registry(kind)
    if name not in registry:
        raise ValueError(f"unknown {kind} loss {name!r}; allowed: {', '.join(registry)}")
    return registry[name]


@dataclass(frozen=True)
class PerSampleLoss:
    """A named loss with fixed hyperparameters: (outputs, targets) -> per-sample losses (n,).
    Holds only its name and numbers, so it pickles to any worker; build it with `build_loss`,
    which validates."""

    name: str
    kind: str = TaskKind.CLASSIFICATION
    params: tuple[tuple[str, float], ...] = ()

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        spec = _spec(self.name, self.kind)
        params = {k: v for k, v in self.params if k != spec.weight_l1}
        return spec.fn(outputs, targets, **params)

    @property
    def weight_l1(self) -> float:
        """δ of the penalty δ‖θ‖₁ on the model's parameters that this loss asks of the
        trainer (`lossevo.evaluation.training.train_models` adds δ·sign(θ) to each of its models'
        gradients); 0 for a pure function of the outputs. Calling the loss never includes it."""
        key = _spec(self.name, self.kind).weight_l1
        return float(dict(self.params)[key]) if key is not None else 0.0

    def __repr__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params)})"


def loss_defaults(name: str, kind: str = TaskKind.CLASSIFICATION) -> dict[str, float]:
    """The default hyperparameters of a named loss (official code, MNIST family where given)."""
    return dict(_spec(name, kind).defaults)


def grid_points(name: str, kind: str = TaskKind.CLASSIFICATION) -> list[dict[str, float]]:
    """The points of the loss's declared tuning grid, as `build_loss` overrides (the Cartesian
    product of `TUNING_GRIDS[name]`); `[{}]` (the defaults alone) when nothing is tuned."""
    _spec(name, kind)
    grid = (TUNING_GRIDS if kind == TaskKind.CLASSIFICATION else REGRESSION_TUNING_GRIDS)[name]
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def build_loss(name: str, kind: str = TaskKind.CLASSIFICATION,
               **params: float) -> PerSampleLoss:
    """The named loss with its defaults, overridden by `params` (validated against the
    loss's allowed ranges). Names: `LOSSES` (classification), `REGRESSION_LOSSES`."""
    spec = _spec(name, kind)
    values: dict[str, float] = dict(spec.defaults)
    for key, value in params.items():
        if key not in spec.defaults:
            allowed = ", ".join(spec.defaults) or "none"
            raise ValueError(f"unknown hyperparameter {key!r} for loss {name!r}; "
                             f"allowed: {allowed}")
        rng = spec.ranges[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value not in rng:
            raise not_allowed(f"{name} hyperparameter {key}", value, str(rng))
        values[key] = int(value) if rng.integer else float(value)
    return PerSampleLoss(name, kind, tuple(values.items()))
