"""Memory and compute estimates for a campaign, checked before any training starts.

Each key has its own bound (config.py, tasks.py); this module catches combinations that are
each allowed but together absurd — 4096 instances of a 65536-wide model, a million epochs
times a million candidates — and names the keys to reduce. The estimates are deliberately
rough (within a small factor): they refuse only what could never finish or fit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from lossevo.evaluation.tasks import DatasetName, ModelKind, Task

__all__ = ["Estimate", "check_campaign", "estimate"]

# (training samples at the default split, features, outputs); digits: 1797 × 0.7, etc.
# Exactness does not matter here, only the order of magnitude.
_SHAPES = {
    DatasetName.DIGITS: (1797, 64, 10),
    DatasetName.BREAST_CANCER: (569, 30, 2),
    DatasetName.WINE: (178, 13, 3),
    DatasetName.MNIST1D: (5000, 40, 10),
    DatasetName.POLY3: (1000, 1, 1),
}
# A campaign estimated above this many floating-point operations is refused: more than a day
# at a sustained 1 PFLOP/s, a hundred times a million candidates at the reference budget.
MAX_FLOP = 1e20
_BYTES = 4  # float32
_STATE_COPIES = 5  # parameters, gradients, two Adam moments, one temporary


@dataclass(frozen=True)
class Estimate:
    parameters: int  # per model
    flop_per_candidate: float  # training, all instances
    bytes_per_batch: float  # stacked models + activations + the instances' data


def _parameters(task: Task, n_in: int, n_out: int) -> int:
    widths = list(task.model.widths)
    if task.model.kind is ModelKind.CNN:  # two 3×3 convolutions (16, 32 channels), pooled 4×4
        conv = (9 * 1 + 1) * 16 + (9 * 16 + 1) * 32
        n_in, extra = 32 * 4 * 4, conv
    else:
        extra = 0
    total, prev = extra, n_in
    for w in [*widths, n_out]:
        total += (prev + 1) * w
        prev = w
    return total


def estimate(task: Task, instances: int, models_per_batch: int = 16) -> Estimate:
    """Rough per-candidate compute and per-batch memory of training on ``task``."""
    n, n_in, n_out = _SHAPES[task.dataset]
    if task.n_samples:
        n = task.n_samples
    n_train = max(1, round(n * (1 - task.test_fraction)))
    params = _parameters(task, n_in, n_out)
    flop = 6.0 * params * n_train * task.budget.epochs * instances
    models = min(models_per_batch, instances)
    batch = min(task.budget.batch_size, n_train)
    act = models * batch * (sum(task.model.widths) + n_out) * 2
    data = instances * n_train * (n_in + 2)  # each instance's (noisy) copy of the train set
    return Estimate(params, flop, _BYTES * (models * params * _STATE_COPIES + act + data))


def _physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return math.inf


def check_campaign(task: Task | Sequence[Task], *, instances: int, candidates: int,
                   workers: int, models_per_batch: int = 16) -> Estimate:
    """Refuse a campaign that cannot fit in memory or finish; the message names the keys.
    Several tasks (a multi-task campaign): each must fit, and every candidate trains on all
    of them, so their compute adds up. Returns the (first) task's estimate."""
    tasks = [task] if isinstance(task, Task) else list(task)
    names = ["task"] if isinstance(task, Task) else [f"tasks[{i}]" for i in range(len(tasks))]
    ests = [estimate(t, instances, models_per_batch) for t in tasks]
    memory = _physical_memory()
    for t, est, name in zip(tasks, ests, names, strict=True):
        need = est.bytes_per_batch * max(1, workers)
        if need > memory:
            raise ValueError(
                f"the campaign needs about {need / 2**30:.1f} GiB ({workers} worker(s) × "
                f"{est.bytes_per_batch / 2**30:.1f} GiB) but this machine has "
                f"{memory / 2**30:.1f} GiB; reduce 'instances' ({instances}), "
                f"'{name}.model.widths' ({list(t.model.widths)}) or 'backend.workers'")
    each = sum(est.flop_per_candidate for est in ests)
    total = each * candidates
    if total > MAX_FLOP:
        i = max(range(len(tasks)), key=lambda k: ests[k].flop_per_candidate)
        t, name = tasks[i], names[i]
        raise ValueError(
            f"the campaign would take about {total:.1e} floating-point operations "
            f"({candidates} candidates × {each:.1e} each), over the limit "
            f"of {MAX_FLOP:.0e}; reduce 'evolution.population'/'evolution.offspring'/"
            f"'evolution.generations' (candidates), 'instances' ({instances}), "
            f"'{name}.budget.epochs' ({t.budget.epochs}) or '{name}.model.widths' "
            f"({list(t.model.widths)})")
    return ests[0]
