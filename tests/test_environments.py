"""Test environments: shifts do what they say; attacks stay in the ε-ball and hurt."""

from __future__ import annotations

import numpy as np
import torch

from lossevo.evaluation.data import POLY3_RANGE, load_dataset, poly3
from lossevo.evaluation.environments import adversarial_inputs, shifted_set
from lossevo.evaluation.models import build_module, init_params, stacked_forward
from lossevo.evaluation.tasks import Budget, Environment, EnvKind, load_task
from lossevo.evaluation.training import Group, train_models

RNG = np.random.default_rng


def _on_test(env, d):
    return shifted_set(env, d.x_test, d.y_test, d.image_shape, RNG(0))


def test_clean_and_image_shifts():
    d = load_dataset(load_task("digits-shift"))
    x, y = _on_test(Environment(), d)
    assert x is d.x_test and y is d.y_test
    for kind, level in ((EnvKind.ROTATE, 15.0), (EnvKind.TRANSLATE, 1.0)):
        xs, ys = _on_test(Environment(kind, level), d)
        assert xs.shape == d.x_test.shape and (ys == d.y_test).all()
        assert np.abs(xs - d.x_test).mean() > 0.05
        again, _ = _on_test(Environment(kind, level), d)
        assert np.array_equal(xs, again)
    g, _ = _on_test(Environment(EnvKind.GAUSS, 0.2), d)
    assert abs((g - d.x_test).std() - 0.2) < 0.01


def test_tabular_covariate_shifts():
    d = load_dataset(load_task("breast_cancer-sym-0.3"))
    xs, _ = _on_test(Environment(EnvKind.RESCALE, 1.5), d)
    np.testing.assert_allclose(xs[:, 0], 1.5 * d.x_test[:, 0], rtol=1e-6)
    np.testing.assert_allclose(xs[:, 1], d.x_test[:, 1])
    xs, _ = _on_test(Environment(EnvKind.SUBGROUP, 0.8), d)
    assert len(xs) == len(d.x_test) and abs((xs[:, 0] > 0).mean() - 0.8) < 0.01
    assert abs((d.x_test[:, 0] > 0).mean() - 0.8) > 0.2  # the share really changed


def test_regression_input_range_shift():
    d = load_dataset(load_task("poly3-outliers"))
    xs, ys = _on_test(Environment(EnvKind.XSHIFT, 0.25), d)
    assert xs.min() < POLY3_RANGE[0] and xs.max() > POLY3_RANGE[1]
    np.testing.assert_allclose(ys, poly3(xs[:, 0]), rtol=1e-5, atol=1e-4)


def test_attacks_are_bounded_per_model_and_hurt():
    d = load_dataset(load_task("digits-sym-0.4"))
    module = build_module(load_task("digits-sym-0.4").model, 64, 10)
    params = init_params(module, [0, 1], torch.device("cpu"))
    x, y = torch.as_tensor(d.x_train), torch.as_tensor(d.y_train)

    def ce(out, tgt):
        return torch.nn.functional.cross_entropy(out, tgt, reduction="none")

    trained = train_models(module, params, x, torch.stack([y, y]), [Group(ce, 0, 2)],
                           Budget(epochs=3, batch_size=64, lr=3e-3), [0, 1], True).params
    xt, yt = torch.as_tensor(d.x_test[:200]), torch.as_tensor(d.y_test[:200])
    clean = (stacked_forward(module, trained, xt, True).argmax(-1) == yt).double().mean(1)
    for kind in (EnvKind.FGSM, EnvKind.PGD):
        env = Environment(kind, 0.1)
        adv = adversarial_inputs(module, trained, xt, yt, env, (0.0, 1.0))
        assert adv.shape == (2, 200, 64)
        assert (adv - xt).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        acc = (stacked_forward(module, trained, adv, False).argmax(-1) == yt).double().mean(1)
        assert (acc < clean - 0.1).all()
        # model 1's attack computed alone equals its slice of the batched attack
        alone = adversarial_inputs(module, {k: v[1:] for k, v in trained.items()}, xt, yt,
                                   env, (0.0, 1.0))
        torch.testing.assert_close(alone[0], adv[1])
