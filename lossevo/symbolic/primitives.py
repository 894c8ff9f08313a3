"""The one table of primitives: each entry carries its sympy, torch and numpy forms together.

Protected operators keep every candidate finite on every input, so that a bad tree is judged
by its training results, not killed by a NaN. Their exact semantics (ε = 1e-7):

- ``div(a, b) = a / b`` if ``|b| > ε``, else ``a / (ε·s)``, ``s = 1`` for ``b ≥ 0``, else ``-1``
- ``sqrt(a) = sqrt(|a|)``
- ``log(a) = log(|a| + ε)``
- ``exp(a) = exp(min(a, 30))``

Class reductions act on the last axis, the classes of a classification task (binary and
regression losses see a single output there, so they are the identity): ``csum(a)`` sums ``a``
over the classes and ``cmax(a)`` takes its largest value, both broadcast back over the classes.
They make per-sample normalizations such as NCE's ``log p_y / Σ_k log p_k`` expressible. The
terminal ``t`` in [0, 1] is the fraction of training done (see :mod:`lossevo.evaluation.training`),
so a loss can follow a schedule without per-sample state.

The torch forms are written so that gradients stay finite too (the double-``where`` trick:
the branch not taken never sees an input that would produce inf or NaN in backward).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy
import torch

__all__ = [
    "EPS",
    "EXP_MAX",
    "PRIMITIVE_SETS",
    "TERMINALS",
    "TIME",
    "Primitive",
    "cmax",
    "csum",
    "lookup",
    "names",
    "pdiv",
    "pexp",
    "plog",
    "primitive_set",
    "primitive_set_terminals",
    "psqrt",
    "torch_cmax",
    "torch_csum",
    "torch_pdiv",
    "torch_pexp",
    "torch_plog",
    "torch_psqrt",
]

EPS = 1e-7
EXP_MAX = 30.0
TIME = "t"
# Every terminal an expression may use; a preset's DEAP grammar draws from its own subset.
TERMINALS = ("y_pred", "y_true", TIME)


# --- torch forms (standalone: export copies their source, so they use only torch) -----------


def torch_pdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Protected division: ``a / b``, with ``b`` replaced by ``±1e-7`` where ``|b| <= 1e-7``."""
    if not isinstance(b, torch.Tensor):  # a constant denominator takes the numerator's dtype
        b = torch.as_tensor(b, dtype=a.dtype if isinstance(a, torch.Tensor) else None)
    tiny = torch.where(b >= 0, torch.full_like(b, 1e-7), torch.full_like(b, -1e-7))
    return a / torch.where(b.abs() > 1e-7, b, tiny)


def torch_psqrt(a: torch.Tensor) -> torch.Tensor:
    """``sqrt(|a|)`` with gradient 0 (not inf) at ``a = 0``."""
    zero = a == 0
    return torch.where(zero, torch.zeros_like(a), torch.sqrt(torch.where(zero, 1.0, a.abs())))


def torch_plog(a: torch.Tensor) -> torch.Tensor:
    """``log(|a| + 1e-7)``."""
    return torch.log(a.abs() + 1e-7)


def torch_pexp(a: torch.Tensor) -> torch.Tensor:
    """``exp(min(a, 30))``."""
    return torch.exp(torch.clamp(a, max=30.0))


def torch_csum(a: torch.Tensor) -> torch.Tensor:
    """Sum over the class axis (the last), kept as a length-1 axis that broadcasts back."""
    return a.sum(dim=-1, keepdim=True)


def torch_cmax(a: torch.Tensor) -> torch.Tensor:
    """Largest value over the class axis, kept as a length-1 axis; ties share the gradient."""
    return a.amax(dim=-1, keepdim=True)


# --- numpy forms (the reference the other two are tested against) ---------------------------


def _np_pdiv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a / np.where(np.abs(b) > EPS, b, np.where(b >= 0, EPS, -EPS))


def _np_psqrt(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.abs(a))


def _np_plog(a: np.ndarray) -> np.ndarray:
    return np.log(np.abs(a) + EPS)


def _np_pexp(a: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(a, EXP_MAX))


def _np_csum(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a if a.ndim == 0 else a.sum(axis=-1, keepdims=True)


def _np_cmax(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a if a.ndim == 0 else a.max(axis=-1, keepdims=True)


# --- sympy forms: Functions that fold numeric arguments with the same semantics -------------


def _is_num(x: sympy.Expr) -> bool:
    return bool(x.is_Number)


class _Protected(sympy.Function):
    """Base of the protected Functions: `evalf` evaluates the arguments first, so an exact
    numeric argument such as sin(1) folds like a Float one (sympy's default evalf would look
    for an mpmath function of the same name and give up)."""

    def _eval_evalf(self, prec):
        args = [a.evalf(prec) for a in self.args]
        if all(_is_num(a) for a in args):
            return self.func(*args)
        return None

    def _latex(self, printer, exp=None):
        """sympy's printer passes ``exp`` for a power of a function, e.g. ``plog(x)**2``."""
        body = self._latex_body(printer)
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"

    def _latex_body(self, printer) -> str:
        raise NotImplementedError


class pdiv(_Protected):
    """Protected division ``a / b`` (see module docstring)."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if _is_num(b):
            bf = float(b)
            if abs(bf) > EPS:
                return a / b
            return a / sympy.Float(EPS if bf >= 0 else -EPS)
        if a.is_zero:
            return sympy.S.Zero
        coeff, rest = a.as_coeff_Mul()
        if coeff != 1:  # linear in a (the protection looks at b only): c·div(x, b), one form
            return coeff * cls(rest, b)
        return None

    def _latex_body(self, printer):
        a, b = (printer._print(arg) for arg in self.args)
        return rf"\frac{{{a}}}{{{b}}}"


class psqrt(_Protected):
    """``sqrt(|a|)``."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if _is_num(a):
            return sympy.Float(math.sqrt(abs(float(a))))
        if a.could_extract_minus_sign():  # even in a: one canonical sign, so equal keys
            return cls(-a)
        # sqrt(|c·x|) = sqrt(|c|)·sqrt(|x|) exactly (no ε here): the factor comes out, so
        # sqrt(1.117·r) and sqrt(r) share a key modulo scale instead of filling a hall of fame
        coeff, rest = sympy.factor_terms(a).as_coeff_Mul()
        if coeff.is_Number and coeff != 0 and abs(coeff) != 1 and not _is_num(rest):
            return sympy.Float(math.sqrt(abs(float(coeff)))) * cls(rest)
        return None

    def _latex_body(self, printer):
        return rf"\sqrt{{\left|{printer._print(self.args[0])}\right|}}"


class plog(_Protected):
    """``log(|a| + ε)``."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if _is_num(a):
            return sympy.Float(math.log(abs(float(a)) + EPS))
        if a.could_extract_minus_sign():  # even in a: one canonical sign, so equal keys
            return cls(-a)
        return None

    def _latex_body(self, printer):
        return rf"\log{{\left(\left|{printer._print(self.args[0])}\right| + \epsilon\right)}}"


class pexp(_Protected):
    """``exp(min(a, 30))``."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if _is_num(a):
            return sympy.Float(math.exp(min(float(a), EXP_MAX)))
        return None

    def _latex_body(self, printer):
        return rf"e^{{{printer._print(self.args[0])}}}"


class _ClassReduction(sympy.Function):
    """Base of ``csum`` and ``cmax``: opaque to sympy, which does not know the class count."""

    nargs = 1
    _symbol = ""

    def _latex(self, printer, exp=None):
        body = rf"\{self._symbol}_{{k}}\left({printer._print(self.args[0])}\right)"
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"


def _per_sample(e: sympy.Expr) -> bool:
    """Whether ``e`` has one value for all classes: numbers, ``t`` and class reductions."""
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, _ClassReduction) or node.is_Number:
            continue
        if node.is_Atom:
            if not (node.is_Symbol and node.name == TIME):
                return False
            continue
        stack.extend(node.args)
    return True


class csum(_ClassReduction):
    """``Σ_k a_k`` over the classes, broadcast back. Linear: factors with one value for all
    classes (numbers, ``t``, other reductions) move out, so ``csum(3) = 3·csum(1)``."""

    _symbol = "sum"

    @classmethod
    def eval(cls, a):
        if a.is_zero:
            return sympy.S.Zero
        factors = sympy.Mul.make_args(a)
        outside = [f for f in factors if _per_sample(f)]
        scale = sympy.Mul(*outside)
        if scale == 1:
            return None
        return scale * cls(sympy.Mul(*(f for f in factors if not _per_sample(f))))


class cmax(_ClassReduction):
    """``max_k a_k`` over the classes, broadcast back: the identity on a value shared by all
    classes, and it commutes with adding one or scaling by a positive number."""

    _symbol = "max"

    @classmethod
    def eval(cls, a):
        if _per_sample(a):
            return a
        shared = [term for term in sympy.Add.make_args(a) if _per_sample(term)]
        if shared:
            return sympy.Add(*shared) + cls(a - sympy.Add(*shared))
        coeff, rest = a.as_coeff_Mul()
        if coeff.is_positive and coeff != 1:
            return coeff * cls(rest)
        return None


def _sym_sin(a: sympy.Expr) -> sympy.Expr:
    return sympy.sin(a).evalf() if _is_num(a) else sympy.sin(a)


def _sym_cos(a: sympy.Expr) -> sympy.Expr:
    return sympy.cos(a).evalf() if _is_num(a) else sympy.cos(a)


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Primitive:
    """One operator in every form the engine needs.

    ``sympy_node`` is the sympy head the compiled printer maps back to ``torch_fn``
    (``None`` for operators sympy represents natively: Add, Mul). A ``reduces_classes``
    primitive's operand must arrive broadcast to the full shape of the inputs (the compiler and
    the numpy reference see to it), since ``csum(1)`` is the number of classes.
    """

    name: str
    arity: int
    sympy_fn: Callable[..., sympy.Expr]
    torch_fn: Callable[..., torch.Tensor]
    numpy_fn: Callable[..., np.ndarray]
    sympy_node: type | None = None
    reduces_classes: bool = False


_TABLE: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive("add", 2, operator.add, torch.add, np.add),
        Primitive("sub", 2, operator.sub, torch.sub, np.subtract),
        Primitive("mul", 2, operator.mul, torch.mul, np.multiply),
        Primitive("div", 2, pdiv, torch_pdiv, _np_pdiv, pdiv),
        Primitive("sqrt", 1, psqrt, torch_psqrt, _np_psqrt, psqrt),
        Primitive("log", 1, plog, torch_plog, _np_plog, plog),
        Primitive("exp", 1, pexp, torch_pexp, _np_pexp, pexp),
        Primitive("sin", 1, _sym_sin, torch.sin, np.sin, sympy.sin),
        Primitive("cos", 1, _sym_cos, torch.cos, np.cos, sympy.cos),
        Primitive("csum", 1, csum, torch_csum, _np_csum, csum, reduces_classes=True),
        Primitive("cmax", 1, cmax, torch_cmax, _np_cmax, cmax, reduces_classes=True),
    )
}

_GANETIC = ("add", "sub", "mul", "div", "sqrt", "log", "exp", "sin", "cos")
PRIMITIVE_SETS: dict[str, tuple[str, ...]] = {
    "ganetic": _GANETIC,
    "arithmetic": ("add", "sub", "mul", "div"),
    # opt-in: enough to write the normalized losses of the frontier (NCE, RCE, ANL's NNCE)
    # and schedules in t; see docs/search-space.md
    "frontier": (*_GANETIC, "csum", "cmax"),
}
# Terminals beyond y_pred and y_true that a preset's grammar draws.
_EXTRA_TERMINALS: dict[str, tuple[str, ...]] = {"frontier": (TIME,)}


def primitive_set(name: str) -> tuple[Primitive, ...]:
    """The primitives of a named preset, in table order."""
    if name not in PRIMITIVE_SETS:
        raise ValueError(f"unknown primitive set {name!r}; allowed: {sorted(PRIMITIVE_SETS)}")
    return tuple(_TABLE[n] for n in PRIMITIVE_SETS[name])


def primitive_set_terminals(name: str) -> tuple[str, ...]:
    """The terminals a named preset's trees may use, ``y_pred`` and ``y_true`` first."""
    if name not in PRIMITIVE_SETS:
        raise ValueError(f"unknown primitive set {name!r}; allowed: {sorted(PRIMITIVE_SETS)}")
    return (*TERMINALS[:2], *_EXTRA_TERMINALS.get(name, ()))


def names() -> tuple[str, ...]:
    """Every primitive name in the table."""
    return tuple(_TABLE)


def lookup(name: str) -> Primitive | None:
    """The primitive called ``name``, or None."""
    return _TABLE.get(name)
