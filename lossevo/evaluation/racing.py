"""Racing: spend instances only on candidates that can still win.

All candidates start on a few instances; those scoring below a quantile of the current scores
are dropped; the survivors get more instances (the same instance seeds every candidate sees,
so a later round extends an earlier one exactly), until they have the full count. The
scheduler is independent of training: it calls `run_round(candidates, instance_ids)` and
reads `score(candidate)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RaceOutcome", "Racing", "race"]


@dataclass(frozen=True)
class Racing:
    """initial: instances in round one; growth: factor on the instance count per round;
    keep_quantile: survivors score >= this quantile of the round's scores; min_survivors:
    never keep fewer (the best by score)."""

    initial: int = 2
    growth: float = 2.0
    keep_quantile: float = 0.5
    min_survivors: int = 1

    def __post_init__(self) -> None:
        if self.initial < 1:
            raise ValueError(f"Racing.initial = {self.initial!r}; allowed: an integer >= 1")
        if not self.growth > 1.0:
            raise ValueError(f"Racing.growth = {self.growth!r}; allowed: a float > 1")
        if not 0.0 <= self.keep_quantile < 1.0:
            raise ValueError(
                f"Racing.keep_quantile = {self.keep_quantile!r}; allowed: a float in [0, 1)"
            )
        if self.min_survivors < 1:
            raise ValueError(
                f"Racing.min_survivors = {self.min_survivors!r}; allowed: an integer >= 1"
            )


@dataclass
class RaceOutcome:
    trainings: dict[int, int] = field(default_factory=dict)  # candidate -> instances trained
    raced_out: set[int] = field(default_factory=set)
    rounds: list[tuple[int, int]] = field(default_factory=list)  # (candidates, instances)


def race(
    candidates: Sequence[int],
    instances: int,
    config: Racing,
    run_round: Callable[[list[int], list[int]], list[int]],
    score: Callable[[int], float],
) -> RaceOutcome:
    """Run the race. `run_round` trains the given candidates on the given instance ids and
    returns those still valid (not rejected); `score` is a candidate's current primary score."""
    outcome = RaceOutcome()
    alive = list(candidates)
    done = 0
    target = min(config.initial, instances)
    while alive:
        new = list(range(done, target))
        valid = set(run_round(alive, new))
        for c in alive:
            outcome.trainings[c] = outcome.trainings.get(c, 0) + len(new)
        outcome.rounds.append((len(alive), len(new)))
        alive = [c for c in alive if c in valid]
        done = target
        if done >= instances or not alive:
            break
        scores = np.array([score(c) for c in alive])
        threshold = np.quantile(scores, config.keep_quantile)
        ranked = [alive[i] for i in np.argsort(-scores, kind="stable")]
        keep = {c for c, s in zip(alive, scores, strict=True) if s >= threshold}
        keep |= set(ranked[: config.min_survivors])
        outcome.raced_out |= {c for c in alive if c not in keep}
        alive = [c for c in alive if c in keep]
        target = min(instances, max(done + 1, math.ceil(done * config.growth)))
    return outcome
