"""The DEAP side: primitive sets built from the table, trees ↔ text, module-level classes.

DEAP's ``creator`` makes classes at run time in a global module, which breaks spawn-started
processes and dask workers; here ``Individual`` and ``Fitness`` are ordinary module-level
classes, and trees travel between processes as text. Constants are plain terminals drawn from
our own seeded generator (DEAP's ephemerals draw from the global ``random`` state).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from deap import base, gp

from lossevo.symbolic.parse import Node, parse
from lossevo.symbolic.primitives import primitive_set, primitive_set_terminals

__all__ = [
    "ConstantSpec",
    "Fitness",
    "Individual",
    "build_pset",
    "constant_terminal",
    "from_text",
    "tree_nodes",
]


@dataclass(frozen=True)
class ConstantSpec:
    """Ephemeral constants: uniform in ``[low, high]``, rounded to ``decimals`` places."""

    low: float = -5.0
    high: float = 5.0
    decimals: int = 3

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"constants: low ({self.low}) must be below high ({self.high})")
        if not 0 <= self.decimals <= 12:
            raise ValueError(f"constants: decimals must be in 0..12, got {self.decimals}")

    def draw(self, rng: random.Random) -> float:
        return round(rng.uniform(self.low, self.high), self.decimals)


def constant_terminal(value: float | int) -> gp.Terminal:
    """A constant leaf; it prints as ``repr(value)`` so text round-trips exactly."""
    return gp.Terminal(value, False, object)


def build_pset(preset: str = "ganetic") -> gp.PrimitiveSet:
    """A DEAP primitive set with the preset's terminals as arguments (``y_pred``, ``y_true``,
    and ``t`` where the preset has it) and its primitives."""
    terminals = primitive_set_terminals(preset)
    pset = gp.PrimitiveSet(f"lossevo_{preset}", len(terminals))
    pset.renameArguments(**{f"ARG{i}": name for i, name in enumerate(terminals)})
    for prim in primitive_set(preset):
        pset.addPrimitive(prim.numpy_fn, prim.arity, name=prim.name)
    return pset


def from_text(expr: str, pset: gp.PrimitiveSet, cls: type = gp.PrimitiveTree) -> gp.PrimitiveTree:
    """Parse text into a tree of ``pset`` (validated; see :func:`lossevo.symbolic.parse.parse`)."""
    tree = []
    for node in parse(expr):
        if node.kind == "constant":
            tree.append(constant_terminal(node.value))
            continue
        item = pset.mapping.get(node.value)
        if item is None and node.kind == "variable":
            raise ValueError(
                f"terminal {node.value!r} at position {node.position} is not in primitive set "
                f"{pset.name!r}; allowed: {', '.join(pset.arguments)} or a number"
            )
        if item is None:
            raise ValueError(
                f"primitive {node.value!r} at position {node.position} is not in primitive set "
                f"{pset.name!r}; allowed: {', '.join(p.name for p in pset.primitives[object])}"
            )
        tree.append(item)
    return cls(tree)


def tree_nodes(tree: gp.PrimitiveTree) -> list[Node]:
    """The parser's node list for a DEAP tree (for conversion to sympy without text)."""
    out = []
    for item in tree:
        if isinstance(item, gp.Primitive):
            out.append(Node("primitive", item.name, item.arity))
        elif isinstance(item.value, str):
            out.append(Node("variable", item.value))
        else:
            out.append(Node("constant", item.value))
    return out


class Fitness(base.Fitness):
    """DEAP fitness whose weights are set per instance (no run-time class creation)."""

    weights = (1.0,)

    def __init__(self, values=(), weights: tuple[float, ...] | None = None):
        if weights is not None:
            self.weights = tuple(weights)
        super().__init__(values)

    def __deepcopy__(self, memo):
        copy = Fitness(weights=self.weights)
        copy.wvalues = self.wvalues
        return copy

    def __reduce__(self):
        return (Fitness, (self.values if self.valid else (), self.weights))


class Individual(gp.PrimitiveTree):
    """A tree with a fitness, as DEAP's algorithms expect."""

    def __init__(self, content, weights: tuple[float, ...] = (1.0,)):
        super().__init__(content)
        self.fitness = Fitness(weights=weights)
