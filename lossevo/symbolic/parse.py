"""Parse DEAP's prefix text form (``sub(mul(y_true, log(y_pred)), 2.5)``) without ``eval``.

DEAP's own ``PrimitiveTree.from_string`` evaluates unknown tokens and accepts unbalanced
parentheses; this parser validates every token and reports the first problem with its
character position, and it uses an explicit stack so that deep trees cannot overflow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lossevo.symbolic.primitives import TERMINALS, lookup, names

__all__ = ["MAX_DEPTH", "TERMINALS", "Node", "format_nodes", "parse"]

# Deepest nesting of primitives accepted. sympy, the compiler and DEAP recurse over trees, so
# an expression nested thousands deep would end in RecursionError (sympy's sort keys, with a
# cold cache, failed from about 180 alternating div/mul levels here); no useful loss comes near.
MAX_DEPTH = 100

_TOKEN = re.compile(r"\s*(?:(?P<punct>[(),])|(?P<word>[^\s(),]+))")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Node:
    """One prefix-list entry: a primitive (``arity > 0``), a variable, or a constant."""

    kind: str  # "primitive" | "variable" | "constant"
    value: str | float | int
    arity: int = 0
    position: int = 0

    def text(self) -> str:
        return self.value if isinstance(self.value, str) else repr(self.value)


def _tokenize(text: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        tok = m.group("punct") or m.group("word")
        tokens.append((tok, m.start("punct") if m.group("punct") else m.start("word")))
        pos = m.end()
    return tokens


def _constant(tok: str, pos: int) -> float | int:
    try:
        value: float | int = int(tok)
    except ValueError:
        try:
            value = float(tok)
        except ValueError:
            raise ValueError(f"constant {tok!r} at position {pos} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"constant {tok!r} at position {pos} is not a finite number")
    return value


def _operand(tok: str, pos: int, following: str | None) -> Node:
    prim = lookup(tok)
    if prim is not None:
        if following != "(":
            raise ValueError(
                f"primitive {tok!r} at position {pos} needs {prim.arity} argument(s) in parentheses"
            )
        return Node("primitive", tok, prim.arity, pos)
    if tok in TERMINALS or _IDENT.match(tok):
        if tok not in TERMINALS:
            if following == "(":
                raise ValueError(
                    f"unknown primitive {tok!r} at position {pos}; allowed: {', '.join(names())}"
                )
            raise ValueError(
                f"unknown terminal {tok!r} at position {pos}; allowed: "
                f"{', '.join(TERMINALS)} or a number"
            )
        node = Node("variable", tok, 0, pos)
    elif tok in "(),":
        raise ValueError(f"expected an operand at position {pos}, found {tok!r}")
    else:
        node = Node("constant", _constant(tok, pos), 0, pos)
    if following == "(":
        raise ValueError(f"terminal {tok!r} at position {pos} takes no arguments")
    return node


def parse(text: str) -> list[Node]:
    """Parse an expression into DEAP's prefix order, validating names, arities and brackets."""
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, got {type(text).__name__}")
    tokens = _tokenize(text)
    if not tokens:
        raise ValueError("empty expression: expected e.g. 'mul(y_true, log(y_pred))'")
    nodes: list[Node] = []
    stack: list[list] = []  # frames: [node, arguments seen]
    expect_operand = True
    i = 0
    while i < len(tokens):
        tok, pos = tokens[i]
        following = tokens[i + 1][0] if i + 1 < len(tokens) else None
        if expect_operand:
            if tok == ")" and stack and stack[-1][1] == 0:
                top = stack[-1][0]
                raise ValueError(
                    f"primitive {top.value!r} at position {top.position} takes {top.arity} "
                    f"argument(s), got 0"
                )
            node = _operand(tok, pos, following)
            nodes.append(node)
            if node.kind == "primitive":
                if len(stack) >= MAX_DEPTH:
                    raise ValueError(f"expression nests deeper than {MAX_DEPTH} primitives "
                                     f"(at position {pos}); at most {MAX_DEPTH} allowed")
                stack.append([node, 0])
                i += 2  # the primitive and its '('
                continue
            expect_operand = False
        else:
            if not stack:
                what = "unbalanced parentheses: unexpected" if tok == ")" else "unexpected"
                raise ValueError(f"{what} {tok!r} at position {pos} after a complete expression")
            frame = stack[-1]
            frame[1] += 1
            top = frame[0]
            if tok == ",":
                if frame[1] >= top.arity:
                    raise ValueError(
                        f"primitive {top.value!r} at position {top.position} takes {top.arity} "
                        f"argument(s), got more"
                    )
                expect_operand = True
            elif tok == ")":
                if frame[1] != top.arity:
                    raise ValueError(
                        f"primitive {top.value!r} at position {top.position} takes {top.arity} "
                        f"argument(s), got {frame[1]}"
                    )
                stack.pop()
            else:
                raise ValueError(f"expected ',' or ')' at position {pos}, found {tok!r}")
        i += 1
    if stack:
        top = stack[-1][0]
        raise ValueError(
            f"unbalanced parentheses: '(' of {top.value!r} at position {top.position} "
            f"is never closed"
        )
    if expect_operand:
        raise ValueError(f"expression ends early at position {len(text)}: expected an operand")
    return nodes


def format_nodes(nodes: list[Node]) -> str:
    """Inverse of :func:`parse`, in DEAP's own formatting (``name(a, b)``)."""
    out: list[str] = []
    stack: list[tuple[Node, list[str]]] = []
    for node in nodes:
        out_text = node.text()
        if node.arity:
            stack.append((node, []))
            continue
        while True:
            if not stack:
                out.append(out_text)
                break
            stack[-1][1].append(out_text)
            parent, args = stack[-1]
            if len(args) < parent.arity:
                break
            stack.pop()
            out_text = f"{parent.value}({', '.join(args)})"
    if len(out) != 1:
        raise ValueError(f"node list does not form one expression ({len(out)} roots)")
    return out[0]
