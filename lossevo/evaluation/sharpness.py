"""Sharpness of trained solutions: the top Hessian eigenvalue of the training loss.

Power iteration on Hessian-vector products (forward-over-reverse, `torch.func.jvp` of
`torch.func.grad`), for all stacked models at once under vmap. The loss is cross-entropy on the
clean training labels (MSE for regression), the same for every candidate, so sharpness is
comparable between losses.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, jvp, vmap

from lossevo.evaluation.models import Params

__all__ = ["top_hessian_eigenvalue"]


def top_hessian_eigenvalue(
    module: torch.nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
    *, iters: int = 20, seed: int = 0,
) -> torch.Tensor:
    """(M,) estimates of the largest Hessian eigenvalue at each model's parameters.
    x (N, D) and y (N,) are shared; y float means regression (MSE), int64 classification."""
    regression = y.is_floating_point()
    frozen = {k: v.detach() for k, v in params.items()}

    def loss(p: Params) -> torch.Tensor:
        out = functional_call(module, p, (x,))
        if regression:
            return torch.nn.functional.mse_loss(out.squeeze(-1), y)
        return torch.nn.functional.cross_entropy(out, y)

    def hvp(p: Params, v: Params) -> Params:
        return jvp(grad(loss), (p,), (v,))[1]

    batched = vmap(hvp)
    g = torch.Generator().manual_seed(seed)
    v = {k: torch.randn(t.shape, generator=g).to(t.device) for k, t in frozen.items()}

    def normalized(u: Params) -> Params:
        norm = torch.sqrt(sum(t.flatten(1).pow(2).sum(1) for t in u.values()))
        return {k: t / norm.view(-1, *[1] * (t.dim() - 1)).clamp_min(1e-30) for k, t in u.items()}

    v = normalized(v)
    eig = torch.zeros(next(iter(frozen.values())).shape[0], device=x.device)
    for _ in range(iters):
        hv = batched(frozen, v)
        eig = sum((hv[k] * v[k]).flatten(1).sum(1) for k in v)
        v = normalized(hv)
    return eig.detach()
