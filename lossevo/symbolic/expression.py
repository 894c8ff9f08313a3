"""Expressions as sympy: the hub between trees, cache keys, LaTeX and compiled torch code.

The conversion walks the prefix list with a stack (no ``eval``, no recursion), so a tree of any
depth converts. ``canonical_key`` relies on sympy's automatic canonical form (sorted Add/Mul
arguments, folded numbers, ``x - x = 0``, ``x*1 = x``) plus float rounding and a size-guarded
product expansion; full ``sympy.simplify`` is avoided because it took seconds per tree here and
often made expressions larger.

Given the task kind, ``canonical_key`` identifies losses that *train* alike rather than equal
functions: gradients ignore additive terms free of ``y_pred`` and Adam ignores a positive scale
(up to its ε), so a campaign should evaluate one of them, not fill its hall of fame with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache

import sympy

from lossevo.symbolic.kinds import KINDS, TaskKind, task_kind
from lossevo.symbolic.parse import Node, parse
from lossevo.symbolic.primitives import TIME, cmax, csum, lookup

__all__ = [
    "KEY_KINDS",
    "Y_PRED",
    "Y_TRUE",
    "T",
    "canonical_key",
    "nodes_to_sympy",
    "to_latex",
    "to_sympy",
]

Y_PRED = sympy.Symbol("y_pred", real=True)
Y_TRUE = sympy.Symbol("y_true", real=True)
T = sympy.Symbol(TIME, real=True)  # the fraction of training done, in [0, 1]
_SYMBOLS = {"y_pred": Y_PRED, "y_true": Y_TRUE, TIME: T}

# Expansion of products over sums is cheap on small trees and can blow up on large ones.
_EXPAND_MAX_OPS = 60
_EXPANDED_MAX_OPS = 400
_KEY_DIGITS = 10
# Top-level distribution of products over sums, all or nothing (so that the decision does not
# depend on a scale or an added constant): only when the full expansion has at most this many
# terms.
_SPLIT_MAX_TERMS = 256
# A coefficient that cancels to below this fraction of the terms summed into it is float noise.
_CANCELLED = 1e-12
# Scales merged under Adam. Measured on digits (MLP 16, Adam lr 1e-3, 600 steps), the final
# parameters of c·CE and CE differ by 3e-5..6e-5 (relative) for c in [2, 1e6], 1.7e-3 at
# c = 0.1, 4e-3 at 1e-2, 2e-2 at 1e-3 (−c·p·y: 4e-4; 2.7e-3, 1.5e-2, 5.7e-2), two seeds by
# O(1): ε's share grows as the scale falls; squared gradients beyond ~1e19 overflow float32.
_SCALE_RANGE = (1e-2, 1e12)
# Classification: a c·y_pred term larger than this times the rest is not dropped (see below).
_LINEAR_MAX = 1e3
# The kinds a key can be asked for: every task kind (lossevo.symbolic.kinds).
KEY_KINDS = KINDS


def _constant(value: float | int) -> sympy.Expr:
    if isinstance(value, int):
        return sympy.Integer(value)
    return sympy.Float(value)


def nodes_to_sympy(nodes: Sequence[Node]) -> sympy.Expr:
    """Build the sympy form of a prefix node list (see :func:`lossevo.symbolic.parse.parse`)."""
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
    """The sympy form of an expression text, over the real symbols ``y_pred``, ``y_true`` and
    ``t``.

    Protected operators become sympy Functions (``pdiv``, ``psqrt``, ``plog``, ``pexp``) that
    fold numeric arguments with exactly the protected semantics; the class reductions become
    ``csum`` and ``cmax``, which sympy cannot evaluate (the number of classes is not known).
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
def canonical_key(expr: str, kind: str | None = None, weight_decay: float = 0.0, *,
                  scale_free: bool | None = None) -> str:
    """A text shared by expressions that cheap normalization proves equivalent.

    Without ``kind``: equivalent means the same function (every rewrite preserves the protected
    semantics, up to float rounding at 10 significant digits). With ``kind`` (see
    :data:`KEY_KINDS`): losses that train the same model alike under Adam for that kind of task
    (see :func:`_training_form` for the rules) — the key for caches, novelty and halls of fame.
    ``weight_decay`` is the task's: Adam's L2 term ``wd·θ`` joins the gradient unscaled, so a
    positive scale is factored out only when it is 0; ``scale_free`` overrides that rule with
    what the trainer is known to do (``lossevo.evaluation.optimizers.ignores_loss_scale``: SGD
    follows the scale, so under it ``2·g`` and ``g`` must keep apart). Binary and regression keys
    use only the rules every kind shares, so either serves tasks of mixed kinds. Constant losses
    share the key of ``0``. Different keys do not prove a difference.
    """
    if kind is None:
        return sympy.srepr(_normal_form(to_sympy(expr)))
    kind = task_kind(kind)
    if scale_free is None:
        scale_free = weight_decay == 0
    return sympy.srepr(_training_form(to_sympy(expr), kind, scale_free=scale_free))


# --- keys modulo training equivalence -------------------------------------------------------


def _power_of_sum(f: sympy.Expr) -> bool:
    """``(a + b)**n`` with a positive integer n: a product of sums, multiplied out with them."""
    return bool(f.is_Pow and f.base.is_Add and f.exp.is_Integer and f.exp > 1)


def _expanded_size(expr: sympy.Expr) -> int:
    """Terms of the full distribution of products (and integer powers) over sums outside
    function arguments, capped just above the limit; post-order without recursion."""
    cap = _SPLIT_MAX_TERMS + 1
    sizes: dict[sympy.Expr, int] = {}
    stack = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        kids = node.args if node.is_Add or node.is_Mul or _power_of_sum(node) else ()
        if node in sizes:
            continue
        if kids and not ready:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if k not in sizes)
        elif node.is_Add:
            sizes[node] = min(cap, sum(sizes[k] for k in kids))
        elif node.is_Mul:
            sizes[node] = min(cap, math.prod(sizes[k] for k in kids))
        elif kids:  # (a + b)**n; n < 2**30 here, else the size is already capped
            base, n = sizes[kids[0]], int(kids[1])
            sizes[node] = cap if n * math.log2(base) >= 30 else min(cap, base**n)
        else:
            sizes[node] = 1
    return sizes[expr]


def _pieces(expr: sympy.Expr, distribute: bool) -> Iterable[tuple[sympy.Expr, sympy.Expr]]:
    """(coefficient, term) pairs summing to ``expr`` minus its ``y_pred``-free terms: sums split
    and numeric factors pulled out, and with ``distribute`` products and integer powers
    multiplied out over sums. Functions stay whole: their arguments are not touched."""
    stack = [(sympy.S.One, expr)]
    while stack:
        coeff, e = stack.pop()
        if Y_PRED not in e.free_symbols:
            continue
        c, e = e.as_coeff_Mul()
        coeff = coeff * c
        if e.is_Add:
            stack.extend((coeff, a) for a in e.args)
            continue
        factors = sympy.Mul.make_args(e)
        first = next((f for f in factors if f.is_Add or _power_of_sum(f)), None) \
            if distribute else None
        if first is None:
            yield coeff, e
            continue
        rest = sympy.Mul(*(f for f in factors if f is not first))
        if first.is_Pow:  # (a + b)**n = (a + b) · (a + b)**(n-1)
            rest, first = rest * first.base ** (first.exp - 1), first.base
        stack.extend((coeff, rest * a) for a in first.args)


def _one_hot_split(sym: sympy.Expr) -> sympy.Expr:
    """``f(p, y) = y·f(p, 1) + (1 − y)·f(p, 0)``, exact on one-hot targets (y is 0 or 1).

    Written so, ``y_true`` appears only as a linear factor, and what a loss does on the other
    classes is spelled out: ``div(x, y_true)`` becomes ``x/ε`` there (protected division), so
    losses that differ only in terms that division turns into constants (e.g. the constant
    ``c`` of ``div(sub(c, …), y_true)``) share a key.

    A class reduction sees every class's ``y_true`` at once, so it is not split: it enters as
    an opaque per-sample value, after ``csum(y_true) = cmax(y_true) = 1`` (exact on one-hot
    targets, in floats too). ``csum(y_pred) = 1`` is left alone: the float32 softmax sums to 1
    only up to rounding, which protected division can scale up to the size of the loss."""
    if Y_TRUE not in sym.free_symbols:
        return sym
    reductions = sym.atoms(csum, cmax)
    if reductions:  # outermost first: xreplace does not look inside what it replaces
        sym = sym.xreplace({csum(Y_TRUE): sympy.S.One, cmax(Y_TRUE): sympy.S.One})
        hidden = {r: sympy.Dummy(f"r{i}") for i, r in enumerate(
            sorted(sym.atoms(csum, cmax), key=sympy.default_sort_key))}
        return _one_hot_split(sym.xreplace(hidden)).xreplace({d: r for r, d in hidden.items()})

    def at(value: sympy.Expr) -> sympy.Expr:  # numbers such as sin(1) folded to floats
        return sym.xreplace({Y_TRUE: value}).replace(
            lambda x: not x.is_Atom and x.is_number, lambda x: x.evalf())

    on, off = at(sympy.S.One), at(sympy.S.Zero)
    return Y_TRUE * (on - off) + off


def _float(x: sympy.Expr) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):  # zoo, nan and the like: left unscaled
        return math.nan


def _rounded(value: float) -> sympy.Expr:
    rounded = float(f"{value:.{_KEY_DIGITS}g}")
    return sympy.Integer(int(rounded)) if rounded.is_integer() else sympy.Float(rounded)


def _training_form(sym: sympy.Expr, kind: str, scale_free: bool) -> sympy.Expr:
    """A representative of the losses that train like ``sym`` on a task of ``kind``.

    Rules, exact for the gradient that reaches the model up to the float effects named:
    - additive terms free of ``y_pred`` go (no gradient flows through them);
    - classification: the loss is split into its target-class and other-class parts
      (:func:`_one_hot_split`, exact on one-hot targets), and a term ``c·y_pred`` goes
      (Σₖ c·pₖ = c after the softmax) unless |c| exceeds the other terms' leading coefficient
      by more than 1e3: the float32 softmax sums to 1 only up to ~1e-7, and a ``div(y_pred,
      0.0)`` = 1e7·y_pred turns that into gradient noise as large as the rest. Σₖ yₖ = 1 adds
      nothing more, since terms of ``y_true`` alone already went. Class reductions are
      opaque per-sample values there, but for ``csum(y_true) = cmax(y_true) = 1``;
    - binary and regression: ``csum``/``cmax`` are the identity on a single output, yet stay
      opaque, so that these keys keep serving comparisons across kinds;
    - with ``scale_free``, the coefficients are divided by the magnitude of the first one in
      sympy's sort order of the coefficient-free terms, so ``c·g`` and ``g`` (c > 0) meet while
      ``-g`` stays apart — but only while the largest coefficient lies in ``_SCALE_RANGE``:
      Adam's step ``m/(√v + ε)`` ignores the scale only while gradients stay well above
      ε = 1e-8 (and their squares inside float32).
    A loss with no term left (constant, or constant after the class sum) becomes 0.
    """
    if kind == TaskKind.CLASSIFICATION:
        sym = _one_hot_split(sym)
    distribute = sum(_expanded_size(e) for _, e in _pieces(sym, False)) <= _SPLIT_MAX_TERMS
    total: dict[sympy.Expr, sympy.Expr] = {}
    size: dict[sympy.Expr, float] = {}  # Σ|contributions|, to tell cancellation from a value
    for coeff, piece in _pieces(sym, distribute):
        piece = _normal_form(piece)  # guarded per piece: independent of scale and constants
        for c, term in _pieces(piece, False):
            total[term] = total.get(term, sympy.S.Zero) + coeff * c
            size[term] = size.get(term, 0.0) + abs(_float(coeff * c))
    # (a nan coefficient compares False and stays)
    terms = [t for t in sorted(total, key=sympy.default_sort_key)
             if not abs(_float(total[t])) <= _CANCELLED * size[t]]
    linear = kind == TaskKind.CLASSIFICATION and Y_PRED in terms
    if linear:
        terms.remove(Y_PRED)
    if not terms:
        return sympy.S.Zero
    lead = abs(_float(total[terms[0]]))
    if linear and not abs(_float(total[Y_PRED])) <= _LINEAR_MAX * lead:
        terms.append(Y_PRED)
    largest = max(abs(_float(total[t])) for t in terms)
    if not (scale_free and _SCALE_RANGE[0] <= largest <= _SCALE_RANGE[1] and lead > 0):
        lead = 1.0
    out = []
    for t in terms:
        value = _float(total[t]) / lead
        out.append((_rounded(value) if math.isfinite(value) else total[t]) * t)
    return sympy.Add(*out)


def to_latex(expr: str | sympy.Expr) -> str:
    """LaTeX for reports; protected operators print in their readable form (see primitives)."""
    sym = to_sympy(expr) if isinstance(expr, str) else expr
    return sympy.latex(sym)
