"""Tree generation, crossover and mutation, driven by an explicit ``random.Random``.

DEAP's gp operators draw from the global ``random`` module, which dask's ``Client.map`` also
consumes; these versions take the generator as an argument, so a campaign's offspring depend on
its seed alone. Shapes follow DEAP (ramped half-and-half, one-point subtree crossover, uniform /
node-replacement / shrink / ephemeral mutation); bloat control is DEAP's static limit: an
offspring over the height or size limit is replaced by its parent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from deap import gp

from lossevo.symbolic.grammar import ConstantSpec, constant_terminal
from lossevo.symbolic.parse import MAX_DEPTH

__all__ = [
    "MUTATIONS",
    "Limits",
    "crossover",
    "generate",
    "mutate",
    "within_limits",
]

MUTATIONS = ("uniform", "node_replacement", "shrink", "ephemeral")


@dataclass(frozen=True)
class Limits:
    """Static bloat limits (DEAP's classic height 17) and initial tree heights."""

    max_height: int = 8
    max_size: int = 40
    init_min_height: int = 1
    init_max_height: int = 4

    def __post_init__(self):
        if not 1 <= self.init_min_height <= self.init_max_height <= self.max_height:
            raise ValueError(
                "limits: need 1 <= init_min_height <= init_max_height <= max_height, got "
                f"{self.init_min_height}, {self.init_max_height}, {self.max_height}"
            )
        if not 3 <= self.max_size <= 1000:
            raise ValueError(f"limits: max_size must be in [3, 1000], got {self.max_size}")
        if self.max_height > MAX_DEPTH:
            raise ValueError(f"limits: max_height must be <= {MAX_DEPTH} (the deepest nesting "
                             f"an expression may have), got {self.max_height}")


def _terminal(pset: gp.PrimitiveSet, rng: random.Random, consts: ConstantSpec, p_const: float):
    if rng.random() < p_const:
        return constant_terminal(consts.draw(rng))
    return rng.choice(pset.terminals[object])


def generate(
    pset: gp.PrimitiveSet, rng: random.Random, min_height: int, max_height: int, *,
    method: str, consts: ConstantSpec, p_const: float = 0.3,
) -> list:
    """A random prefix list ("full" or "grow"), as DEAP's genFull/genGrow but seeded."""
    height = rng.randint(min_height, max_height)
    n_terms = len(pset.terminals[object]) + 1  # the arguments plus "a constant"
    ratio = n_terms / (n_terms + len(pset.primitives[object]))
    expr, stack = [], [0]
    while stack:
        depth = stack.pop()
        stop = depth == height or (
            method == "grow" and depth >= min_height and rng.random() < ratio
        )
        if stop:
            expr.append(_terminal(pset, rng, consts, p_const))
        else:
            prim = rng.choice(pset.primitives[object])
            expr.append(prim)
            stack.extend([depth + 1] * prim.arity)
    return expr


def within_limits(tree: gp.PrimitiveTree, limits: Limits) -> bool:
    return tree.height <= limits.max_height and len(tree) <= limits.max_size


def crossover(a: gp.PrimitiveTree, b: gp.PrimitiveTree, rng: random.Random) -> tuple:
    """One-point subtree crossover on copies (parents are left unchanged)."""
    a, b = type(a)(list(a)), type(b)(list(b))
    if len(a) < 2 or len(b) < 2:
        return a, b
    ia, ib = rng.randrange(1, len(a)), rng.randrange(1, len(b))
    sa, sb = a.searchSubtree(ia), b.searchSubtree(ib)
    a[sa], b[sb] = b[sb], a[sa]
    return a, b


def mutate(
    tree: gp.PrimitiveTree, operator: str, pset: gp.PrimitiveSet, rng: random.Random,
    consts: ConstantSpec, limits: Limits,
) -> gp.PrimitiveTree:
    """A mutated copy; ``operator`` is one of MUTATIONS."""
    t = type(tree)(list(tree))
    if operator == "uniform":
        i = rng.randrange(len(t))
        t[t.searchSubtree(i)] = generate(pset, rng, 0, 2, method="grow", consts=consts)
    elif operator == "node_replacement":
        i = rng.randrange(len(t))
        node = t[i]
        if node.arity == 0:
            t[i] = _terminal(pset, rng, consts, 0.3)
        else:
            same = [p for p in pset.primitives[object] if p.arity == node.arity]
            t[i] = rng.choice(same)
    elif operator == "shrink":
        prims = [i for i, n in enumerate(t) if n.arity > 0 and i > 0] or [
            i for i, n in enumerate(t) if n.arity > 0
        ]
        if prims:
            i = rng.choice(prims)
            sl = t.searchSubtree(i)
            children, j = [], i + 1
            for _ in range(t[i].arity):
                end = t.searchSubtree(j).stop
                children.append(t[j:end])
                j = end
            t[sl] = rng.choice(children)
    elif operator == "ephemeral":
        consts_at = [i for i, n in enumerate(t) if n.arity == 0 and not isinstance(n.value, str)]
        if consts_at:
            i = rng.choice(consts_at)
            t[i] = constant_terminal(consts.draw(rng))
        else:  # no constant to change: fall back to a node replacement
            return mutate(tree, "node_replacement", pset, rng, consts, limits)
    else:
        raise ValueError(f"unknown mutation {operator!r}; allowed: {', '.join(MUTATIONS)}")
    return t
