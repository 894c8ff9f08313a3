import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from lossevo.baselines.losses import (
    LOSSES,
    REGRESSION_LOSSES,
    PerSampleLoss,
    build_loss,
    loss_defaults,
)

LOGITS = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 1.0], [1.0, 1.0, -2.0]],
                      dtype=torch.float64)
TARGETS = torch.tensor([0, 2, 0, 1])


def _p_true(logits=LOGITS, targets=TARGETS):
    return torch.softmax(logits, -1)[torch.arange(len(targets)), targets]


def _one_hot(logits=LOGITS, targets=TARGETS):
    return F.one_hot(targets, logits.shape[-1]).to(logits.dtype)


def _ce(logits=LOGITS, targets=TARGETS):
    return F.cross_entropy(logits, targets, reduction="none")


def test_names_and_defaults():
    assert set(LOSSES) == {"ce", "mae", "mse", "label_smoothing", "huber", "focal", "gce",
                           "sce", "nce_rce", "taylor_ce", "bi_tempered", "ganetic", "ngl",
                           "anl_ce", "nce_agce", "nce_aul", "ce_eps_mae", "js", "poly1",
                           "logit_clip"}
    assert REGRESSION_LOSSES == ("mse", "mae", "huber")
    assert loss_defaults("gce") == {"q": 0.7}
    # official MNIST settings; A = log 1e-4 from the one-hot clipped at 1e-4 in their code
    assert loss_defaults("sce") == pytest.approx({"alpha": 0.01, "beta": 1.0, "A": -9.2103404})
    assert loss_defaults("nce_rce") == pytest.approx({"alpha": 1.0, "beta": 10.0,
                                                      "A": -9.2103404})
    assert loss_defaults("huber", "regression") == {"delta": 1.0}


def test_repr_is_readable_and_unique():
    assert repr(build_loss("gce")) == "gce(q=0.7)"
    assert repr(build_loss("ce")) == "ce"
    assert repr(build_loss("taylor_ce", t=3)) == "taylor_ce(t=3)"
    labels = {repr(build_loss(n)) for n in LOSSES} | {repr(build_loss("gce", q=0.5))}
    assert len(labels) == len(LOSSES) + 1


@pytest.mark.parametrize(("name", "expected"), [
    ("ce", lambda: _ce()),
    ("mae", lambda: 2 * (1 - _p_true())),
    ("mse", lambda: ((torch.softmax(LOGITS, -1) - _one_hot()) ** 2).sum(-1)),
    ("label_smoothing",
     lambda: F.cross_entropy(LOGITS, TARGETS, reduction="none", label_smoothing=0.1)),
    ("huber", lambda: F.huber_loss(torch.softmax(LOGITS, -1), _one_hot(), reduction="none",
                                   delta=0.5).sum(-1)),
    ("focal", lambda: -(1 - _p_true()) ** 2 * torch.log(_p_true())),
    ("gce", lambda: (1 - _p_true() ** 0.7) / 0.7),
    ("sce", lambda: 0.01 * _ce() + math.log(1e4) * (1 - _p_true())),
    ("nce_rce", lambda: _ce() / -torch.log_softmax(LOGITS, -1).sum(-1)
     + 10 * math.log(1e4) * (1 - _p_true())),
    ("taylor_ce", lambda: (1 - _p_true()) + (1 - _p_true()) ** 2 / 2),
    ("ganetic", lambda: (torch.softmax(LOGITS, -1) ** 3
                         + torch.sqrt(3.985 * _one_hot() / (torch.softmax(LOGITS, -1) + 1e-8)
                                      + 1e-8)).sum(-1)),
    ("ngl", lambda: (torch.exp(2.4092 - torch.softmax(LOGITS, -1) * (1 + _one_hot()))
                     - torch.cos(torch.cos(torch.sin(torch.softmax(LOGITS, -1))))).sum(-1)),
])
def test_matches_direct_formula(name, expected):
    torch.testing.assert_close(build_loss(name)(LOGITS, TARGETS), expected())


def _bi_tempered_reference(logits, targets, t1, t2, num_iters=5):
    """Transcribed from google/bi-tempered-loss (PyTorch port): fixed-point normalization."""
    def log_t(u, t):
        return torch.log(u) if t == 1 else (u ** (1 - t) - 1) / (1 - t)

    def exp_t(u, t):
        return torch.exp(u) if t == 1 else torch.relu(1 + (1 - t) * u) ** (1 / (1 - t))

    mu = logits.max(-1, keepdim=True).values
    a0 = logits - mu
    a = a0
    for _ in range(num_iters):
        a = a0 * exp_t(a, t2).sum(-1, keepdim=True) ** (1 - t2)
    norm = -log_t(1 / exp_t(a, t2).sum(-1, keepdim=True), t2) + mu
    p = exp_t(logits - norm, t2)
    y = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    temp1 = (log_t(y + 1e-10, t1) - log_t(p, t1)) * y
    temp2 = (y ** (2 - t1) - p ** (2 - t1)) / (2 - t1)
    return (temp1 - temp2).sum(-1)


def test_bi_tempered_matches_reference_code():
    torch.testing.assert_close(build_loss("bi_tempered")(LOGITS, TARGETS),
                               _bi_tempered_reference(LOGITS, TARGETS, 0.8, 1.2))


def test_tempered_softmax_normalizes():
    from lossevo.baselines.losses import _tempered_softmax

    p = _tempered_softmax(LOGITS * 5, 1.2, 20)
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=torch.float64), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize(("name", "params"), [
    ("bi_tempered", {"t1": 1.0, "t2": 1.0}),
    ("focal", {"gamma": 0.0}),
    ("label_smoothing", {"eps": 0.0}),
    ("sce", {"alpha": 1.0, "beta": 0.0}),
])
def test_reduces_to_ce(name, params):
    torch.testing.assert_close(build_loss(name, **params)(LOGITS, TARGETS), _ce())


def test_gce_approaches_ce_as_q_shrinks():
    assert (build_loss("gce", q=1e-6)(LOGITS, TARGETS) - _ce()).abs().max() < 1e-4
    # q = 1 is the MAE-like end: 1 - p_y
    torch.testing.assert_close(build_loss("gce", q=1.0)(LOGITS, TARGETS), 1 - _p_true())


def test_taylor_ce_approaches_ce_on_confident_predictions():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 1.0]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    ce = _ce(logits, targets)
    gaps = [(build_loss("taylor_ce", t=t)(logits, targets) - ce).abs().max() for t in (2, 8, 30)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-12


@pytest.mark.parametrize("name", LOSSES)
def test_finite_gradients_on_extreme_logits_float32(name):
    logits = torch.tensor([[50.0, -50.0, 0.0], [-50.0, 50.0, -50.0], [0.0, 0.0, 0.0],
                           [-50.0, -50.0, 50.0]], requires_grad=True)
    targets = torch.tensor([0, 2, 1, 2])  # confident right, confident wrong, uniform, right
    losses = build_loss(name)(logits, targets)
    assert losses.shape == (4,) and losses.dtype == torch.float32
    assert torch.isfinite(losses).all()
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", LOSSES)
def test_float64_outputs_stay_float64(name):
    assert build_loss(name)(LOGITS, TARGETS).dtype == torch.float64


@pytest.mark.parametrize("name", REGRESSION_LOSSES)
def test_regression_losses(name):
    out = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    y = torch.tensor([0.5, 1.0, 0.0])
    r = torch.tensor([-0.5, 0.0, 3.0])
    expected = {"mse": r**2, "mae": r.abs(),
                "huber": torch.where(r.abs() <= 1, 0.5 * r**2, r.abs() - 0.5)}[name]
    loss = build_loss(name, "regression")
    torch.testing.assert_close(loss(out, y), expected)
    torch.testing.assert_close(loss(out.squeeze(-1), y), expected)
    assert torch.isfinite(torch.autograd.grad(loss(out, y).sum(), out)[0]).all()
    with pytest.raises(ValueError, match="do not match"):
        loss(torch.zeros(3, 2), y)


@pytest.mark.parametrize("name", LOSSES)
def test_pickle_round_trip(name):
    loss = build_loss(name)
    back = pickle.loads(pickle.dumps(loss))
    assert back == loss and repr(back) == repr(loss)
    torch.testing.assert_close(back(LOGITS, TARGETS), loss(LOGITS, TARGETS))


def test_errors_name_the_bad_value_and_the_allowed():
    with pytest.raises(ValueError, match=r"'cross_entropy'.*allowed: ce, mae"):
        build_loss("cross_entropy")
    with pytest.raises(ValueError, match=r"'focal'.*allowed: mse, mae, huber"):
        build_loss("focal", "regression")
    with pytest.raises(ValueError, match=r"'binary'.*allowed: classification, regression"):
        build_loss("ce", "binary")
    with pytest.raises(ValueError, match=r"'p'.*allowed: q"):
        build_loss("gce", p=0.5)
    with pytest.raises(ValueError, match=r"'gamma'.*allowed: none"):
        build_loss("ce", gamma=2.0)
    with pytest.raises(ValueError, match=r"q = 0.0.*\(0, 1\]"):
        build_loss("gce", q=0.0)
    with pytest.raises(ValueError, match=r"t = 2.5.*integer >= 1"):
        build_loss("taylor_ce", t=2.5)
    with pytest.raises(ValueError, match=r"t2 = 0.9"):
        build_loss("bi_tempered", t2=0.9)
    with pytest.raises(ValueError, match=r"eps = nan"):
        build_loss("label_smoothing", eps=math.nan)
    with pytest.raises(ValueError, match=r"A = '-4'"):
        build_loss("sce", A="-4")
    assert isinstance(build_loss("gce", q=1), PerSampleLoss)  # ints are numbers


def _toy_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    x = x + 0.3 * (2 * y - 1).unsqueeze(1) * torch.tensor([1.0, 0.5])  # a margin
    return x, y


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_trains_a_linear_model(name):
    x, y = _toy_problem()
    g = torch.Generator().manual_seed(1)
    w = (0.1 * torch.randn(2, 2, generator=g)).requires_grad_(True)
    b = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    loss = build_loss(name)
    for _ in range(200):
        opt.zero_grad()
        loss(x @ w + b, y).mean().backward()
        opt.step()
    accuracy = ((x @ w + b).argmax(-1) == y).double().mean().item()
    assert accuracy > 0.9


def test_end_to_end_through_evaluate():
    from lossevo import evaluate
    from lossevo.evaluation.tasks import load_task

    task = load_task("digits-sym-0.4").with_overrides(model={"widths": [32]},
                                                      budget={"epochs": 2})
    result = evaluate(build_loss("gce"), task, instances=2)
    assert result.rejected is None, result.rejected
    assert result.loss == "gce(q=0.7)"
    # 2 epochs of GCE under 40% noise: well above chance (0.1), not yet converged
    assert result.metrics["accuracy.clean.mean"] > 0.2
