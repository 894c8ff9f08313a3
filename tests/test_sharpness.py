"""Sharpness: power iteration on HVPs finds the top Hessian eigenvalue, per stacked model."""

from __future__ import annotations

import torch
from torch.func import functional_call

from lossevo.evaluation.fitness import evaluate
from lossevo.evaluation.models import build_module, init_params
from lossevo.evaluation.sharpness import top_hessian_eigenvalue
from lossevo.evaluation.tasks import ModelSpec, load_task


def test_matches_the_explicit_hessian():
    module = build_module(ModelSpec(widths=()), 4, 3)  # linear softmax: small exact Hessian
    params = init_params(module, [0, 1], torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=g) * 3, torch.randint(0, 3, (30,), generator=g)
    est = top_hessian_eigenvalue(module, params, x, y, iters=100)
    for m in range(2):
        names = list(params)
        flat = torch.cat([params[k][m].flatten() for k in names])

        def loss(theta, m=m, names=names):
            p, o = {}, 0
            for k in names:
                n = params[k][m].numel()
                p[k] = theta[o:o + n].view(params[k][m].shape)
                o += n
            return torch.nn.functional.cross_entropy(functional_call(module, p, (x,)), y)

        top = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat)).max()
        assert abs(est[m] - top) < 1e-3 * max(1.0, float(top))


def test_optional_metric_in_evaluate():
    task = load_task("breast_cancer-sym-0.3").with_overrides(
        budget={"epochs": 2}, environments=[{"kind": "clean"}], sharpness=True)
    ev = evaluate("mul(-1.0, mul(y_true, log(y_pred)))", task, instances=2)
    assert ev.metrics["sharpness.train.mean"] > 0
    assert "sharpness.worst_env.mean" not in ev.metrics
