"""Stacked models: per-seed init independent of batch composition; vmap equals one by one."""

from __future__ import annotations

import torch
from torch.func import functional_call

from lossevo.evaluation.models import build_module, init_params, stacked_forward
from lossevo.evaluation.tasks import ModelKind, ModelSpec

CPU = torch.device("cpu")


def test_init_depends_only_on_the_models_own_seed():
    module = build_module(ModelSpec(widths=(16,)), 8, 3)
    a = init_params(module, [1, 2, 3], CPU)
    b = init_params(module, [3, 9], CPU)
    for name in a:
        assert torch.equal(a[name][2], b[name][0])
        assert not torch.equal(a[name][0], a[name][1])
    bound = 1 / 8**0.5  # PyTorch's default U(±1/sqrt(fan_in))
    assert a["0.weight"].abs().max() <= bound and a["0.weight"].abs().max() > 0.9 * bound


def test_stacked_forward_matches_each_model_alone():
    module = build_module(ModelSpec(widths=(16, 16)), 8, 3)
    params = init_params(module, [4, 5], CPU)
    x = torch.randn(2, 7, 8, generator=torch.Generator().manual_seed(0))
    out = stacked_forward(module, params, x, shared=False)
    shared = stacked_forward(module, params, x[0], shared=True)
    for m in range(2):
        alone = functional_call(module, {k: v[m] for k, v in params.items()}, (x[m],))
        torch.testing.assert_close(out[m], alone)
    torch.testing.assert_close(shared[0], out[0])


def test_mlp_fast_path_equals_vmap_including_gradients():
    module = build_module(ModelSpec(widths=(16, 16)), 8, 3)
    params = {k: v.requires_grad_() for k, v in init_params(module, [4, 5, 6], CPU).items()}
    x = torch.randn(3, 7, 8, generator=torch.Generator().manual_seed(1))
    fast = stacked_forward(module, params, x, shared=False)
    slow = stacked_forward(module, params, x, shared=False, use_vmap=True)
    torch.testing.assert_close(fast, slow)
    g_fast = torch.autograd.grad(fast.square().sum(), list(params.values()))
    g_slow = torch.autograd.grad(slow.square().sum(), list(params.values()))
    for a, b in zip(g_fast, g_slow, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(stacked_forward(module, params, x[0], shared=True),
                               stacked_forward(module, params, x[0], shared=True, use_vmap=True))


def test_cnn_on_digits_shape():
    module = build_module(ModelSpec(ModelKind.CNN, (32,)), 64, 10)
    params = init_params(module, [0, 1, 2], CPU)
    out = stacked_forward(module, params, torch.rand(5, 64), shared=True)
    assert out.shape == (3, 5, 10)
