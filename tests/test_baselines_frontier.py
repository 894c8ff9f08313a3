"""The 2021–2024 frontier losses against values computed here in numpy from the papers' and
official codes' formulas; ANL-CE's weight penalty through the batched trainer; tuning grids."""

import math

import numpy as np
import pytest
import torch

from lossevo.baselines.losses import (
    LOSSES,
    REGRESSION_LOSSES,
    REGRESSION_TUNING_GRIDS,
    TUNING_GRIDS,
    build_loss,
    grid_points,
    loss_defaults,
)
from lossevo.evaluation.models import build_module, init_params
from lossevo.evaluation.tasks import Budget, ModelSpec
from lossevo.evaluation.training import Group, data_orders, train_models

# rows: right and fairly sure; near uniform; confidently wrong; label with p < 1e-7;
# a tie for the top class (argmax = first index) with the label on the second
ROWS = [([2.0, -1.0, 0.5], 0), ([0.1, 0.2, 0.3], 2), ([-3.0, 4.0, 1.0], 0),
        ([20.0, 0.0, 0.0], 1), ([1.0, 1.0, -2.0], 1)]
LOGITS = torch.tensor([r for r, _ in ROWS], dtype=torch.float64)
TARGETS = torch.tensor([y for _, y in ROWS])


def _softmax(z):
    e = np.exp(np.asarray(z, dtype=np.float64) - max(z))
    return e / e.sum()


def _expected(fn):
    return torch.tensor([fn(_softmax(z), y, np.asarray(z)) for z, y in ROWS],
                        dtype=torch.float64)


def _nce(p, y):
    return math.log(p[y]) / np.log(p).sum()


def _anl_ce(p, y, _z, alpha=1.0, beta=1.0):
    a = -math.log(1e-7)
    s = a + np.log(np.clip(p, 1e-7, 1.0))
    return alpha * _nce(p, y) + beta * (1 - s[y] / s.sum())


def _agce(p, y, a, q):
    return ((a + 1) ** q - (a + p[y]) ** q) / q


def _aul(p, y, a, q):
    return ((a - p[y]) ** q - (a - 1) ** q) / q


def _ce_eps_mae(p, y, _z, alpha=0.01, beta=5.0, m=1e5):
    pt = p.copy()
    pt[np.argmax(p)] += m
    pt = np.maximum(pt / (1 + m), 1e-8)
    return alpha * -math.log(pt[y]) + beta * np.abs(p - np.eye(len(p))[y]).sum()


def _js(p, y, _z, pi1=0.7):
    e = np.eye(len(p))[y]
    mix = pi1 * e + (1 - pi1) * p
    log_mix = np.log(np.clip(mix, 1e-7, 1.0))
    kl_e = -log_mix[y]
    kl_p = sum(pk * (math.log(max(pk, 1e-7)) - lm) for pk, lm in zip(p, log_mix, strict=True))
    return (pi1 * kl_e + (1 - pi1) * kl_p) / (-(1 - pi1) * math.log(1 - pi1))


def _logit_clip(_p, y, z, tau=1.0):
    norm = math.sqrt(sum(v * v for v in z))
    if norm > 1 / tau:
        z = z / norm / tau
    return -math.log(_softmax(z)[y])


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("anl_ce", {}, _anl_ce),
    ("anl_ce", {"alpha": 5.0, "beta": 2.0, "delta": 0.3},
     lambda p, y, z: _anl_ce(p, y, z, 5.0, 2.0)),
    ("nce_agce", {}, lambda p, y, z: _agce(p, y, 4.0, 0.2)),  # MNIST: α = 0, β = 1
    ("nce_agce", {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
     lambda p, y, z: _nce(p, y) + 4 * _agce(p, y, 6.0, 1.5)),
    ("nce_aul", {}, lambda p, y, z: _aul(p, y, 3.0, 0.1)),
    ("nce_aul", {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
     lambda p, y, z: _nce(p, y) + 4 * _aul(p, y, 6.3, 1.5)),
    ("ce_eps_mae", {}, _ce_eps_mae),
    ("ce_eps_mae", {"alpha": 0.02, "beta": 5.0, "m": 1e3},
     lambda p, y, z: _ce_eps_mae(p, y, z, 0.02, 5.0, 1e3)),
    ("js", {}, _js),
    ("js", {"pi1": 0.1}, lambda p, y, z: _js(p, y, z, 0.1)),
    ("poly1", {}, lambda p, y, z: -math.log(p[y]) + (1 - p[y])),
    ("poly1", {"eps": -1.0}, lambda p, y, z: -math.log(p[y]) - (1 - p[y])),
    ("logit_clip", {}, _logit_clip),
    ("logit_clip", {"tau": 0.2}, lambda p, y, z: _logit_clip(p, y, z, 0.2)),
])
def test_matches_numpy_formula(name, params, expected):
    torch.testing.assert_close(build_loss(name, **params)(LOGITS, TARGETS), _expected(expected),
                               rtol=1e-6, atol=1e-9)


def test_values_worked_by_hand():
    uniform2 = torch.zeros(1, 2, dtype=torch.float64)
    y0 = torch.tensor([0])
    # p = (1/2, 1/2): NCE = 1/2 and NNCE = 1 − (A + log ½) / (2(A + log ½)) = 1/2
    assert build_loss("anl_ce")(uniform2, y0).item() == pytest.approx(1.0)
    # AGCE at p_y = ½ with a = 4, q = 0.2: (5^0.2 − 4.5^0.2) / 0.2 = 0.143848...
    assert build_loss("nce_agce")(uniform2, y0).item() == pytest.approx(0.1438481, abs=1e-6)
    # Poly-1: log 2 + ½
    assert build_loss("poly1")(uniform2, y0).item() == pytest.approx(math.log(2) + 0.5)
    # LogitClip: (3, 4) has norm 5, clipped to (0.6, 0.8); CE of label 0 = log(1 + e^0.2)
    z = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert build_loss("logit_clip")(z, y0).item() == pytest.approx(math.log1p(math.exp(0.2)))
    # ε-softmax, m = 1e5: label 1 is the argmax of (0, 1): p̃_1 = (p_1 + m) / (1 + m)
    z = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    p1 = math.e / (1 + math.e)
    got = build_loss("ce_eps_mae", alpha=1.0, beta=0.0)(z, torch.tensor([1])).item()
    assert got == pytest.approx(-math.log((p1 + 1e5) / (1 + 1e5)))


def test_js_tends_to_ce_as_pi1_vanishes():
    ce = torch.nn.functional.cross_entropy(LOGITS[:3], TARGETS[:3], reduction="none")
    torch.testing.assert_close(build_loss("js", pi1=1e-6)(LOGITS[:3], TARGETS[:3]), ce,
                               rtol=2e-3, atol=0)


def test_clamped_terms_pass_no_gradient():
    # p_1 ≈ 2e-9 < 1e-7: NNCE's clamped label term is flat; ε-softmax's p̃_1 < 1e-8 is too
    z = torch.tensor([[20.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1])
    (g,) = torch.autograd.grad(build_loss("ce_eps_mae", alpha=1.0, beta=0.0)(z, y).sum(), z)
    assert torch.equal(g, torch.zeros_like(g))
    assert build_loss("ce_eps_mae", alpha=1.0, beta=0.0)(z, y).item() == pytest.approx(
        -math.log(1e-8))
    # LogitClip below the bound is plain CE
    small = torch.tensor([[0.3, 0.4, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(build_loss("logit_clip")(small, y),
                               torch.nn.functional.cross_entropy(small, y, reduction="none"))


def test_official_defaults():
    assert loss_defaults("anl_ce") == {"alpha": 1.0, "beta": 1.0, "delta": 1e-6}
    assert loss_defaults("nce_agce") == {"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2}
    assert loss_defaults("nce_aul") == {"alpha": 0.0, "beta": 1.0, "a": 3.0, "q": 0.1}
    assert loss_defaults("ce_eps_mae") == {"alpha": 0.01, "beta": 5.0, "m": 1e5}
    assert loss_defaults("js") == {"pi1": 0.7}
    assert loss_defaults("poly1") == {"eps": 1.0}
    assert loss_defaults("logit_clip") == {"tau": 1.0}


def test_weight_l1_is_declared_not_computed():
    assert build_loss("anl_ce").weight_l1 == 1e-6
    assert build_loss("anl_ce", delta=0.5).weight_l1 == 0.5
    assert all(build_loss(n).weight_l1 == 0.0 for n in LOSSES if n != "anl_ce")
    # calling the loss never includes the penalty
    torch.testing.assert_close(build_loss("anl_ce", delta=0.5)(LOGITS, TARGETS),
                               build_loss("anl_ce", delta=0.0)(LOGITS, TARGETS))
    with pytest.raises(ValueError, match=r"delta = -1.0"):
        build_loss("anl_ce", delta=-1.0)
    with pytest.raises(ValueError, match=r"a = 1.0"):
        build_loss("nce_aul", a=1.0)
    with pytest.raises(ValueError, match=r"pi1 = 1.0"):
        build_loss("js", pi1=1.0)


def test_trainer_applies_the_weight_penalty_per_model():
    """Two models from the same start: the one whose loss declares δ = 0.05 equals a plain torch
    loop on mean(α·NCE + β·NNCE) + δ‖θ‖₁ and ends with a smaller ‖θ‖₁; its δ = 0 neighbour
    equals the loop without the penalty."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g)
    y = torch.randint(0, 3, (2, 40), generator=g)
    module = build_module(ModelSpec(widths=(8,)), 5, 3)
    params = init_params(module, [3, 3], torch.device("cpu"))
    budget = Budget(epochs=3, batch_size=16, lr=1e-2)
    losses = [build_loss("anl_ce", delta=0.05), build_loss("anl_ce", delta=0.0)]
    res = train_models(module, params, x, y, [Group(losses[0], 0, 1), Group(losses[1], 1, 2)],
                       budget, [7, 7], shared_x=True)
    assert res.failures == [None, None]
    l1 = [sum(v[m].abs().sum().item() for v in res.params.values()) for m in range(2)]
    assert l1[0] < 0.9 * l1[1]
    for m, delta in enumerate((0.05, 0.0)):
        net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(params[name][m])
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for order in data_orders([7], 40, 3):
            for s in range(0, 40, 16):
                idx = order[0, s:s + 16]
                opt.zero_grad()
                penalty = sum(p.abs().sum() for p in net.parameters())
                (losses[m](net(x[idx]), y[m, idx]).mean() + delta * penalty).backward()
                opt.step()
        for name, p in net.named_parameters():
            torch.testing.assert_close(res.params[name][m], p.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("kind", "names", "grids"), [
    ("classification", LOSSES, TUNING_GRIDS),
    ("regression", REGRESSION_LOSSES, REGRESSION_TUNING_GRIDS),
])
def test_every_loss_declares_a_small_valid_grid(kind, names, grids):
    assert set(grids) == set(names)
    for name in names:
        assert set(grids[name]) <= set(loss_defaults(name, kind))
        points = grid_points(name, kind)
        assert 1 <= len(points) <= 4
        for point in points:
            build_loss(name, kind, **point)  # every point is in range
        if not grids[name]:
            assert points == [{}]
    assert grid_points("anl_ce") == [{"alpha": 1.0, "beta": 1.0}, {"alpha": 1.0, "beta": 5.0},
                                     {"alpha": 10.0, "beta": 1.0}, {"alpha": 10.0, "beta": 5.0}]


@pytest.mark.parametrize(("kind", "grids"), [("classification", TUNING_GRIDS),
                                             ("regression", REGRESSION_TUNING_GRIDS)])
def test_every_grid_contains_the_defaults(kind, grids):
    for name, grid in grids.items():
        defaults = loss_defaults(name, kind)
        assert {k: defaults[k] for k in grid} in grid_points(name, kind), name
