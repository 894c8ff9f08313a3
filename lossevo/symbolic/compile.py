"""sympy → torch source → callable, through a small printer of our own.

sympy's built-in torch printer does not know the protected Functions, and ``eval`` of DEAP's
text dies on deep trees; this printer emits straight-line code, one operator per line, shared
subexpressions computed once, so the generated function never nests (Python's parser refuses
deeply nested brackets). The generated ``elementwise(y_pred, y_true, t=1.0)`` takes the fraction
of training done as ``t``; an expression without ``t`` ignores it, so its code is unchanged.
The same source is what :mod:`lossevo.symbolic.export` writes into standalone modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import sympy
import torch

from lossevo.symbolic.expression import T, to_sympy
from lossevo.symbolic.primitives import lookup, names

__all__ = ["T_DEFAULT", "broadcast_result", "compile_expression", "runtime_namespace",
           "torch_source"]

# t where a caller gives none: the loss as it stands at the end of training.
T_DEFAULT = 1.0

# sympy head → (primitive name): protected Functions, class reductions and native sin/cos.
_FUNCTION_NAMES: dict[type, str] = {}
for _name in names():
    _prim = lookup(_name)
    if _prim.sympy_node is not None:
        _FUNCTION_NAMES[_prim.sympy_node] = _name


def _fn_symbol(name: str) -> str:
    """Name of a primitive's torch form inside generated code (``div`` → ``p_div``)."""
    return f"p_{name}"


def _number(value: sympy.Expr) -> str:
    number = float(value)
    # Constants beyond float range (sympy folds exactly) become inf, which the probes reject.
    text = repr(number) if math.isfinite(number) else f"float({str(number)!r})"
    return f"({text})" if text.startswith("-") else text


def _operation(e: sympy.Expr, args: list[str]) -> str:
    """One operator applied to already-named operands."""
    if e.is_Add:
        return " + ".join(args)
    if e.is_Mul:
        return " * ".join(args)
    if e.is_Pow:
        base, exp = args
        return f"torch.square({base})" if e.args[1] == 2 else f"{base} ** {exp}"
    name = _FUNCTION_NAMES.get(e.func)
    if name is None:
        raise NotImplementedError(f"no torch form for sympy node {e.func.__name__} in {e}")
    if lookup(name).reduces_classes:  # a constant operand counts once per class
        (arg,) = args
        return f"{_fn_symbol(name)}(broadcast_result({arg}, y_pred, y_true))"
    return f"{_fn_symbol(name)}({', '.join(args)})"


def _straight_line(sym: sympy.Expr) -> tuple[list[str], str]:
    """Assign every compound node to a temporary, in post-order, without recursion.

    Identical subtrees share one temporary (common-subexpression elimination for free), and no
    line nests more than one operator, so depth never hits the parser's nesting limit.
    """
    names: dict[sympy.Expr, str] = {}
    lines: list[str] = []
    stack: list[tuple[sympy.Expr, bool]] = [(sym, False)]
    while stack:
        node, expanded = stack.pop()
        if node in names:
            continue
        if node.is_Symbol:
            names[node] = node.name
        elif node.is_Number:
            names[node] = _number(node)
        elif not expanded:
            stack.append((node, True))
            stack.extend((arg, False) for arg in reversed(node.args) if arg not in names)
        else:
            args = [names[arg] for arg in node.args]
            names[node] = f"t{len(lines)}"
            lines.append(f"{names[node]} = {_operation(node, args)}")
    return lines, names[sym]


def torch_source(expr: str | sympy.Expr, name: str = "elementwise") -> str:
    """Python source of ``def name(y_pred, y_true, t=1.0)`` computing the expression with
    torch; ``t`` becomes a tensor of the inputs' dtype where the expression uses it."""
    sym = to_sympy(expr) if isinstance(expr, str) else expr
    body, result = _straight_line(sym)
    lines = [f"def {name}(y_pred, y_true, t={T_DEFAULT!r}):"]
    if T in sym.free_symbols:
        lines.append("    t = torch.as_tensor(t, dtype=y_pred.dtype, device=y_pred.device)")
    lines += [f"    {line}" for line in body]
    lines.append(f"    return broadcast_result({result}, y_pred, y_true)")
    return "\n".join(lines) + "\n"


def broadcast_result(result, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
    """Give constant or one-sided results the broadcast shape, dtype and device of the inputs."""
    y_pred = torch.as_tensor(y_pred)
    shape = torch.broadcast_shapes(y_pred.shape, torch.as_tensor(y_true).shape)
    if isinstance(result, torch.Tensor) and result.shape == shape:
        return result
    return torch.as_tensor(result, dtype=y_pred.dtype, device=y_pred.device).expand(shape)


def runtime_namespace() -> dict[str, object]:
    """Globals for generated code: torch, the broadcast helper and every primitive's torch form."""
    ns: dict[str, object] = {"torch": torch, "broadcast_result": broadcast_result}
    for name in _FUNCTION_NAMES.values():
        ns[_fn_symbol(name)] = lookup(name).torch_fn
    return ns


@lru_cache(maxsize=4096)
def compile_expression(expr: str) -> Callable[..., torch.Tensor]:
    """Compile an expression text into a torch function ``f(y_pred, y_true, t=1.0)``.

    Elementwise but for the class reductions, which act on the last axis; broadcasts like torch
    arithmetic, keeps the input dtype (float32 or float64), supports autograd and ``torch.func``
    transforms. ``t`` (the fraction of training done, in [0, 1]) defaults to 1, the loss at the
    end of training; the attribute ``uses_t`` says whether the value depends on it. Raises
    ValueError on invalid text.
    """
    sym = to_sympy(expr)
    source = torch_source(sym)
    namespace = runtime_namespace()
    exec(compile(source, f"<lossevo:{expr[:60]}>", "exec"), namespace)
    fn = namespace["elementwise"]
    fn.__doc__ = f"Compiled loss expression: {expr}"
    fn.expression = expr  # type: ignore[attr-defined]
    fn.source = source  # type: ignore[attr-defined]
    fn.uses_t = T in sym.free_symbols  # type: ignore[attr-defined]
    return fn
