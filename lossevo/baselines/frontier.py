"""The current stateless frontier of robust losses (2021–2024), as per-sample functions
(logits (n, C), class indices (n,)) -> (n,), registered by name in `lossevo.baselines.losses`.

Each follows its official code where the code and the paper differ (clamps included); the
docstrings say where. Defaults and sources are in docs/baselines.md. ANL-CE's δ‖θ‖₁ term is
not here: it needs the parameters, so the trainer adds it (see `PerSampleLoss.weight_l1`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["agce", "anl_ce", "aul", "ce_eps_mae", "js", "logit_clip", "nce", "nce_agce",
           "nce_aul", "poly1"]

Tensor = torch.Tensor


def _at(values: Tensor, targets: Tensor) -> Tensor:
    return values.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def nce(logits: Tensor, targets: Tensor) -> Tensor:
    """Normalized CE −log p_y / Σ_k(−log p_k) (Ma et al., ICML 2020). The denominator is
    ≥ C log C > 0, so NCE is finite for all finite logits."""
    log_p = torch.log_softmax(logits, dim=-1)
    return _at(log_p, targets) / log_p.sum(-1)


def anl_ce(logits: Tensor, targets: Tensor, alpha: float, beta: float) -> Tensor:
    """Active-negative loss α·NCE + β·NNCE (Ye et al., NeurIPS 2023), NNCE = 1 − (A + log p_y)
    / Σ_k (A + log p_k), p clamped to [1e-7, 1] and A = −log 1e-7 as in the official code
    (so every A + log p_k ≥ 0). Without the paper's δ‖θ‖₁ term, which the trainer adds."""
    log_p = torch.log_softmax(logits, dim=-1)
    # log of p clamped at 1e-7: same values and zero gradient below, without underflow.
    shifted = log_p.clamp_min(math.log(1e-7)) - math.log(1e-7)
    nnce = 1.0 - _at(shifted, targets) / shifted.sum(-1)  # Σ_k ≥ A − log C > 0
    return alpha * _at(log_p, targets) / log_p.sum(-1) + beta * nnce


def _p_true(logits: Tensor, targets: Tensor) -> Tensor:
    return _at(torch.log_softmax(logits, dim=-1), targets).exp()


def agce(logits: Tensor, targets: Tensor, a: float, q: float) -> Tensor:
    """Asymmetric GCE ((a + 1)^q − (a + p_y)^q) / q (Zhou et al., ICML 2021)."""
    return ((a + 1.0) ** q - (a + _p_true(logits, targets)) ** q) / q


def aul(logits: Tensor, targets: Tensor, a: float, q: float) -> Tensor:
    """Asymmetric unhinged loss ((a − p_y)^q − (a − 1)^q) / q (Zhou et al., ICML 2021); a > 1."""
    return ((a - _p_true(logits, targets)) ** q - (a - 1.0) ** q) / q


def nce_agce(logits: Tensor, targets: Tensor, alpha: float, beta: float, a: float,
             q: float) -> Tensor:
    """α·NCE + β·AGCE (Zhou et al., ICML 2021)."""
    return alpha * nce(logits, targets) + beta * agce(logits, targets, a, q)


def nce_aul(logits: Tensor, targets: Tensor, alpha: float, beta: float, a: float,
            q: float) -> Tensor:
    """α·NCE + β·AUL (Zhou et al., ICML 2021)."""
    return alpha * nce(logits, targets) + beta * aul(logits, targets, a, q)


def ce_eps_mae(logits: Tensor, targets: Tensor, alpha: float, beta: float, m: float) -> Tensor:
    """α·CE(p̃) + β·2(1 − p_y) with the ε-softmax p̃ = (p + m·onehot(argmax p)) / (1 + m)
    (Wang et al., NeurIPS 2024). As in the official code, p̃ is clamped at 1e-8 before the log,
    so a sample whose label gets p̃_y < 1e-8 contributes no CE gradient."""
    log_p_y = _at(torch.log_softmax(logits, dim=-1), targets)
    top = logits.argmax(-1) == targets  # the index is not differentiated, as in their code
    # off the argmax, log p̃_y = log p_y − log(1 + m) exactly: no underflow of p_y / (1 + m).
    log_pt = torch.where(top, torch.log((log_p_y.exp() + m) / (1.0 + m)),
                         log_p_y - math.log1p(m))
    ce = -log_pt.clamp_min(math.log(1e-8))
    return alpha * ce + beta * 2.0 * -torch.expm1(log_p_y)


def js(logits: Tensor, targets: Tensor, pi1: float) -> Tensor:
    """Jensen–Shannon loss (Englesson & Azizpour, NeurIPS 2021), single view:
    [π₁·KL(e_y‖m) + (1 − π₁)·KL(p‖m)] / (−(1 − π₁) log(1 − π₁)), m = π₁e_y + (1 − π₁)p;
    log m and log p clamped at 1e-7 as in the official code. CE-like as π₁ → 0, MAE-like as
    π₁ → 1."""
    log_p = torch.log_softmax(logits, dim=-1)
    p = log_p.exp()
    y = F.one_hot(targets, logits.shape[-1]).to(p.dtype)
    log_mix = (pi1 * y + (1.0 - pi1) * p).clamp(1e-7, 1.0).log()
    kl_label = -_at(log_mix, targets)  # KL(e_y‖m) = −log m_y
    kl_pred = (p * (log_p.clamp_min(math.log(1e-7)) - log_mix)).sum(-1)
    scale = -1.0 / ((1.0 - pi1) * math.log(1.0 - pi1))
    return scale * (pi1 * kl_label + (1.0 - pi1) * kl_pred)


def poly1(logits: Tensor, targets: Tensor, eps: float) -> Tensor:
    """Poly-1 CE + ε(1 − p_y) (Leng et al., ICLR 2022)."""
    ce = F.cross_entropy(logits, targets, reduction="none")
    return ce + eps * -torch.expm1(-ce)


def logit_clip(logits: Tensor, targets: Tensor, tau: float) -> Tensor:
    """CE on logits z rescaled to ‖z‖₂ ≤ 1/τ: z·min(1, (1/τ)/‖z‖) (Wei et al., ICML 2023). Their
    code rescales when ‖z‖ > τ (not 1/τ), the same rule at its default τ = 1 only; we follow
    the paper's definition. 1e-7 is added to the norm as in the code."""
    norm = torch.linalg.vector_norm(logits, dim=-1, keepdim=True)
    factor = ((1.0 / tau) / (norm + 1e-7)).clamp_max(1.0)
    return F.cross_entropy(logits * factor, targets, reduction="none")
