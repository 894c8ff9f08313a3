"""Robust model selection: pick training settings by racing them over instances.

A *setting* is a Task (one loss, different model/optimizer overrides). Instance k of seed s
depends only on (s, k) (see lossevo.evaluation.fitness), so a setting can be trained on any subset
of instance ids and the subsets add up to a full evaluation. `race_settings` spends instances
only on settings that can still win, under a robust score (level minus spread over instances);
`evaluate_settings` is the exhaustive reference. Both take an optional `evaluator`, so a race
can be replayed from cached per-instance results of the very same instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lossevo.evaluation.fitness import prepare_candidate, resolve_device, run_round
from lossevo.evaluation.racing import Racing, race
from lossevo.evaluation.statistics import with_worst_env
from lossevo.evaluation.tasks import Task

__all__ = [
    "InstanceScores",
    "Selection",
    "evaluate_instances",
    "evaluate_settings",
    "race_settings",
    "replay_evaluator",
    "robust_score",
    "top_overlap",
]

# {instance id: {metric: {environment: value}}}
InstanceScores = dict[int, dict[str, dict[str, float]]]
# (setting index, instance ids) -> scores of those instances; {} if training was rejected
Evaluator = Callable[[int, list[int]], InstanceScores]


def evaluate_instances(
    loss: Any, task: Task, instance_ids: Sequence[int], *, seed: int = 0,
    device: str | torch.device | None = None, split: str = "validation",
) -> InstanceScores:
    """Train `loss` on `task` for exactly these instance ids (one batch) and score them on
    `split` (validation to choose; test only to report the chosen setting).

    Returns {} when the loss is rejected (probe, nan/inf): a setting that diverges is not a
    candidate. An instance gets the same randomness inside any subset; its numbers can still
    differ in the last bits when the batch shape changes (BLAS), and long training can amplify
    that to a few test samples (measured: docs/results/model_selection.md).
    """
    ids = list(instance_ids)
    if not ids or any(not isinstance(k, int | np.integer) or k < 0 for k in ids):
        raise ValueError(f"instance_ids = {ids!r}; allowed: a non-empty list of integers >= 0")
    if len(set(ids)) != len(ids):
        raise ValueError(f"instance_ids = {ids!r}; allowed: distinct ids")
    cand = prepare_candidate(loss, task.kind)
    if cand.rejected is None:
        run_round(task, [cand], [int(k) for k in ids], seed, resolve_device(device), split=split)
    if cand.rejected is not None:
        return {}
    return dict(cand.per_instance)


def robust_score(scores: InstanceScores, *, metric: str = "accuracy",
                 penalty: float = 1.0) -> float:
    """mean − penalty·std (sample std, ddof 1; 0 for one instance) over instances of the
    per-instance worst-environment `metric`: the default fitness (worst-env mean, then −std)
    collapsed into one number that racing can rank by. -inf with no instances (a rejected
    setting)."""
    if not scores:
        return float("-inf")
    worst = _worst_env(scores, metric)
    spread = worst.std(ddof=1) if worst.size > 1 else 0.0
    return float(worst.mean() - penalty * spread)


def _worst_env(scores: InstanceScores, metric: str) -> np.ndarray:
    ks = sorted(scores)
    if metric not in scores[ks[0]]:
        raise ValueError(f"metric = {metric!r}; allowed: {sorted(scores[ks[0]])}")
    per_env = {metric: {env: np.array([scores[k][metric][env] for k in ks])
                        for env in scores[ks[0]][metric]}}
    return with_worst_env(per_env)[metric]["worst_env"]


@dataclass
class Selection:
    """Outcome of a selection over settings. `scores[i]`: robust score over the instances
    setting i had; `trainings[i]`: models trained for it; `rounds`: (settings, new instances)
    per racing round (one round for exhaustive evaluation)."""

    per_instance: list[InstanceScores]
    scores: list[float]
    trainings: list[int]
    raced_out: set[int] = field(default_factory=set)
    rounds: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0

    def ranking(self) -> list[int]:
        """Setting indices, best first; raced-out settings after every survivor."""
        return sorted(range(len(self.scores)),
                      key=lambda i: (i in self.raced_out, -self.scores[i], i))

    def worst_env(self, i: int, metric: str = "accuracy") -> np.ndarray:
        """Per-instance worst-environment values of setting i (instance order)."""
        return _worst_env(self.per_instance[i], metric)


def _default_evaluator(loss: Any, settings: Sequence[Task], seed: int,
                       device: str | torch.device | None) -> Evaluator:
    def run(i: int, ids: list[int]) -> InstanceScores:
        return evaluate_instances(loss, settings[i], ids, seed=seed, device=device)
    return run


def _check(settings: Sequence[Task], instances: int) -> None:
    if instances < 1:
        raise ValueError(f"instances = {instances!r}; allowed: an integer >= 1")
    if not settings:
        raise ValueError("settings = []; allowed: at least one Task")


def evaluate_settings(
    loss: Any, settings: Sequence[Task], *, instances: int = 8, seed: int = 0,
    device: str | torch.device | None = None, evaluator: Evaluator | None = None,
    score: Callable[[InstanceScores], float] = robust_score,
) -> Selection:
    """Exhaustive reference: every setting on instances 0..instances-1."""
    _check(settings, instances)
    run = evaluator or _default_evaluator(loss, settings, seed, device)
    started = time.perf_counter()
    per = [run(i, list(range(instances))) for i in range(len(settings))]
    return Selection(per, [score(p) for p in per], [instances] * len(settings), set(),
                     [(len(settings), instances)], time.perf_counter() - started)


def race_settings(
    loss: Any, settings: Sequence[Task], racing: Racing, *, instances: int = 8, seed: int = 0,
    device: str | torch.device | None = None, evaluator: Evaluator | None = None,
    score: Callable[[InstanceScores], float] = robust_score,
) -> Selection:
    """Race the settings (lossevo.evaluation.racing) under `score`; survivors end with all
    instances."""
    _check(settings, instances)
    run = evaluator or _default_evaluator(loss, settings, seed, device)
    per: list[InstanceScores] = [{} for _ in settings]
    rejected: set[int] = set()

    def train_some(idx: list[int], ids: list[int]) -> list[int]:
        for i in idx:
            got = run(i, ids)
            if not got:
                rejected.add(i)
            per[i].update(got)
        return [i for i in idx if i not in rejected]

    started = time.perf_counter()
    outcome = race(range(len(settings)), instances, racing, train_some,
                   lambda i: score(per[i]))
    seconds = time.perf_counter() - started
    scores = [score(p) if i not in rejected else float("-inf") for i, p in enumerate(per)]
    trainings = [outcome.trainings.get(i, 0) for i in range(len(settings))]
    return Selection(per, scores, trainings, set(outcome.raced_out), outcome.rounds, seconds)


def top_overlap(a: Sequence[int], b: Sequence[int], k: int) -> int:
    """How many of the first k entries two rankings share."""
    return len(set(a[:k]) & set(b[:k]))


def replay_evaluator(cache: Sequence[Mapping[int, Mapping[str, Mapping[str, float]]]]
                     ) -> Evaluator:
    """An evaluator reading cached per-instance scores (cache[i][k]) instead of training:
    instance k's randomness depends only on (seed, k) and the setting, so a replayed race
    sees the numbers a fresh one would, up to batch-shape rounding (see evaluate_instances)."""
    def run(i: int, ids: list[int]) -> InstanceScores:
        if not cache[i]:
            return {}
        return {k: {m: dict(envs) for m, envs in cache[i][k].items()} for k in ids}
    return run
