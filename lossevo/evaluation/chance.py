"""The chance floor: a constant predictor scored on the same environments as the models.

Comparisons show it as a row; multi-task campaigns normalize each task's score by it.

Classification: always the majority class of the **clean** training labels (ties: the lowest
class index); regression: always the mean of the clean training targets (the model's output
0 in the standardized units it trains in). Clean rather than noisy: under symmetric noise the
noisy shares keep the clean order in expectation, under asymmetric or instance noise a noisy
majority can be a class that is rarer on test, so the clean constant is the stronger floor
and "clearly above chance" the stricter claim; it is also one number per environment, with no
spread over instances.

A constant ignores its inputs, so input shifts and attacks (gauss, rotate, translate,
rescale, FGSM, PGD) leave its score at the clean one; environments that redraw the labels do
not: subgroup resampling changes the class shares, xshift draws new targets. Each
environment is therefore rebuilt exactly as lossevo.evaluation.fitness builds the test environments
(same split, same seed stream per environment) and the constant is scored on it with the
same formulas (accuracy; R² = 1 − MSE / Var(y) with the population variance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.tasks import Task
from lossevo.symbolic.kinds import TaskKind

__all__ = ["CHANCE", "chance_scores", "environment_labels"]

CHANCE = "chance"  # the row's label in every table


def environment_labels(task: Task, seed: int, split: str = "test") -> dict[str, np.ndarray]:
    """{environment: labels or targets of its `split` set}: the very sets an evaluation with
    `seed` is scored on (lossevo.evaluation.fitness.environment_sets)."""
    from lossevo.evaluation.fitness import environment_sets

    sets = environment_sets(task, seed, split)
    return {env.name: np.asarray(y) for env, (_, y) in zip(task.environments, sets, strict=True)}


def chance_scores(task: Task, seed: int, split: str = "test") -> dict[str, Any]:
    """The constant predictor's scores on `split` (test for reports; a campaign's multi-task
    normalization asks for validation): ``{"metric", "predicts", "envs": {env: score},
    "clean", "worst_env"}`` (``clean``: the clean environment, else the first one)."""
    data = load_dataset(task)
    envs: dict[str, float] = {}
    if task.kind is TaskKind.REGRESSION:
        constant: float | int = float(np.asarray(data.y_train, dtype=np.float64).mean())
        for name, y in environment_labels(task, seed, split).items():
            y = y.astype(np.float64)
            envs[name] = float(1.0 - ((constant - y) ** 2).mean() / y.var())
    else:
        counts = np.bincount(np.asarray(data.y_train), minlength=data.n_classes)
        constant = int(np.argmax(counts))
        for name, y in environment_labels(task, seed, split).items():
            envs[name] = float((y == constant).mean())
    clean = envs.get("clean", next(iter(envs.values())))
    return {"metric": task.metric, "predicts": constant, "envs": envs, "clean": clean,
            "worst_env": min(envs.values())}
