"""evaluate / evaluate_many: metric names, determinism, isolation, every rejection path."""

from __future__ import annotations

import math

import pytest
import torch

from lossevo.evaluation.fitness import evaluate, evaluate_many
from lossevo.evaluation.tasks import Environment, EnvKind, load_task
from lossevo.symbolic.loss import SymbolicLoss

CE = "mul(-1.0, mul(y_true, log(y_pred)))"
MAE = "mul(y_true, sub(1.0, y_pred))"


@pytest.fixture(scope="module")
def tiny():
    return load_task("digits-sym-0.4").with_overrides(
        budget={"epochs": 1, "batch_size": 128, "lr": 3e-3},
        environments=[{"kind": "clean"}, {"kind": "gauss", "level": 0.3},
                      {"kind": "fgsm", "level": 0.05}],
    )


@pytest.fixture(scope="module")
def ce_eval(tiny):
    return evaluate(CE, tiny, instances=2, seed=0, device="cpu")


def test_metric_names_follow_the_pattern(ce_eval, tiny):
    assert ce_eval.rejected is None and ce_eval.trainings == 2 and ce_eval.instances == 2
    envs = [e.name for e in tiny.environments] + ["worst_env"]
    expected = {f"accuracy.{e}.{s}" for e in envs for s in ("mean", "std", "q90_q10", "min")}
    assert set(ce_eval.metrics) == expected
    # under label noise the default fitness is the clean (noisy-validation) accuracy
    assert ce_eval.fitness == (ce_eval.metrics["accuracy.clean.mean"],
                               -ce_eval.metrics["accuracy.clean.std"])
    assert ce_eval.split == "validation"
    worst = [min(v) for v in zip(*(ce_eval.per_instance["accuracy"][e] for e in envs[:-1]),
                                     strict=True)]
    assert ce_eval.per_instance["accuracy"]["worst_env"] == worst
    assert 0.3 < ce_eval.metrics["accuracy.clean.mean"] <= 1.0  # it learned something
    assert ce_eval.metrics["accuracy.fgsm-0.05.mean"] < ce_eval.metrics["accuracy.clean.mean"]
    assert ce_eval.seconds > 0


def test_deterministic_given_the_seed(ce_eval, tiny):
    again = evaluate(CE, tiny, instances=2, seed=0)
    other = evaluate(CE, tiny, instances=2, seed=1)
    assert again.metrics == ce_eval.metrics
    assert other.metrics != ce_eval.metrics


def test_symbolic_loss_object_equals_its_text(ce_eval, tiny):
    ev = evaluate(SymbolicLoss(CE), tiny, instances=2, seed=0)
    assert ev.metrics == ce_eval.metrics and ev.loss == CE


def test_mixed_batch_rejects_bad_and_leaves_good_as_solo(ce_eval, tiny):
    def nan_loss(out, tgt):
        return out.sum(-1) * float("nan")

    def raising(out, tgt):
        raise ZeroDivisionError("bad candidate")

    def constant(out, tgt):
        return torch.zeros(len(tgt))

    losses = [nan_loss, CE, "log(", "div(y_true, sub(y_pred, y_pred))", raising,
              SymbolicLoss(MAE, kind="regression"), 42, constant]
    evs = evaluate_many(losses, tiny, instances=2, seed=0)
    assert evs[1].rejected is None and evs[1].metrics == ce_eval.metrics
    reasons = [e.rejected for i, e in enumerate(evs) if i != 1]
    assert reasons[0].startswith("non-finite training loss")
    assert reasons[1].startswith("invalid: ValueError")
    assert reasons[2].startswith("probe: ")
    assert reasons[3] == "loss raised ZeroDivisionError: bad candidate"
    assert "kind 'regression'" in reasons[4]
    assert reasons[5] == "not a loss: int"
    assert reasons[6] == "loss raised ValueError: loss does not depend on the model outputs"
    for i, e in enumerate(evs):
        if i != 1:
            assert e.fitness == (-math.inf, -math.inf) and e.metrics == {}
    assert evs[2].trainings == 0 and evs[0].trainings == 2


def test_regression_task_reports_r2_and_mse():
    task = load_task("poly3-outliers").with_overrides(
        budget={"epochs": 3}, environments=[Environment(), Environment(EnvKind.XSHIFT, 0.25)])
    ev = evaluate("mul(sub(y_pred, y_true), sub(y_pred, y_true))", task, instances=2)
    assert ev.rejected is None
    assert {"r2.clean.mean", "mse.xshift-0.25.std", "r2.worst_env.min"} <= set(ev.metrics)
    assert ev.metrics["r2.worst_env.mean"] <= ev.metrics["r2.clean.mean"]
    assert ev.fitness[0] == ev.metrics["r2.worst_env.mean"]


def test_argument_validation(tiny):
    for kwargs, match in (({"instances": 0}, "instances"), ({"instances": 2.5}, "instances"),
                          ({"seed": -1}, "seed"), ({"split": "train"}, "validation, test")):
        with pytest.raises(ValueError, match=match):
            evaluate(CE, tiny, **kwargs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_closely(ce_eval, tiny):
    ev = evaluate(CE, tiny, instances=2, seed=0, device="cuda")
    assert abs(ev.metrics["accuracy.clean.mean"] - ce_eval.metrics["accuracy.clean.mean"]) < 0.05


@pytest.mark.slow
def test_reference_table_digits_sym_04():
    """CE collapses late, GCE q=0.7 does not (REFERENCE.md: 65.6 and 92.8)."""
    task = load_task("digits-sym-0.4")
    gce = "div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7)"
    ce, g = evaluate_many([CE, gce], task, instances=3, seed=0, split="test")
    assert abs(100 * ce.metrics["accuracy.clean.mean"] - 65.6) < 6
    assert abs(100 * g.metrics["accuracy.clean.mean"] - 92.8) < 4


def test_cnn_task_with_image_shifts():
    task = load_task("digits-shift").with_overrides(
        budget={"epochs": 1, "batch_size": 256},
        environments=[{"kind": "clean"}, {"kind": "rotate", "level": 20.0},
                      {"kind": "translate", "level": 1.0}])
    ev = evaluate(CE, task, instances=2)
    assert ev.rejected is None
    assert {"accuracy.rotate-20.mean", "accuracy.translate-1.min"} <= set(ev.metrics)
