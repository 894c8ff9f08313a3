"""Batched training: equals plain per-model torch training; failures stay in their slice."""

from __future__ import annotations

import dataclasses

import torch

from lossevo.evaluation.models import build_module, init_params, stacked_forward
from lossevo.evaluation.optimizers import ignores_loss_scale, make_optimizer
from lossevo.evaluation.tasks import Budget, ModelSpec, OptimizerName
from lossevo.evaluation.training import Group, data_orders, train_models

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


def _plain_loop(params, x, y, seeds, budget, make_opt, scale: float = 1.0):
    """Per model, one nn.Sequential and one torch optimizer: what the stacked step must equal."""
    out = []
    for m, seed in enumerate(seeds):
        net = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(params[name][m])
        opt = make_opt(net.parameters())
        for order in data_orders([seed], x.shape[0], budget.epochs):
            for s in range(0, x.shape[0], budget.batch_size):
                idx = order[0, s:s + budget.batch_size]
                opt.zero_grad()
                (scale * torch.nn.functional.cross_entropy(net(x[idx]), y[m, idx])).backward()
                opt.step()
        out.append(dict(net.named_parameters()))
    return out


def test_sgd_with_momentum_equals_plain_torch_loop():
    module, params, x, y = _problem()
    budget = Budget(epochs=3, batch_size=16, lr=5e-2, weight_decay=1e-3, optimizer="sgd",
                    momentum=0.8)
    seeds = [7, 8, 9]
    res = train_models(module, params, x, y, [Group(ce, 0, 3)], budget, seeds, shared_x=True)
    assert res.failures == [None]
    plain = _plain_loop(params, x, y, seeds, budget, lambda ps: torch.optim.SGD(
        ps, lr=5e-2, momentum=0.8, weight_decay=1e-3))
    for m, net_params in enumerate(plain):
        for name, p in net_params.items():
            torch.testing.assert_close(res.params[name][m], p.detach(), rtol=1e-4, atol=1e-5)
    adam = train_models(module, params, x, y, [Group(ce, 0, 3)],
                        dataclasses.replace(budget, optimizer=OptimizerName.ADAM), seeds, True)
    assert not torch.allclose(adam.params["0.weight"], res.params["0.weight"])


def test_sgd_sees_the_loss_scale_and_adam_does_not():
    module, params, x, y = _problem()
    seeds = [7, 8, 9]

    def scaled(out, tgt):
        return 1000.0 * ce(out, tgt)

    def train(budget, loss):
        return train_models(module, params, x, y, [Group(loss, 0, 3)], budget, seeds, True).params

    adam = Budget(epochs=2, batch_size=16, lr=1e-2)
    sgd = Budget(epochs=2, batch_size=16, lr=1e-2, optimizer="sgd")
    for name in params:
        torch.testing.assert_close(train(adam, scaled)[name], train(adam, ce)[name],
                                   rtol=1e-3, atol=1e-4)
    moved = (train(sgd, scaled)["0.weight"] - params["0.weight"]).norm()
    assert moved > 100 * (train(sgd, ce)["0.weight"] - params["0.weight"]).norm()


def test_make_optimizer_builds_what_the_budget_names():
    leaves = [torch.zeros(2, 3, requires_grad=True)]
    adam = make_optimizer(leaves, Budget(lr=2e-3, weight_decay=1e-4))
    assert type(adam) is torch.optim.Adam
    assert adam.defaults["lr"] == 2e-3 and adam.defaults["weight_decay"] == 1e-4
    sgd = make_optimizer(leaves, Budget(lr=0.1, optimizer="sgd", momentum=0.5))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.5
    assert ignores_loss_scale(Budget()) and not ignores_loss_scale(Budget(optimizer="sgd"))
    assert not ignores_loss_scale(Budget(weight_decay=1e-4))
