"""The generation loop's pure parts: novelty-seeking offspring and de-duplicated selection."""

import dataclasses
import random
from pathlib import Path

from lossevo.search.config import load_config
from lossevo.search.evolution import initial_expressions, novelty_checker, offspring, select
from lossevo.search.records import CandidateRecord
from lossevo.symbolic.expression import canonical_key

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"


def _population(cfg, rng):
    return [CandidateRecord(id=i, expression=e, canonical_key=canonical_key(e), size=1,
                            fitness=(0.5, -0.1))
            for i, e in enumerate(initial_expressions(cfg, rng))]


def test_offspring_avoids_functions_already_seen():
    cfg = load_config(SMOKE)
    pop = _population(cfg, random.Random(0))
    known = {r.canonical_key for r in pop}
    plain = offspring(cfg, pop, random.Random(1))
    novel = offspring(cfg, pop, random.Random(1), seen=novelty_checker(known))

    def repeats(kids):
        return sum(canonical_key(c.expression) in known for c in kids)

    assert len(novel) == len(plain) == cfg.evolution.offspring
    assert repeats(novel) < repeats(plain)
    assert len({canonical_key(c.expression) for c in novel}) == len(novel)


def test_offspring_terminates_when_everything_is_seen():
    cfg = load_config(SMOKE)
    pop = _population(cfg, random.Random(0))
    kids = offspring(cfg, pop, random.Random(2), seen=lambda _: True)
    assert len(kids) == cfg.evolution.offspring


def test_select_lets_each_function_compete_once():
    cfg = load_config(SMOKE)  # population 6
    best = CandidateRecord(expression="mul(y_true, y_pred)", canonical_key="k-best", size=3,
                           fitness=(0.9, -0.01))
    clones = [dataclasses.replace(best, expression=f"clone-{i}") for i in range(8)]
    others = [CandidateRecord(expression=f"e{i}", canonical_key=f"k{i}", size=5,
                              fitness=(0.1 * i, -0.05)) for i in range(5)]
    chosen = select(cfg, [best, *clones, *others])
    keys = [r.canonical_key for r in chosen]
    assert len(chosen) == cfg.evolution.population
    assert len(set(keys)) == len(keys)  # 6 distinct functions were available
    assert chosen[0] is best or best in chosen
    few = select(cfg, [best, *clones[:3], *others[:2]])  # 3 distinct: copies fill up
    assert len(few) == cfg.evolution.population
    assert {r.canonical_key for r in few} == {"k-best", "k0", "k1"}
