"""The generation loop's pure parts: initial population, offspring, selection, elites.

Individuals travel as frozen records (lossevo.search.records: a Child before evaluation, a
CandidateRecord after) that a checkpoint stores as JSON, so nothing depends on DEAP class
identity; DEAP trees are rebuilt from text where an operator needs one. Selection is NSGA-II
on the fitness vector plus expression size (minimized), as DEAP's ``selNSGA2`` computes it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container
from functools import lru_cache

from deap import tools

from lossevo.search.config import CampaignConfig
from lossevo.search.records import CandidateRecord, Child
from lossevo.search.variation import crossover, generate, mutate, within_limits
from lossevo.symbolic.expression import canonical_key
from lossevo.symbolic.grammar import Individual, build_pset, from_text
from lossevo.symbolic.probes import check_expression

__all__ = [
    "FLOOR",
    "hall_of_fame",
    "initial_expressions",
    "novelty_checker",
    "offspring",
    "pareto_front",
    "select",
]

# Rejected candidates score -inf; selection needs finite values, so they sit on this floor,
# dominated by every candidate that trained.
FLOOR = -1e9
# Random trees fail the cheap probes often (most of a random generation 0 here); a child that
# fails is redrawn up to this many times, so training slots go to candidates that can learn.
# The last draw is kept even if it fails: it is then recorded and rejected as usual.
REDRAWS = 20
# A child whose function (canonical key) was already evaluated costs nothing but teaches
# nothing: once the population converges most children are such repeats (15 of 16 per
# generation on poly3-outliers before this). Of the redraws, up to this many are spent on
# finding a child that is new.
NOVELTY_REDRAWS = 8


def _finite(values) -> tuple[float, ...]:
    return tuple(v if v > FLOOR else FLOOR for v in values)


def initial_expressions(cfg: CampaignConfig, rng: random.Random) -> list[str]:
    """Seed expressions first, then ramped half-and-half trees within the limits."""
    pset = build_pset(cfg.evolution.primitive_set)
    out = [str(from_text(e, pset)) for e in cfg.evolution.seed_expressions]
    lim = cfg.limits
    i = 0
    while len(out) < cfg.evolution.population:
        method = "full" if i % 2 == 0 else "grow"
        i += 1
        for attempt in range(REDRAWS + 1):
            tree = Individual(generate(pset, rng, lim.init_min_height, lim.init_max_height,
                                       method=method, consts=cfg.constants,
                                       p_const=cfg.evolution.constant_probability))
            if within_limits(tree, lim) and (
                attempt == REDRAWS or _passes(str(tree), cfg.task.kind)
            ):
                out.append(str(tree))
                break
    return out[: cfg.evolution.population]


@lru_cache(maxsize=65536)
def _passes(expr: str, kind: str) -> bool:
    return not check_expression(expr, kind)


def novelty_checker(known: Container[str], kind: str | None = None,
                    weight_decay: float = 0.0, *,
                    scale_free: bool | None = None) -> Callable[[str], bool]:
    """``seen`` for :func:`offspring`: True for an expression whose canonical key (for the
    task's `kind`, `weight_decay` and `scale_free`, as the keys in `known` were made; see
    :func:`lossevo.symbolic.expression.canonical_key`) is in `known` (e.g.
    the fitness cache) or was already drawn through this checker, so two equal new children
    count as a repeat too."""
    drawn: set[str] = set()

    def seen(expression: str) -> bool:
        key = canonical_key(expression, kind, weight_decay, scale_free=scale_free)
        if key in known or key in drawn:
            return True
        drawn.add(key)
        return False

    return seen


def offspring(cfg: CampaignConfig, population: list[CandidateRecord], rng: random.Random,
              seen: Callable[[str], bool] | None = None) -> list[Child]:
    """λ children by crossover, mutation or reproduction (DEAP's varOr); over-limit children
    are replaced by a parent.

    A child that fails the probes is redrawn; so, a few times, is one for which ``seen``
    (called with the expression) says its function was already evaluated or drawn."""
    evo = cfg.evolution
    pset = build_pset(evo.primitive_set)
    ops = list(evo.mutation_weights)
    weights = [evo.mutation_weights[o] for o in ops]
    children: list[Child] = []
    while len(children) < evo.offspring:
        repeats = 0
        for attempt in range(REDRAWS + 1):
            child = _child(cfg, population, rng, pset, ops, weights)
            if attempt == REDRAWS:
                break
            if not _passes(child.expression, cfg.task.kind):
                continue
            if seen is not None and repeats < NOVELTY_REDRAWS and seen(child.expression):
                repeats += 1
                continue
            break
        children.append(child)
    return children


def _child(cfg: CampaignConfig, population: list[CandidateRecord], rng: random.Random, pset,
           ops: list[str], weights: list[float]) -> Child:
    """One child by crossover, mutation or reproduction; over the limits it is its parent."""
    evo, lim = cfg.evolution, cfg.limits
    roll = rng.random()
    if roll < evo.crossover_rate:
        a, b = rng.sample(population, 2)
        child, _ = crossover(from_text(a.expression, pset), from_text(b.expression, pset), rng)
        parents, op = (a.id, b.id), "crossover"
    elif roll < evo.crossover_rate + evo.mutation_rate:
        a = rng.choice(population)
        op = rng.choices(ops, weights)[0]
        child = mutate(from_text(a.expression, pset), op, pset, rng, cfg.constants, lim)
        parents = (a.id,)
    else:
        a = rng.choice(population)
        child, parents, op = from_text(a.expression, pset), (a.id,), "reproduction"
    text = str(child) if within_limits(child, lim) else a.expression
    return Child(text, parents, op)


def select(cfg: CampaignConfig, pool: list[CandidateRecord]) -> list[CandidateRecord]:
    """μ survivors of parents + offspring by NSGA-II over (fitness..., size).

    Each function (canonical key) competes once, by its earliest record, so copies of one
    function cannot crowd out the rest; copies fill in only when the pool has fewer than μ
    distinct functions."""
    n_fit = len(pool[0].fitness)
    weights = (1.0,) * n_fit + (-1.0,)
    first: dict[str, CandidateRecord] = {}
    for rec in pool:
        first.setdefault(rec.canonical_key, rec)
    distinct = list(first.values())
    chosen_ids = {id(r) for r in distinct}
    copies = [r for r in pool if id(r) not in chosen_ids]
    inds = []
    for rec in distinct:
        ind = Individual([], weights=weights)
        # a rejected tree must not survive as "smallest": it gets the worst size too
        size = -FLOOR if rec.rejected else float(rec.size)
        ind.fitness.values = (*_finite(rec.fitness), size)
        ind.record = rec
        inds.append(ind)
    mu = cfg.evolution.population
    chosen = [ind.record for ind in tools.selNSGA2(inds, min(mu, len(inds)))]
    return chosen + copies[: mu - len(chosen)]


def _rank_key(rec: CandidateRecord) -> tuple[tuple[float, ...], int, str]:
    return (tuple(-v for v in _finite(rec.fitness)), rec.size, rec.expression)


def hall_of_fame(current: list[CandidateRecord], new: list[CandidateRecord], size: int
                 ) -> list[CandidateRecord]:
    """The best distinct functions (by canonical key) ever seen, fitness first, then size."""
    best: dict[str, CandidateRecord] = {}
    for rec in [*current, *new]:
        if rec.rejected:
            continue
        old = best.get(rec.canonical_key)
        if old is None or _rank_key(rec) < _rank_key(old):
            best[rec.canonical_key] = rec
    return sorted(best.values(), key=_rank_key)[:size]


def pareto_front(current: list[CandidateRecord], new: list[CandidateRecord]
                 ) -> list[CandidateRecord]:
    """Candidates not dominated in (first fitness component ↑, size ↓)."""
    pool = {r.canonical_key: r for r in [*current, *new] if not r.rejected}
    ranked = sorted(pool.values(), key=lambda r: (r.size, -r.fitness[0], r.expression))
    front: list[CandidateRecord] = []
    best = float("-inf")
    for rec in ranked:
        if rec.fitness[0] > best:
            front.append(rec)
            best = rec.fitness[0]
    return front
