"""experiments/discovery_goal.py: the goal check reads a comparison and judges rank 1 only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "discovery_goal", Path(__file__).parent.parent / "experiments" / "discovery_goal.py")
goal = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(goal)


def _contender(label: str, *, scheme: str | None = None, evolved: bool = False,
               early_stop: bool = False) -> dict:
    return {"label": label, "scheme": scheme, "early_stop": early_stop, "evolved": evolved,
            "expression": "mul(y_true, y_pred)" if evolved else None}


def _result(label: str, task: str, clean: list[float]) -> dict:
    return {"contender": label, "task": task, "metric": "accuracy", "status": "ok",
            "metrics": {"accuracy.clean.mean": sum(clean) / len(clean)},
            "per_instance": {"accuracy": {"clean": clean}}}


def _data(evolved_gain: float, unseen_evolved: float) -> dict:
    tasks = [*goal.CAMPAIGN_TASKS, "breast_cancer-sym-0.3"]
    contenders = [_contender("ce"), _contender("gce"), _contender("elr", scheme="elr"),
                  _contender("ce_early_stop", early_stop=True),
                  _contender("evolved#1", evolved=True), _contender("evolved#2", evolved=True)]
    base = [0.50 + 0.01 * k for k in range(8)]
    results = []
    for task in tasks:
        results += [_result("ce", task, [b - 0.1 for b in base]), _result("gce", task, base),
                    _result("elr", task, [b + 0.3 for b in base]),  # a scheme: not stateless
                    _result("ce_early_stop", task, [b + 0.3 for b in base])]
        if task in goal.CAMPAIGN_TASKS:
            results.append(_result("evolved#1", task, [b + evolved_gain for b in base]))
        else:
            results.append(_result("evolved#1", task, [unseen_evolved] * 8))
        results.append(_result("evolved#2", task, [b + 0.2 for b in base]))  # never judged
    return {"tasks": tasks, "contenders": contenders, "results": results, "instances": 8,
            "seed": 1}


def test_a_clear_win_meets_every_part_of_the_goal():
    rows, verdict = goal.goal_table(_data(evolved_gain=0.05, unseen_evolved=0.9))
    assert all(verdict.values())
    assert {r["best"] for r in rows} == {"gce"}  # schemes and early stopping are not stateless
    assert all(r["holm_p"] < 0.05 for r in rows if r["seen"])


def test_only_rank_one_is_judged_and_a_loss_below_ce_on_unseen_tasks_fails():
    rows, verdict = goal.goal_table(_data(evolved_gain=-0.01, unseen_evolved=0.1))
    assert not any(verdict.values())  # evolved#2 beats gce everywhere, but it is not rank 1
    text = goal.to_markdown(_data(-0.01, 0.1), rows, verdict)
    assert "**no**" in text and "evolved#2" in text
