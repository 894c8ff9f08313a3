"""Expressions as sympy: the hub between trees, cache keys, LaTeX and compiled torch code.

The conversion walks the prefix list with a stack (no ``eval``, no recursion), so a tree of any
depth converts. ``canonical_key`` relies on sympy's automatic canonical form (sorted Add/Mul
arguments, folded numbers, ``x - x = 0``, ``x*1 = x``) plus float rounding and a size-guarded
product expansion; full ``sympy.simplify`` is avoided because it took seconds per tree here and
often made expressions larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import sympy

from lossevo.parse import Node, parse
from lossevo.primitives import lookup

__all__ = [
    "Y_PRED",
    "Y_TRUE",
    "canonical_key",
    "nodes_to_sympy",
    "to_latex",
    "to_sympy",
]

Y_PRED = sympy.Symbol("y_pred", real=True)
Y_TRUE = sympy.Symbol("y_true", real=True)
_SYMBOLS = {"y_pred": Y_PRED, "y_true": Y_TRUE}

# Expansion of products over sums is cheap on small trees and can blow up on large ones.
_EXPAND_MAX_OPS = 60
_EXPANDED_MAX_OPS = 400
_KEY_DIGITS = 10


def _constant(value: float | int) -> sympy.Expr:
    if isinstance(value, int):
        return sympy.Integer(value)
    return sympy.Float(value)


def nodes_to_sympy(nodes: Sequence[Node]) -> sympy.Expr:
    """Build the sympy form of a prefix node list (see :func:`lossevo.parse.parse`)."""
    stack: list[sympy.Expr] = []
    for node in reversed(nodes):
        if node.kind == "variable":
            stack.append(_SYMBOLS[node.value])
        elif node.kind == "constant":
            stack.append(_constant(node.value))
        else:
            prim = lookup(node.value)
            args = [stack.pop() for _ in range(prim.arity)]
            stack.append(prim.sympy_fn(*args))
    if len(stack) != 1:
        raise ValueError(f"node list does not form one expression ({len(stack)} roots)")
    return stack[0]


@lru_cache(maxsize=4096)
def _to_sympy_cached(expr: str) -> sympy.Expr:
    return nodes_to_sympy(parse(expr))


def to_sympy(expr: str) -> sympy.Expr:
    """The sympy form of an expression text, over the real symbols ``y_pred`` and ``y_true``.

    Protected operators become sympy Functions (``pdiv``, ``psqrt``, ``plog``, ``pexp``) that
    fold numeric arguments with exactly the protected semantics.
    """
    return _to_sympy_cached(expr)


def _normalize_numbers(expr: sympy.Expr) -> sympy.Expr:
    """Round floats to a fixed number of digits and turn integral floats into integers."""
    repl = {}
    for f in expr.atoms(sympy.Float):
        rounded = float(f"{float(f):.{_KEY_DIGITS}g}")
        repl[f] = sympy.Integer(int(rounded)) if rounded.is_integer() else sympy.Float(rounded)
    return expr.xreplace(repl) if repl else expr


def _normal_form(expr: sympy.Expr) -> sympy.Expr:
    expr = _normalize_numbers(expr)
    if sympy.count_ops(expr) <= _EXPAND_MAX_OPS:
        expanded = sympy.expand_mul(expr, deep=True)
        if sympy.count_ops(expanded) <= _EXPANDED_MAX_OPS:
            expr = _normalize_numbers(expanded)
    return expr


@lru_cache(maxsize=65536)
def canonical_key(expr: str) -> str:
    """A text equal for expressions that cheap normalization proves identical.

    Equal keys imply equal functions (every rewrite used preserves the protected semantics, up
    to float rounding at 10 significant digits); different keys do not prove different functions.
    """
    return sympy.srepr(_normal_form(to_sympy(expr)))


def to_latex(expr: str | sympy.Expr) -> str:
    """LaTeX for reports; protected operators print in their readable form (see primitives)."""
    sym = to_sympy(expr) if isinstance(expr, str) else expr
    return sympy.latex(sym)
