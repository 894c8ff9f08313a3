"""Early stopping keeps each model's best validation epoch, and only validation chooses it."""

import numpy as np
import pytest

from lossevo.evaluation.fitness import evaluate, evaluate_many
from lossevo.evaluation.tasks import load_task

CE = "mul(-1.0, mul(y_true, log(y_pred)))"


@pytest.fixture(scope="module")
def task():
    return load_task("digits-sym-0.4").with_overrides(
        model={"widths": [32]}, budget={"epochs": 12, "batch_size": 64, "lr": 0.01},
        environments=[{"kind": "clean"}, {"kind": "gauss", "level": 0.3}])


def test_kept_epoch_equals_training_that_many_epochs(task):
    """Training is deterministic per epoch, so the parameters kept at epoch e are exactly
    those of a run of e epochs: their test scores agree to the last bit."""
    stopped = evaluate(CE, task, instances=1, seed=3, split="test", early_stopping=True)
    (epoch,) = stopped.extra["stopped_epoch"]
    assert 1 <= epoch <= task.budget.epochs
    shorter = task.with_overrides(budget={"epochs": epoch})
    again = evaluate(CE, shorter, instances=1, seed=3, split="test")
    assert stopped.metrics == again.metrics
    val_best = evaluate(CE, task, instances=1, seed=3, early_stopping=True)
    for e in range(1, task.budget.epochs + 1):  # no epoch beats the kept one on validation
        other = evaluate(CE, task.with_overrides(budget={"epochs": e}), instances=1, seed=3)
        assert (other.metrics["accuracy.clean.mean"]
                <= val_best.metrics["accuracy.clean.mean"])


def test_choice_does_not_depend_on_the_split_scored(task):
    a = evaluate_many([CE], task, instances=2, seed=0, split="test", early_stopping=True)[0]
    b = evaluate_many([CE], task, instances=2, seed=0, split="validation",
                      early_stopping=True)[0]
    assert a.extra["stopped_epoch"] == b.extra["stopped_epoch"]
    assert len(a.extra["stopped_epoch"]) == 2
    plain = evaluate(CE, task, instances=2, seed=0, split="test")
    assert "stopped_epoch" not in plain.extra
    if any(e < task.budget.epochs for e in a.extra["stopped_epoch"]):
        assert a.metrics != plain.metrics
    else:  # the last epoch was the best: nothing changes
        assert np.isclose(a.metrics["accuracy.clean.mean"], plain.metrics["accuracy.clean.mean"])


def test_regression_early_stopping_runs():
    task = load_task("poly3-outliers").with_overrides(budget={"epochs": 4})
    ev = evaluate("mul(sub(y_pred, y_true), sub(y_pred, y_true))", task, instances=2,
                  split="test", early_stopping=True)
    assert ev.rejected is None and all(1 <= e <= 4 for e in ev.extra["stopped_epoch"])
