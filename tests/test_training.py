"""Batched training: equals plain per-model torch training; failures stay in their slice."""

from __future__ import annotations

import torch

from lossevo.models import build_module, init_params, stacked_forward
from lossevo.tasks import Budget, ModelSpec
from lossevo.training import Group, data_orders, train_models

CPU = torch.device("cpu")


def _problem(n_models: int = 3, n: int = 50):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, 3, (n_models, n), generator=g)
    module = build_module(ModelSpec(widths=(12,)), 6, 3)
    params = init_params(module, list(range(10, 10 + n_models)), CPU)
    return module, params, x, y


def ce(out, tgt):
    return torch.nn.functional.cross_entropy(out, tgt, reduction="none")


def test_batched_training_equals_plain_torch_loop():
    module, params, x, y = _problem()
    budget = Budget(epochs=3, batch_size=16, lr=1e-2, weight_decay=1e-3)
    seeds = [7, 8, 9]
    res = train_models(module, params, x, y, [Group(ce, 0, 3)], budget, seeds, shared_x=True)
    assert res.failures == [None]
    for m in range(3):
        net = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(params[name][m])
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
        for order in data_orders([seeds[m]], 50, 3):
            for s in range(0, 50, 16):
                idx = order[0, s:s + 16]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x[idx]), y[m, idx]).backward()
                opt.step()
        for name, p in net.named_parameters():
            torch.testing.assert_close(res.params[name][m], p.detach(), rtol=1e-4, atol=1e-5)


def test_failing_candidates_do_not_disturb_their_neighbours():
    module, params, x, y = _problem(n_models=4)
    budget = Budget(epochs=2, batch_size=16, lr=1e-2)
    calls = {"n": 0}

    def nan_later(out, tgt):
        calls["n"] += 1
        return ce(out, tgt) * (float("nan") if calls["n"] > 2 else 1.0)

    def raises(out, tgt):
        raise RuntimeError("boom")

    seeds = [1, 2, 3, 4]
    mixed = train_models(
        module, params, x, y,
        [Group(ce, 0, 2), Group(nan_later, 2, 3), Group(raises, 3, 4)], budget, seeds, True,
    )
    assert mixed.failures[0] is None
    assert "non-finite" in mixed.failures[1] and "epoch 1" in mixed.failures[1]
    assert mixed.failures[2] == "loss raised RuntimeError: boom"
    solo = train_models(module, {k: v[:2] for k, v in params.items()}, x, y[:2],
                        [Group(ce, 0, 2)], budget, seeds[:2], True)
    for name in solo.params:
        torch.testing.assert_close(mixed.params[name][:2], solo.params[name])


def test_per_model_inputs_and_orders():
    module, params, x, y = _problem(n_models=2)
    xs = torch.stack([x, x + 1])
    res = train_models(module, params, xs, y, [Group(ce, 0, 2)],
                       Budget(epochs=1, batch_size=8), [5, 5], shared_x=False)
    out = stacked_forward(module, res.params, xs, shared=False)
    assert torch.isfinite(out).all() and res.failures == [None]
    orders = list(data_orders([5, 6, 5], 20, 2))
    assert torch.equal(orders[0][0], orders[0][2]) and not torch.equal(orders[0][0], orders[1][0])
