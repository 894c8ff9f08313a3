"""Constant tuning: a memetic step that fits the numbers of the best candidates on validation.

Constants enter a tree once, drawn at random, and afterwards change only by blind ephemeral
mutation, so a GCE exponent or a mixing weight is right by luck. With ``[constant_tuning]`` a
campaign takes, in generations 0, `every`, 2·`every`, …, the `top_k` best distinct functions
(canonical keys) of the generation's pool that have constants, a complete score and were not
tuned before, and runs a short CMA-ES (the ``cma`` package) over each one's constants:
`rounds` rounds of `popsize` proposals, all proposals of a round evaluated together like any
candidate (cache, chunks, racing over instances, multi-fidelity where configured; validation
split). The best proposal of each search that beats its parent on the first fitness component
becomes a child (operator ``"tune"``, parent the original) and enters the pool before
selection; every proposal trained is cached by canonical key and counted in the generation's
``tuning`` counts.

CMA-ES is invariant to monotone changes of the objective, so each search is told only the
ranks of its proposals, ordered as selection orders tiers: valid before rejected, higher
fidelity first, complete before raced out, then the first fitness component. Each search draws
from its own generator seeded by (campaign seed, generation, rank of the parent), never from
numpy's global state, and the whole step runs inside one generation before its checkpoint, so
a run killed mid-step redoes it identically on resume.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossevo.search.records import CandidateRecord, Child, Result
from lossevo.symbolic.parse import format_nodes, parse

__all__ = [
    "ConstantTuning",
    "constants",
    "describe",
    "pick",
    "score",
    "search",
    "tune_step",
    "with_constants",
]

Score = tuple[float, ...]
# `evaluate` of tune_step: children in, their records and counts out, as a campaign evaluates
Evaluate = Callable[[list[Child]], tuple[list[CandidateRecord], Mapping[str, Any]]]

MAX_TOP_K = 1000
MAX_ROUNDS = 1000
MAX_POPSIZE = 1024
# Spawn-key tag of the tuning streams: instances use (k,) and environments (10**6, i), so
# (tag, generation, parent) can never collide with them under the same campaign seed.
_STREAM = 7_000_001
# Constants below this magnitude get the step `sigma` itself; larger ones `sigma` times their
# magnitude: 0.3 moves 0.05 by about ±0.3 and 4.0 by about ±1.2.
_UNIT = 1.0


@dataclass(frozen=True)
class ConstantTuning:
    """top_k: functions tuned per tuning generation; rounds: CMA-ES iterations per function;
    popsize: proposals per iteration; sigma: initial step, relative to a constant's magnitude
    (absolute below magnitude 1); every: tune in generations 0, every, 2·every, …"""

    top_k: int = 2
    rounds: int = 3
    popsize: int = 4
    sigma: float = 0.3
    every: int = 1

    def __post_init__(self) -> None:
        for name, low, high in (("top_k", 1, MAX_TOP_K), ("rounds", 1, MAX_ROUNDS),
                                ("popsize", 2, MAX_POPSIZE), ("every", 1, None)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int) or value < low
                    or (high is not None and value > high)):
                allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
                raise ValueError(f"constant_tuning.{name} = {value!r}; allowed: an integer "
                                 f"{'in ' if high is not None else ''}{allowed}")
        s = self.sigma
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s <= 100:
            raise ValueError(f"constant_tuning.sigma = {s!r}; allowed: a number in (0, 100] "
                             f"(the initial step relative to each constant's magnitude)")

    def due(self, generation: int) -> bool:
        return generation % self.every == 0

    def proposals(self, generations: int) -> int:
        """The most proposals a campaign of `generations` generations after the first trains."""
        tuned = generations // self.every + 1
        return tuned * self.top_k * self.rounds * self.popsize


def constants(expression: str) -> list[float]:
    """The numeric constants of an expression, in prefix order."""
    return [float(n.value) for n in parse(expression) if n.kind == "constant"]


def with_constants(expression: str, values: Sequence[float]) -> str:
    """`expression` with its constants replaced, in prefix order, by `values`."""
    nodes = parse(expression)
    at = [i for i, n in enumerate(nodes) if n.kind == "constant"]
    if len(at) != len(values):
        raise ValueError(f"{expression!r} has {len(at)} constant(s), got {len(values)} values")
    for i, v in zip(at, values, strict=True):
        if not math.isfinite(v):
            raise ValueError(f"constant value {v!r} for {expression!r}; allowed: a finite number")
        nodes[i] = dataclasses.replace(nodes[i], value=float(v))
    return format_nodes(nodes)


def score(record: CandidateRecord) -> Score:
    """A record's rank as selection tiers it: valid, fidelity, complete, first component."""
    first = record.fitness[0]
    return (float(not record.rejected), float(record.fidelity), float(not record.raced_out),
            first if not math.isnan(first) else float("-inf"))


def pick(pool: Sequence[CandidateRecord], k: int, done: Sequence[str]) -> list[CandidateRecord]:
    """The `k` best distinct functions of `pool` (first fitness first, then size) that have
    constants and a complete score (valid, full fidelity, not raced out) and whose canonical
    key is not in `done`."""
    skip = set(done)
    ok = [r for r in pool if not r.rejected and r.fidelity == 1.0 and not r.raced_out
          and r.canonical_key not in skip and constants(r.expression)]
    ok.sort(key=lambda r: (tuple(-v for v in r.fitness), r.size, r.expression))
    chosen: dict[str, CandidateRecord] = {}
    for rec in ok:
        if len(chosen) == k:
            break
        chosen.setdefault(rec.canonical_key, rec)
    return list(chosen.values())


def _ranks(scores: Sequence[Score]) -> list[float]:
    """CMA-ES minimizes: 0 for the best, ties equal."""
    return [float(sum(o > s for o in scores)) for s in scores]


def search(starts: Sequence[Sequence[float]], settings: ConstantTuning, seeds: Sequence[int],
           evaluate: Callable[[list[tuple[int, list[float]]]], list[Score]], decimals: int,
           ) -> list[list[tuple[list[float], Score]]]:
    """CMA-ES from each start, in lockstep: each round asks every search for `popsize`
    points, rounds them to `decimals` places, scores all of them in one ``evaluate`` call
    (given (search index, point) pairs, higher is better) and tells each search its ranks.
    Returns each search's (point, score) pairs, in the order they were evaluated."""
    import cma  # imports scipy.stats: seconds, only when tuning runs

    if len(starts) != len(seeds):
        raise ValueError(f"{len(starts)} starts but {len(seeds)} seeds; need one per start")
    strategies = []
    for x0, seed in zip(starts, seeds, strict=True):
        if not x0:
            raise ValueError("a start without constants cannot be tuned")
        gen = np.random.default_rng(seed)
        strategies.append(cma.CMAEvolutionStrategy(list(map(float, x0)), settings.sigma, {
            "popsize": settings.popsize, "CMA_stds": [max(abs(v), _UNIT) for v in x0],
            "randn": lambda *shape, g=gen: g.standard_normal(shape),
            "seed": float("nan"),  # leave numpy's global generator alone
            "verbose": -9, "verb_log": 0, "verb_disp": 0}))  # no output, no files
    trace: list[list[tuple[list[float], Score]]] = [[] for _ in starts]
    for _ in range(settings.rounds):
        asked = [es.ask() for es in strategies]
        # a diverged coordinate (inf, nan) falls back to its start: the text needs a number
        batch = [(i, [round(float(v), decimals) if math.isfinite(v) else float(x0)
                      for v, x0 in zip(x, starts[i], strict=True)])
                 for i, xs in enumerate(asked) for x in xs]
        scores = evaluate(batch)
        if len(scores) != len(batch):
            raise ValueError(f"evaluate returned {len(scores)} scores for {len(batch)} points")
        for i, es in enumerate(strategies):
            mine = [(x, s) for (j, x), s in zip(batch, scores, strict=True) if j == i]
            trace[i].extend(mine)
            es.tell(asked[i], _ranks([s for _, s in mine]))
    return trace


def tune_step(pool: Sequence[CandidateRecord], settings: ConstantTuning, evaluate: Evaluate,
              *, seed: int, generation: int, decimals: int, done: list[str],
              cache: Mapping[str, Result]) -> tuple[list[CandidateRecord], dict[str, Any]]:
    """One memetic step of a campaign generation; returns (children, counts).

    `evaluate` scores proposals (Child, operator "tune") as a campaign scores its children and
    returns their records and counts (``evaluated``, ``hits``, ``rejected``); `cache` is where
    it keeps results by canonical key (read here for trainings). The tuned parents' keys are
    appended to `done`. Children are the best proposals that beat their parent, still
    without ``id`` and ``generation``."""
    parents = pick(pool, settings.top_k, done)
    done.extend(p.canonical_key for p in parents)
    counts: dict[str, Any] = {"candidates": len(parents), "proposals": 0, "evaluated": 0,
                              "hits": 0, "rejected": 0, "trainings": 0, "model_epochs": 0,
                              "children": 0, "gain": None}
    if not parents:
        return [], counts
    tried: list[list[CandidateRecord]] = [[] for _ in parents]

    def evaluate_points(batch: list[tuple[int, list[float]]]) -> list[Score]:
        proposals = [Child(with_constants(parents[i].expression, x), (parents[i].id,), "tune")
                     for i, x in batch]
        recs, got = evaluate(proposals)
        for key in ("evaluated", "hits", "rejected"):
            counts[key] += got[key]
        counts["proposals"] += len(recs)
        for (i, _), rec in zip(batch, recs, strict=True):
            tried[i].append(rec)
            if not rec.cached:  # the first record of a new function carries its cost
                res = cache[rec.canonical_key]
                counts["trainings"] += int(res.trainings)
                counts["model_epochs"] += int(res.model_epochs)
        return [score(r) for r in recs]

    seeds = [int(np.random.SeedSequence(seed, spawn_key=(_STREAM, generation, i))
                 .generate_state(1)[0]) for i in range(len(parents))]
    search([constants(p.expression) for p in parents], settings, seeds, evaluate_points,
           decimals)
    children = []
    for parent, recs in zip(parents, tried, strict=True):
        best = max(recs, key=score)  # the first of equals: deterministic
        if score(best) > score(parent):
            children.append(best)
            gain = best.fitness[0] - parent.fitness[0]
            counts["gain"] = gain if counts["gain"] is None else max(counts["gain"], gain)
    counts["children"] = len(children)
    return children, counts


def describe(counts: Mapping[str, Any] | None) -> str:
    """The progress-line part of a generation's tuning counts ("" when it did not tune)."""
    if not counts:
        return ""
    if not counts["candidates"]:
        return ", nothing left to tune"
    gain = "" if counts["gain"] is None else f" (best {counts['gain']:+.4f})"
    return (f", tuned {counts['candidates']} candidate(s): {counts['proposals']} proposals, "
            f"{counts['trainings']} trainings, {counts['children']} improved{gain}")
