"""Multi-fidelity evaluation: successive halving over the training budget.

Every candidate first trains on a fraction of the epochs (a *rung*, e.g. 1/9); the best `keep`
share of those still valid train again on the next fraction (1/3), and so on until the
survivors train on the full budget. Most candidates thus cost a ninth of a training; the few
that reach the full budget cost 1/9 + 1/3 + 1 ≈ 1.44.

A rung retrains from scratch with ``budget.epochs`` scaled, instead of continuing the models of
the rung before. Continuation would be cheaper (7/27 against 9/27 of the full cost for rungs
1/9, 1/3, 1 and keep 1/3) but needs the models, Adam moments and data-order state of every
survivor carried between rungs, workers and checkpoints, and a loss that reads training
progress would see only its early phase at a low rung. Retraining keeps a rung an ordinary
evaluation of a task with fewer epochs, and the last rung the full evaluation itself (same
instances and seeds; only batch-shape float rounding can differ): a survivor's fitness is the
number a campaign without fidelity computes.

Racing over instances (lossevo.evaluation.racing) runs inside each rung when configured: a candidate
raced out there ranks after every one that completed its instances, so racing saves instance
trainings without changing how many candidates go on.

In a campaign (``[fidelity]`` table: ``rungs``, ``keep``, ``min_survivors``; absent: off) a
rung spans the whole generation's new candidates, evaluated in chunks on the backend, so the
cut between rungs never depends on the chunk a candidate landed in (racing, where configured,
still races inside each chunk, as it does without fidelity). The probes run again in each rung's
chunks (cheap next to training, and deterministic, so the verdict is the same).

Scores of different rungs are not comparable (a loss that learns slowly looks bad at 1/9 of
the epochs), so a candidate carries the fidelity it reached, and `select_by_tier` and
`hall_of_fame_by_tier` rank by it first: an eliminated candidate never outranks one that
trained on the full budget. The scheduler is independent of training, like
lossevo.evaluation.racing: it calls ``run_rung(rung, candidates)`` and reads ``score(candidate)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol, TypeVar

__all__ = [
    "Fidelity",
    "HalvingOutcome",
    "Keyed",
    "Tiered",
    "hall_of_fame_by_tier",
    "ranking",
    "select_by_tier",
    "successive_halving",
    "tier",
]


class Tiered(Protocol):
    """What `tier` reads: an Evaluation, or a campaign's record (lossevo.search.records)."""

    @property
    def rejected(self) -> str | None: ...

    @property
    def fidelity(self) -> float: ...

    @property
    def raced_out(self) -> bool: ...


class Keyed(Tiered, Protocol):
    """A tiered record of a function: what `select_by_tier` and `hall_of_fame_by_tier` take."""

    @property
    def canonical_key(self) -> str: ...


R = TypeVar("R", bound=Keyed)


@dataclass(frozen=True)
class Fidelity:
    """rungs: increasing fractions of ``budget.epochs``, the last 1.0; keep: share of a rung's
    valid candidates that go on to the next (rounded up); min_survivors: never fewer."""

    rungs: tuple[float, ...] = (1 / 9, 1 / 3, 1.0)
    keep: float = 1 / 3
    min_survivors: int = 1

    def __post_init__(self) -> None:
        r = self.rungs
        ok = (isinstance(r, tuple) and len(r) >= 2
              and all(isinstance(f, int | float) and not isinstance(f, bool) for f in r)
              and all(0 < f <= 1 for f in r)
              and all(a < b for a, b in pairwise(r)) and r[-1] == 1.0)
        if not ok:
            raise ValueError(f"fidelity.rungs = {list(r) if isinstance(r, tuple) else r!r}; "
                             f"allowed: at least two increasing fractions in (0, 1] of "
                             f"budget.epochs, the last 1.0 (e.g. [0.111, 0.333, 1.0])")
        if not 0 < self.keep < 1:
            raise ValueError(f"fidelity.keep = {self.keep!r}; allowed: a float in (0, 1)")
        if isinstance(self.min_survivors, bool) or self.min_survivors < 1:
            raise ValueError(f"fidelity.min_survivors = {self.min_survivors!r}; allowed: an "
                             f"integer >= 1")

    def epochs(self, full: int) -> list[int]:
        """Epochs of each rung for a full budget of `full`; a ValueError when two rungs
        would train the same number of epochs (a rung that costs and decides nothing)."""
        out = [max(1, round(f * full)) for f in self.rungs[:-1]] + [full]
        if any(a >= b for a, b in pairwise(out)):
            raise ValueError(f"fidelity.rungs = {list(self.rungs)} give epochs {out} for "
                             f"budget.epochs = {full}; allowed: rungs that give increasing "
                             f"epoch counts (fewer rungs, or a larger budget)")
        return out

    def survivors(self, n: int) -> int:
        """How many of `n` valid candidates go on to the next rung."""
        return min(n, max(self.min_survivors, math.ceil(self.keep * n - 1e-9)))


@dataclass
class HalvingOutcome:
    reached: dict[Hashable, int] = field(default_factory=dict)  # candidate -> last rung
    rungs: list[tuple[int, int]] = field(default_factory=list)  # (trained, went on/finished)


def _descending(score: Sequence[float]) -> tuple[float, ...]:
    return tuple(math.inf if v != v else -v for v in score)  # nan ranks last


def successive_halving(
    candidates: Sequence[Hashable], fidelity: Fidelity,
    run_rung: Callable[[int, list[Hashable]], list[Hashable]],
    score: Callable[[Hashable], Sequence[float]],
) -> HalvingOutcome:
    """Run the rungs. `run_rung(r, alive)` trains `alive` at rung r and returns those still
    valid; `score(c)` ranks c at its last rung, compared lexicographically (ties: the earlier
    candidate; the callers put a candidate raced out inside the rung after every one that
    completed its instances, so racing saves trainings without changing how many go on)."""
    outcome = HalvingOutcome()
    alive = list(candidates)
    last = len(fidelity.rungs) - 1
    for r in range(last + 1):
        if not alive:
            break
        eligible = run_rung(r, list(alive))
        for c in alive:
            outcome.reached[c] = r
        if r == last:
            outcome.rungs.append((len(alive), len(eligible)))
            break
        order = {c: i for i, c in enumerate(eligible)}
        ranked = sorted(eligible, key=lambda c: (_descending(score(c)), order[c]))
        kept = set(ranked[: fidelity.survivors(len(eligible))])
        outcome.rungs.append((len(alive), len(kept)))
        alive = [c for c in eligible if c in kept]
    return outcome


def tier(record: Tiered) -> tuple[bool, float, bool]:
    """(valid, fidelity reached, completed its instances): what ranks first, so that neither
    a rung nor racing inside it lets an eliminated candidate outrank a survivor."""
    return (not record.rejected, float(record.fidelity), not record.raced_out)


def ranking(evaluations: Sequence[Tiered]) -> list[int]:
    """Indices of Evaluations best first: by `tier`, then fitness (lexicographic), then
    index."""
    return sorted(range(len(evaluations)), key=lambda i: (
        tuple(-v for v in tier(evaluations[i])),
        _descending(evaluations[i].fitness), i))


def _tiers(records: Sequence[R]) -> list[list[R]]:
    """Records grouped by tier, highest first, keeping their order inside a tier."""
    keys = sorted({tier(r) for r in records}, reverse=True)
    return [[r for r in records if tier(r) == k] for k in keys]


def select_by_tier(pool: Sequence[R], mu: int,
                   select: Callable[[list[R], int], list[R]]) -> list[R]:
    """μ survivors: whole tiers from the highest down while they fit, the first that does
    not is cut by `select(records, n)` (NSGA-II). As lossevo.search.evolution.select does, each
    function (canonical key) competes once, by its earliest record, and copies fill in only
    when the pool has fewer than μ distinct functions."""
    first: dict[str, R] = {}
    for rec in pool:
        first.setdefault(rec.canonical_key, rec)
    distinct = list(first.values())
    chosen: list[R] = []
    for group in _tiers(distinct):
        slots = mu - len(chosen)
        if slots <= 0:
            break
        chosen += group if len(group) <= slots else select(group, slots)[:slots]
    taken = {id(r) for r in distinct}
    copies = [r for r in pool if id(r) not in taken]
    return chosen + copies[: mu - len(chosen)]


def hall_of_fame_by_tier(
    current: Sequence[R], new: Sequence[R], size: int,
    hall_of_fame: Callable[[list[R], list[R], int], list[R]],
) -> list[R]:
    """The hall of fame filled tier by tier (highest fidelity first), each tier ranked by
    `hall_of_fame`; rejected records never enter it."""
    out: list[R] = []
    for group in _tiers([r for r in [*current, *new] if not r.rejected]):
        out += hall_of_fame([], group, size - len(out))
    return out
