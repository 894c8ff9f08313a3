"""What every baseline training scheme shares: a frozen-dataclass base with a readable repr and
the applicability rule, parameter checks, and per-instance random streams.

Schemes hold hyperparameters only (picklable, hashable); run state lives in the object their
`init_state` returns, so one scheme object can train any number of batches.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.tasks import DatasetName, EnvKind, Task
from lossevo.evaluation.training import SchemeContext, TrainingScheme
from lossevo.symbolic.kinds import TaskKind
from lossevo.validation import not_allowed

__all__ = ["DEFAULT_EPSILON", "BaselineScheme", "SeedStreams", "attack_epsilon", "input_clip"]

DEFAULT_EPSILON = 0.05  # adversarial budget when the task has no FGSM/PGD environment
_INPUTS = {DatasetName.BREAST_CANCER: "tabular", DatasetName.WINE: "tabular",
           DatasetName.MNIST1D: "1-D signal"}


@dataclass(frozen=True, repr=False)
class BaselineScheme(TrainingScheme):
    """Base of the named schemes: `repr` is `name(param=value, ...)`; classification only;
    `images_only` schemes need the 8×8 digits images."""

    name: ClassVar[str] = "scheme"
    images_only: ClassVar[bool] = False

    def __repr__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{self.name}({args})"

    def applies_to(self, task: Task) -> str | None:
        if task.kind is not TaskKind.CLASSIFICATION:
            return (f"{self.name} is for classification tasks; task {task.name} is "
                    f"{task.kind}")
        if self.images_only and task.dataset is not DatasetName.DIGITS:
            return (f"{self.name} needs image inputs (digits); task {task.name} has "
                    f"{_INPUTS.get(task.dataset, 'non-image')} inputs")
        return None

    def _check(self, param: str, ok: bool, allowed: str) -> None:
        if not ok:
            raise not_allowed(f"{self.name} parameter {param}", getattr(self, param), allowed,
                              sep="=")

    def _number(self, param: str, lo: float, hi: float = math.inf, *, lo_open: bool = False,
                hi_open: bool = False, allowed: str = "") -> None:
        v = getattr(self, param)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        self._check(param, ok, allowed or _interval(lo, hi, lo_open, hi_open))

    def _integer(self, param: str, lo: int) -> None:
        v = getattr(self, param)
        self._check(param, isinstance(v, int) and not isinstance(v, bool) and v >= lo,
                    f"an integer >= {lo}")


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    if hi == math.inf:
        return f"a number {'>' if lo_open else '>='} {lo:g}"
    return f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


class SeedStreams:
    """One numpy Generator per distinct model seed: models of the same instance get the same
    draws (paired across candidates) and a model's draws never depend on its batch mates."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        unique = list(dict.fromkeys(int(s) for s in seeds))
        where = {s: i for i, s in enumerate(unique)}
        self.rngs = [np.random.default_rng(s) for s in unique]
        self.owner = torch.tensor([where[int(s)] for s in seeds], device=device)
        self.device = device

    def draw(self, fn: Callable[[np.random.Generator], Any], dtype: torch.dtype | None = None
             ) -> torch.Tensor:
        """(M, ...) stack of `fn(rng)` for each model's stream, on the training device."""
        stacked = torch.as_tensor(np.stack([np.asarray(fn(r)) for r in self.rngs]), dtype=dtype)
        return stacked.to(self.device)[self.owner]


def attack_epsilon(epsilon: float | None, task: Task | None) -> float:
    """`epsilon`, or the level of the task's first FGSM/PGD environment, or DEFAULT_EPSILON."""
    if epsilon is not None:
        return float(epsilon)
    for env in task.environments if task is not None else ():
        if env.kind in (EnvKind.FGSM, EnvKind.PGD):
            return float(env.level)
    return DEFAULT_EPSILON


def input_clip(ctx: SchemeContext) -> tuple[float, float] | None:
    """The valid input range of the task's data (digits: [0, 1]); None when unbounded."""
    return None if ctx.task is None else load_dataset(ctx.task).clip
