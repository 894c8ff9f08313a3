"""Racing: fewer trainings, keeps the best; config validation; end to end on a tiny task."""

from __future__ import annotations

import pytest

from lossevo.evaluation.fitness import evaluate_many
from lossevo.evaluation.racing import Racing, race
from lossevo.evaluation.tasks import Environment, load_task


def test_race_saves_trainings_and_keeps_the_best():
    true = {c: c / 10 for c in range(10)}  # candidate 9 is best
    seen: dict[int, list[int]] = {}

    def run_round(cands, ids):
        for c in cands:
            seen.setdefault(c, []).extend(ids)
        return [c for c in cands if c != 4]  # candidate 4 is rejected in training

    outcome = race(range(10), 8, Racing(initial=1, growth=2.0, keep_quantile=0.5),
                   run_round, lambda c: true[c])
    assert seen[9] == list(range(8))  # survivors get exactly the instances 0..7, once each
    assert sum(outcome.trainings.values()) < 10 * 8
    assert 4 not in outcome.raced_out and outcome.trainings[4] == 1
    assert {0, 1, 2, 3} <= outcome.raced_out and 9 not in outcome.raced_out
    assert outcome.rounds[0] == (10, 1)


def test_min_survivors():
    outcome = race(range(5), 4, Racing(initial=1, keep_quantile=0.99, min_survivors=2),
                   lambda c, ids: list(c), lambda c: float(c))
    assert outcome.trainings[4] == 4 and outcome.trainings[3] == 4


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"initial": 0}, "initial"), ({"growth": 1.0}, "growth"),
    ({"keep_quantile": 1.0}, "keep_quantile"), ({"min_survivors": 0}, "min_survivors"),
])
def test_racing_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Racing(**kwargs)


def test_evaluate_many_with_racing_counts_trainings():
    task = load_task("breast_cancer-sym-0.3").with_overrides(
        budget={"epochs": 2}, environments=[Environment()])
    losses = ["mul(-1.0, mul(y_true, log(y_pred)))", "mul(y_true, sub(1.0, y_pred))",
              "div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7)",
              "mul(y_true, sub(1.0, mul(y_pred, y_pred)))"]
    full = evaluate_many(losses, task, instances=4, seed=1)
    raced = evaluate_many(losses, task, instances=4, seed=1,
                          racing=Racing(initial=1, keep_quantile=0.5))
    assert sum(e.trainings for e in raced) < sum(e.trainings for e in full) == 16
    for f, r in zip(full, raced, strict=True):
        if not r.raced_out:  # survivors: same instances, same numbers as full evaluation
            assert r.instances == 4 and r.metrics == f.metrics
        else:
            assert r.instances < 4
