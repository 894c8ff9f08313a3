"""Hypothesis strategies shared by the symbolic-core tests: random expression texts."""

from hypothesis import strategies as st

from lossevo.symbolic.primitives import PRIMITIVE_SETS, lookup

_NAMES = PRIMITIVE_SETS["ganetic"]
BINARY = [n for n in _NAMES if lookup(n).arity == 2]
UNARY = [n for n in _NAMES if lookup(n).arity == 1]

constants = st.floats(-5, 5, allow_nan=False).map(lambda x: repr(round(x, 3)))
leaves = st.one_of(st.sampled_from(["y_pred", "y_true"]), constants)


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(BINARY), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(st.sampled_from(UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
    )


expressions = st.recursive(leaves, _extend, max_leaves=16)
