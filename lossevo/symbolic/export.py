"""Standalone Python modules for evolved losses: one file, importing only torch.

The exported file must behave exactly like :class:`lossevo.SymbolicLoss`, so nothing in it is
retyped: the protected primitives, ``broadcast_result``, ``one_hot``, ``per_sample_loss`` and
``SymbolicLoss.forward`` are copied with :func:`inspect.getsource`, and ``elementwise`` is the
source that :func:`lossevo.symbolic.compile.torch_source` generates. A change to the semantics in
the engine changes every later export with it; the round-trip tests catch anything that drifts.
"""

from __future__ import annotations

import inspect
import keyword
import math
import numbers
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import torch

from lossevo.atomic import write_atomic
from lossevo.symbolic.compile import broadcast_result, runtime_namespace, torch_source
from lossevo.symbolic.expression import T, to_latex, to_sympy
from lossevo.symbolic.kinds import KINDS, TaskKind, task_kind
from lossevo.symbolic.loss import REDUCTIONS, SymbolicLoss, one_hot, per_sample_loss
from lossevo.symbolic.scale import measure_scale

__all__ = ["export_loss", "render_module"]

_MAX_LINE = 100
# Module-level names of the exported file; the loss class may not shadow them.
_RESERVED = frozenset(
    {"EXPRESSION", "SYMPY", "LATEX", "FITNESS", "METRICS", "KIND", "KINDS", "REDUCTIONS",
     "USES_T", "SCALE", "torch", "elementwise", "broadcast_result", "one_hot", "per_sample_loss"}
)


# --- literals that stay valid Python and within the line length ---------------------------


def _scalar(value: object, where: str) -> str:
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, numbers.Integral):  # also numpy integers
        return repr(int(value))
    if isinstance(value, numbers.Real):  # also numpy floats
        value = float(value)
        # repr(nan) is not Python; float("nan") is, and reads back equal in kind.
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    raise ValueError(
        f"{where}: unsupported value {value!r} of type {type(value).__name__}; "
        "allowed: None, bool, int, float, str, and lists, tuples and dicts of them"
    )


def _literal(value: object, indent: int, where: str, lead: int = 0) -> str:
    """Source of ``value``, on one line if it fits, else one element per line; ``lead`` is the
    width of what precedes it on its line (a dict key), so a long string still fits."""
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be str, got {key!r}")
        parts = [f"{key!r}: {_literal(v, indent + 4, f'{where}[{key!r}]', len(repr(key)) + 2)}"
                 for key, v in value.items()]
        return _bracket("{", parts, "}", indent)
    if isinstance(value, (list, tuple)):
        parts = [_literal(v, indent + 4, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return _bracket("(", parts, ")", indent, trailing_comma=len(parts) == 1)
        return _bracket("[", parts, "]", indent)
    if isinstance(value, str) and indent + lead + len(repr(value)) > _MAX_LINE - 8:
        width = max(20, _MAX_LINE - indent - 16)
        chunks = [value[i : i + width] for i in range(0, len(value), width)]
        pad = " " * (indent + 4)
        return "(\n" + "".join(f"{pad}{c!r}\n" for c in chunks) + " " * indent + ")"
    return _scalar(value, where)


def _bracket(open_: str, parts: list[str], close: str, indent: int,
             trailing_comma: bool = False) -> str:
    one_line = open_ + ", ".join(parts) + ("," if trailing_comma else "") + close
    if "\n" not in one_line and indent + len(one_line) <= _MAX_LINE - 16:
        return one_line
    pad = " " * (indent + 4)
    return open_ + "\n" + "".join(f"{pad}{p},\n" for p in parts) + " " * indent + close


# --- generated code, wrapped for the line length -------------------------------------------


def _wrap_line(line: str) -> str:
    """Break a long ``tN = a + b + ...`` line of generated code at its operators."""
    if len(line) <= _MAX_LINE:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    target, _, rhs = line.strip().partition(" = ")
    for op in (" + ", " * "):
        terms = rhs.split(op)
        if len(terms) > 1 and all(" " not in t for t in terms):
            pad = indent + "    "
            body = f"\n{pad}{op.strip()} ".join(terms)
            return f"{indent}{target} = (\n{pad}{body}\n{indent})"
    return f"{line}  # noqa: E501"


def _copied(fn: object) -> str:
    return textwrap.dedent(inspect.getsource(fn)).rstrip() + "\n"


def _primitives_source() -> str:
    """The torch forms of every primitive, bound to the ``p_<name>`` names generated code uses."""
    defs: list[str] = [_copied(broadcast_result)]
    bindings: list[str] = []
    for symbol, fn in sorted(runtime_namespace().items()):
        if not symbol.startswith("p_"):
            continue
        if getattr(torch, fn.__name__, None) is fn:  # a torch builtin such as torch.sin
            bindings.append(f"{symbol} = torch.{fn.__name__}")
        else:
            defs.append(_copied(fn))
            bindings.append(f"{symbol} = {fn.__name__}")
    return "\n\n".join(defs) + "\n\n" + "\n".join(bindings) + "\n"


def _class_source(name: str) -> str:
    forward = inspect.getsource(SymbolicLoss.forward).rstrip()
    return f'''class {name}(torch.nn.Module):
    """The evolved loss as a module, for task kind ``KIND`` (see the module docstring).

    ``reduction="none"`` gives per-sample losses, e.g. for a distributionally robust risk.
    """

    _fn = staticmethod(elementwise)
    kind = KIND
    uses_t = USES_T

    def __init__(self, reduction: str = "mean", t: float = 1.0) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"unknown reduction {{reduction!r}}; allowed: {{', '.join(REDUCTIONS)}}"
            )
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:
            raise ValueError(f"t = {{t!r}} is not allowed; allowed: a number in [0, 1]")
        self.reduction = reduction
        self.t = float(t)

{forward}

    def extra_repr(self) -> str:
        return f"kind={{self.kind!r}}, reduction={{self.reduction!r}}, t={{self.t!r}}"
'''


def render_module(
    expr: str,
    *,
    kind: str = TaskKind.CLASSIFICATION,
    fitness: tuple | None = None,
    metrics: dict | None = None,
    name: str = "EvolvedLoss",
) -> str:
    """The source text :func:`export_loss` writes (validated, compiled once as a check)."""
    if not isinstance(expr, str):
        raise ValueError(f"expression must be a str, got {type(expr).__name__}: {expr!r}")
    kind = task_kind(kind)
    if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED:
        raise ValueError(
            f"class name {name!r} must be a Python identifier, not a keyword and not one of "
            f"{sorted(_RESERVED)}"
        )
    if fitness is not None and not isinstance(fitness, tuple):
        raise ValueError(f"fitness must be a tuple or None, got {fitness!r}")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must be a dict or None, got {metrics!r}")
    try:
        sym = to_sympy(expr)
        elementwise = torch_source(sym, "elementwise")
    except (ValueError, NotImplementedError) as err:
        raise ValueError(f"invalid expression {expr!r}: {err}") from err
    uses_t = T in sym.free_symbols

    constants = {
        "EXPRESSION": expr,
        "SYMPY": str(sym),
        "LATEX": to_latex(sym),
        "FITNESS": fitness,
        "METRICS": dict(metrics) if metrics is not None else None,
        "KIND": str(kind),  # plain strings: the exported file imports only torch
        "KINDS": KINDS,
        "REDUCTIONS": REDUCTIONS,
        "USES_T": uses_t,
        "SCALE": measure_scale(expr, kind).as_dict(),
    }
    shown = expr if len(expr) <= 60 else expr[:57] + "..."
    parts = [
        f'''"""Evolved loss exported by lossevo: {shown}

Standalone: needs only torch. The protected operators keep the semantics the loss was evolved
with (eps = 1e-7): div(a, b) = a / b unless |b| <= eps, then a / (±eps); sqrt(a) = sqrt(|a|);
log(a) = log(|a| + eps); exp(a) = exp(min(a, 30)). csum(a) and cmax(a) are the sum and the
largest value over the classes (the last axis), broadcast back; t is the fraction of training
done, in [0, 1] (USES_T says whether this loss depends on it). SCALE is the loss's measured
size on typical inputs (90th percentiles of |loss| and of the gradient norm with respect to the
outputs; lossevo's docs/usable-losses.md): set an SGD learning rate or a float16 loss scale by it.

Use::

    loss_fn = {name}(reduction="mean")  # "sum", or "none" for per-sample losses
    loss = loss_fn(logits, targets)  # task kind: {kind}; at t = loss_fn.t (default 1.0)
    loss_fn.t = step / total_steps  # or: loss_fn(logits, targets, t=step / total_steps)

``elementwise(y_pred, y_true, t=1.0)`` is the bare expression; EXPRESSION, SYMPY and LATEX give
it as text, FITNESS and METRICS record how it scored in its campaign.
"""
''',
        "import torch\n",
        "__all__ = "
        + _literal(["EXPRESSION", "FITNESS", "KIND", "LATEX", "METRICS", "SCALE", "SYMPY",
                    "USES_T", name, "elementwise"], 0, "__all__"),
        "\n".join(f"{key} = {_literal(value, 0, key.lower())}" for key, value in constants.items()),
        _primitives_source().rstrip(),
        "\n".join(_wrap_line(line) for line in elementwise.rstrip().splitlines()),
        _copied(one_hot).rstrip(),
        _copied(per_sample_loss).rstrip(),
        _class_source(name).rstrip(),
    ]
    source = "\n".join(parts[:2]) + "\n" + "\n\n".join(parts[2:4]) + "\n\n\n"
    source += "\n\n\n".join(parts[4:]) + "\n"
    compile(source, f"<lossevo export of {shown}>", "exec")  # fail here, not at import
    return source


def export_loss(
    expr: str,
    path: str | os.PathLike[str],
    *,
    kind: str = TaskKind.CLASSIFICATION,
    fitness: tuple | None = None,
    metrics: dict | None = None,
    name: str = "EvolvedLoss",
) -> Path:
    """Write a standalone ``.py`` module for ``expr`` to ``path`` atomically; return the path.

    The module holds EXPRESSION, SYMPY, LATEX, FITNESS, METRICS, KIND, USES_T and SCALE (the
    measured value and gradient size, :mod:`lossevo.symbolic.scale`), the protected
    primitives, ``elementwise(y_pred, y_true, t=1.0)`` and the ``nn.Module`` class ``name``,
    whose fraction of training done ``t`` is a constructor argument, a settable attribute and
    an optional argument of each call (a loss without ``t`` ignores it).
    Raises ValueError on an invalid expression, kind, class name, or path.
    """
    target = Path(path)
    if target.suffix != ".py":
        raise ValueError(f"export path {str(target)!r} must end in '.py' to be importable")
    if not target.parent.is_dir():
        raise ValueError(f"directory {str(target.parent)!r} of export path does not exist")
    source = render_module(expr, kind=kind, fitness=fitness, metrics=metrics, name=name)
    write_atomic(target, source)
    return target
