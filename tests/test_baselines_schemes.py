"""Training schemes: every scheme trains and is paired/deterministic; each one's math on
hand-made tensors; degenerate settings equal plain training; applicability and bad input."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

import dro
from dro.nn import cvar_weights
from lossevo import evaluate, evaluate_many
from lossevo.baselines.scheme_inputs import box_mask, cutout_mask
from lossevo.baselines.scheme_weighting import (
    class_weights,
    cvar_weights_rows,
    group_dro_step,
)
from lossevo.baselines.schemes import SCHEMES, build_scheme
from lossevo.evaluation.models import build_module, init_params
from lossevo.evaluation.tasks import Budget, ModelSpec, load_task
from lossevo.evaluation.training import Batch, Group, SchemeContext, TrainingScheme, train_models

CPU = torch.device("cpu")
TINY = load_task("digits-sym-0.4").with_overrides(
    model={"widths": [32]}, budget={"epochs": 2, "batch_size": 128})


def ce(out, tgt):
    return torch.nn.functional.cross_entropy(out, tgt, reduction="none")


@pytest.mark.parametrize("name", SCHEMES)
def test_every_scheme_trains_to_finite_metrics_deterministically(name):
    scheme = build_scheme(name)
    first = evaluate(ce, TINY, instances=2, seed=3, scheme=scheme, device="cpu")
    again = evaluate(ce, TINY, instances=2, seed=3, scheme=scheme, device="cpu")
    assert first.rejected is None
    assert first.metrics and all(math.isfinite(v) for v in first.metrics.values())
    assert first.metrics == again.metrics
    assert pickle.loads(pickle.dumps(scheme)) == scheme


def test_scheme_changes_training_and_no_scheme_is_plain():
    plain = evaluate(ce, TINY, instances=2, device="cpu")
    explicit = evaluate(ce, TINY, instances=2, device="cpu", scheme=None)
    mixed = evaluate(ce, TINY, instances=2, device="cpu", scheme=build_scheme("mixup"))
    assert plain.metrics == explicit.metrics
    assert mixed.per_instance != plain.per_instance


def test_scheme_draws_do_not_depend_on_batch_mates():
    scheme = build_scheme("mixup")
    alone = evaluate(ce, TINY, instances=2, scheme=scheme, device="cpu")
    both = evaluate_many([ce, "mul(y_true, sub(1.0, y_pred))"], TINY, instances=2,
                         scheme=scheme, device="cpu")
    assert both[0].metrics == alone.metrics


# ----------------------------------------------------------------- degenerate = plain


def _problem(n_models: int = 2, n: int = 60):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 64, generator=g)
    y = torch.randint(0, 4, (n_models, n), generator=g)
    module = build_module(ModelSpec(widths=(8,)), 64, 4)
    return module, init_params(module, [11, 12][:n_models], CPU), x, y


def _train(scheme):
    module, params, x, y = _problem()
    budget = Budget(epochs=2, batch_size=16, lr=1e-2)
    state = None
    if scheme is not None:
        ctx = SchemeContext(x, y, True, 4, (5, 6), budget, None)
        state = scheme.init_state(ctx)
    res = train_models(module, params, x, y, [Group(ce, 0, 2)], budget, [1, 2], True,
                       scheme, state)
    assert res.failures == [None]
    return res.params


@pytest.mark.parametrize("name, params", [
    ("mixup", {"alpha": 0.0}), ("cutmix", {"alpha": 0.0}), ("cutout", {"size": 0}),
    ("elr", {"lam": 0.0}), ("sam", {"rho": 0.0}), ("chi2_dro", {"radius": 0.0}),
    ("sat", {"alpha": 1.0, "warmup": 0.0}), ("wasserstein_dro", {"steps": 0}),
    ("adv_fgsm", {"epsilon": 0.0}), ("adv_pgd", {"epsilon": 0.0}),
    ("maxup", {"m": 1, "sigma": 0.0, "augment": "gauss"}),
])
def test_degenerate_settings_equal_plain_training(name, params):
    plain = _train(None)
    other = _train(build_scheme(name, **params))
    for k in plain:
        torch.testing.assert_close(other[k], plain[k], rtol=1e-5, atol=1e-6)


def test_base_class_is_plain_training():
    plain, base = _train(None), _train(TrainingScheme())
    assert all(torch.equal(plain[k], base[k]) for k in plain)


def test_sam_with_radius_moves_differently():
    plain, sam = _train(None), _train(build_scheme("sam", rho=0.5))
    assert not torch.allclose(plain["0.weight"], sam["0.weight"])


# ----------------------------------------------------------------- the math per scheme


def _loss_batch(losses: torch.Tensor, y: torch.Tensor | None = None) -> tuple[Batch, dict]:
    """A batch whose per-sample losses are w * losses (w a (M, 1, 1) parameter = 1)."""
    m, b = losses.shape
    params = {"w": torch.ones(m, 1, 1, requires_grad=True)}
    y = torch.zeros(m, b, dtype=torch.long) if y is None else y
    batch = Batch(losses.unsqueeze(-1), y, torch.arange(b).expand(m, b), 0,
                  lambda p, x: p["w"] * x, lambda out, _: out.sum(-1))
    return batch, params


def test_chi2_and_cvar_rows_match_dro_risks():
    g = torch.Generator().manual_seed(1)
    losses = torch.rand(3, 20, generator=g, dtype=torch.float64)
    losses[2, :5] = losses[2, 5]  # ties
    batch, params = _loss_batch(losses)
    chi = build_scheme("chi2_dro", radius=1.5).objective(None, batch, params)
    cvar = build_scheme("cvar_dro", alpha=0.23).objective(None, batch, params)
    for i, row in enumerate(losses):
        torch.testing.assert_close(chi[i], dro.chi2_risk(row, 1.5))
        torch.testing.assert_close(cvar[i], dro.cvar_risk(row, 0.23))
        torch.testing.assert_close(cvar_weights_rows(losses, 0.23)[i],
                                   cvar_weights(row, 0.23))


def test_group_dro_step_matches_dro_and_stays_a_distribution():
    g = torch.Generator().manual_seed(2)
    q = torch.full((2, 3), 1 / 3)
    refs = [dro.GroupDRO(3, step_size=0.5), dro.GroupDRO(3, step_size=0.5)]
    for _ in range(4):
        losses = torch.rand(2, 12, generator=g) * 3
        groups = torch.randint(0, 2, (2, 12), generator=g)  # group 2 never present
        q, risk = group_dro_step(q, losses, groups, 0.5)
        for i, ref in enumerate(refs):
            torch.testing.assert_close(risk[i], ref(losses[i], groups[i]))
            torch.testing.assert_close(q[i], ref.q)
        assert bool((q >= 0).all()) and torch.allclose(q.sum(1), torch.ones(2))
    assert bool((q[:, 2] < 1 / 3).all())  # an absent group is not up-weighted


def test_class_weights_balance_the_noisy_classes():
    y = torch.tensor([[0, 0, 0, 1], [2, 2, 1, 1]])
    w = class_weights(y, 3)
    torch.testing.assert_close(w[0], torch.tensor([4 / 6, 2.0, 0.0]))
    torch.testing.assert_close(w[1], torch.tensor([0.0, 1.0, 1.0]))
    batch, params = _loss_batch(torch.ones(1, 4), y[:1])
    out = build_scheme("cw_erm").objective(w[:1], batch, params)
    assert float(out.detach()) == pytest.approx(1.0)  # mean weight over the training set is 1


def test_elr_target_is_an_ema_of_the_predictions():
    scheme = build_scheme("elr", beta=0.5, lam=2.0)
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])
    state = scheme.init_state(SchemeContext(torch.zeros(2, 1), torch.zeros(1, 2, dtype=torch.long),
                                            True, 2, (0,), Budget(), None))
    batch = Batch(logits, torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 1]]), 0,
                  lambda p, x: x * p["w"], lambda out, y: torch.zeros(out.shape[:2]) * out.sum())
    params = {"w": torch.ones(1, 1, 1, requires_grad=True)}
    for _ in range(2):
        value = scheme.objective(state, batch, params)
    p = torch.softmax(logits, -1).clamp(1e-4, 1 - 1e-4)
    t = 0.5 * (0.5 * p) + 0.5 * p
    torch.testing.assert_close(state.t, t)
    torch.testing.assert_close(value, (2.0 * torch.log(1 - (t * p).sum(-1))).mean(1))


def test_cutmix_and_cutout_masks():
    box = box_mask(torch.tensor([[1, 4, 2, 7]]))
    assert float(box.sum()) == 3 * 5
    assert box.view(8, 8)[1, 2] == 1 and box.view(8, 8)[4, 2] == 0
    holes = cutout_mask(torch.tensor([[[4, 4], [0, 0]]]), 4)
    assert float((holes[0, 0] == 0).sum()) == 16 and float((holes[0, 1] == 0).sum()) == 4


def test_group_dro_groups_are_the_input_environments_else_the_classes():
    x = torch.rand(40, 64)
    y = torch.randint(0, 10, (2, 40))
    ctx = SchemeContext(x, y, True, 10, (1, 2), Budget(), load_task("digits-sym-0.4"))
    state = build_scheme("group_dro").init_state(ctx)
    assert state.q.shape == (2, 3)  # clean, gauss-0.1, gauss-0.3
    clean = state.groups == 0
    torch.testing.assert_close(state.x[clean], x.expand(2, 40, 64)[clean])
    assert not torch.allclose(state.x[~clean], x.expand(2, 40, 64)[~clean])
    no_env = SchemeContext(x, y, True, 10, (1, 2), Budget(), None)
    fallback = build_scheme("group_dro").init_state(no_env)
    assert fallback.q.shape == (2, 10) and fallback.x is None


# ----------------------------------------------------------------- applicability, bad input


def test_applies_to_names_the_reason_and_evaluate_rejects():
    cancer, poly = load_task("breast_cancer-sym-0.3"), load_task("poly3-outliers")
    assert build_scheme("cutmix").applies_to(cancer) == (
        "cutmix needs image inputs (digits); task breast_cancer-sym-0.3 has tabular inputs")
    assert build_scheme("sam").applies_to(cancer) is None
    assert build_scheme("mixup").applies_to(TINY) is None
    assert "classification" in build_scheme("elr").applies_to(poly)
    ev = evaluate(ce, cancer, instances=1, scheme=build_scheme("cutout"), device="cpu")
    assert ev.rejected is not None and "image inputs" in ev.rejected and ev.trainings == 0


def test_failing_scheme_or_nan_rejects_with_a_reason():
    class Broken(TrainingScheme):
        def objective(self, state, batch, params):
            raise RuntimeError("bad scheme")

    ev = evaluate(ce, TINY, instances=1, scheme=Broken(), device="cpu")
    assert "raised RuntimeError: bad scheme" in ev.rejected

    def nan_loss(out, tgt):
        return ce(out, tgt) * float("nan")

    evs = evaluate_many([nan_loss, ce], TINY, instances=1, scheme=build_scheme("sam"),
                        device="cpu")
    assert "non-finite" in evs[0].rejected and evs[1].rejected is None


@pytest.mark.parametrize("name, params, fragment", [
    ("nope", {}, "unknown scheme 'nope'; allowed: elr, sat"),
    ("sam", {"radius": 1.0}, "unknown parameter 'radius' for scheme 'sam'; allowed: rho"),
    ("sam", {"rho": -1.0}, "sam parameter rho=-1.0 is not allowed; allowed: a number >= 0"),
    ("cvar_dro", {"alpha": 1.0}, "allowed: a number in (0, 1)"),
    ("maxup", {"augment": "flip"}, "allowed: auto, gauss, cutout"),
    ("adv_pgd", {"steps": 0}, "allowed: an integer >= 1"),
    ("mixup", {"alpha": "big"}, "mixup parameter alpha='big'"),
    ("cw_erm", {"x": 1}, "allowed: none"),
])
def test_bad_names_and_parameters_raise(name, params, fragment):
    with pytest.raises(ValueError) as err:
        build_scheme(name, **params)
    assert fragment in str(err.value)


def test_sat_warmup_scales_with_the_budget():
    ctx = SchemeContext(torch.zeros(4, 2), torch.zeros(1, 4, dtype=torch.long), True, 3, (0,),
                        Budget(epochs=150), None)
    assert build_scheme("sat").init_state(ctx).warmup == 45
    assert np.isclose(build_scheme("sat", warmup=0.4).init_state(ctx).warmup, 60)
