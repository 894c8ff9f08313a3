import pytest
from deap import gp
from hypothesis import given, settings
from strategies import expressions

from lossevo.symbolic.grammar import build_pset, from_text
from lossevo.symbolic.parse import MAX_DEPTH, format_nodes, parse
from lossevo.symbolic.probes import check_expression


@given(expressions)
@settings(max_examples=200, deadline=None)
def test_text_tree_text_round_trip(expr):
    assert format_nodes(parse(expr)) == expr
    tree = from_text(expr, build_pset())
    assert str(tree) == expr
    # DEAP's own reader agrees with ours on valid text
    assert str(gp.PrimitiveTree.from_string(expr, build_pset())) == expr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("add(y_pred)", "'add' at position 0 takes 2 argument(s), got 1"),
        ("add(y_pred, y_true, 1.0)", "'add' at position 0 takes 2 argument(s), got more"),
        ("log()", "'log' at position 0 takes 1 argument(s), got 0"),
        ("add(y_pred, y_true", "'(' of 'add' at position 0 is never closed"),
        ("mul(y_true, log(y_pred)))", "unexpected ')' at position 24"),
        ("foo(y_pred)", "unknown primitive 'foo' at position 0"),
        ("add(y_pred, z)", "unknown terminal 'z' at position 12; allowed: y_pred, y_true, t"),
        ("t(y_pred)", "terminal 't' at position 0 takes no arguments"),
        ("csum(y_pred, y_true)", "'csum' at position 0 takes 1 argument(s), got more"),
        ("add(y_pred, 1.2.3)", "constant '1.2.3' at position 12 is not a number"),
        ("add(y_pred, 2x)", "constant '2x' at position 12 is not a number"),
        ("mul(1e999, y_pred)", "constant '1e999' at position 4 is not a finite number"),
        ("log y_pred", "'log' at position 0 needs 1 argument(s) in parentheses"),
        ("y_pred(y_true)", "terminal 'y_pred' at position 0 takes no arguments"),
        ("add(, y_pred)", "expected an operand at position 4, found ','"),
        ("add(y_pred y_true)", "expected ',' or ')' at position 11, found 'y_true'"),
        ("y_pred y_true", "unexpected 'y_true' at position 7"),
    ],
)
def test_bad_text_names_token_and_position(text, message):
    with pytest.raises(ValueError) as info:
        parse(text)
    assert message in str(info.value)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="must be a str"):
        parse(3.0)


def test_primitive_outside_the_set_is_rejected():
    with pytest.raises(ValueError, match="'sin' at position 0 is not in primitive set"):
        from_text("sin(y_pred)", build_pset("arithmetic"))


def test_frontier_text_round_trips_through_its_primitive_set():
    text = "add(mul(t, csum(log(y_pred))), cmax(div(y_true, 2)))"
    nodes = parse(text)
    assert [n.value for n in nodes if n.kind == "variable"] == ["t", "y_pred", "y_true"]
    assert format_nodes(nodes) == text
    pset = build_pset("frontier")
    assert str(from_text(text, pset)) == text
    assert str(gp.PrimitiveTree.from_string(text, pset)) == text


def test_integer_and_negative_constants_round_trip():
    text = "add(mul(-2, y_pred), div(y_true, 0.125))"
    assert format_nodes(parse(text)) == text


def test_nesting_depth_is_bounded_with_a_clear_error():
    """Up to MAX_DEPTH nested primitives parse and go through the whole symbolic path;
    deeper ones (10,000 raised RecursionError in sympy before) get a message."""
    ok = "exp(" * MAX_DEPTH + "y_pred" + ")" * MAX_DEPTH
    assert len(parse(ok)) == MAX_DEPTH + 1
    assert isinstance(check_expression(ok), list)
    deep = "exp(" * 10_000 + "y_pred" + ")" * 10_000
    for call in (parse, check_expression):
        with pytest.raises(ValueError, match=f"nests deeper than {MAX_DEPTH}"):
            call(deep)
