"""Scale probe: magnitudes of reference losses, scale tricks beyond the bounds, plain data."""

from __future__ import annotations

import json
import math

import pytest

from lossevo.symbolic.scale import MAX_GRADIENT, MAX_VALUE, Scale, measure_scale

CE = "mul(-1.0, mul(y_true, log(y_pred)))"
SCALE_TRICK = "div(sub(1.174, div(sub(-1.22, y_pred), y_true)), y_true)"  # from a campaign


def test_cross_entropy_gradient_is_bounded_by_sqrt2():
    # d CE / d logits = softmax − one-hot, whose norm never exceeds √2.
    s = measure_scale(CE)
    assert 0.5 < s.gradient <= math.sqrt(2) and 1 < s.value < 20
    assert s.problems() == []


def test_regression_mae_gradient_is_exactly_one():
    s = measure_scale("sqrt(mul(sub(y_pred, y_true), sub(y_pred, y_true)))", "regression")
    assert s.gradient == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("kind", "expr"),
    [
        ("classification", CE),
        ("classification", "mul(y_true, sub(1.0, y_pred))"),
        ("classification", "mul(-0.714, mul(y_true, y_pred))"),  # evolved #1, noisy digits
        ("classification", "exp(sub(4.409, mul(y_pred, y_true)))"),
        ("classification", "sub(sin(mul(y_true, log(y_pred))), exp(add(y_true, y_pred)))"),
        ("binary", "mul(-1.0, add(mul(y_true, log(y_pred)), "
                   "mul(sub(1.0, y_true), log(sub(1.0, y_pred)))))"),
        ("regression", "mul(sub(y_pred, y_true), sub(y_pred, y_true))"),
        ("regression", "sqrt(sub(y_pred, y_true))"),
    ],
)
def test_usable_losses_are_within_bounds(kind, expr):
    s = measure_scale(expr, kind)
    assert s.value <= MAX_VALUE / 10 and s.gradient <= MAX_GRADIENT / 10


@pytest.mark.parametrize(
    ("kind", "expr"),
    [
        ("classification", "div(y_pred, y_true)"),
        ("classification", SCALE_TRICK),
        ("binary", "div(sub(1.0, y_pred), y_true)"),  # only the y = 0 half is blown up
        ("regression", "mul(100000.0, mul(sub(y_pred, y_true), sub(y_pred, y_true)))"),
    ],
)
def test_scale_tricks_are_beyond_the_bounds(kind, expr):
    s = measure_scale(expr, kind)
    assert s.value > MAX_VALUE and s.gradient > MAX_GRADIENT
    value, gradient = s.problems()
    assert f"{s.value:.3g}" in value and f"bound {MAX_VALUE:.3g}" in value
    assert f"{s.gradient:.3g}" in gradient and f"bound {MAX_GRADIENT:.3g}" in gradient


def test_a_huge_constant_offset_is_caught_by_the_value_bound():
    # exp(cos(y)/y) is exp(cos(0)/1e-7), clamped to e^30, on every non-target class: harmless
    # for the gradient, an overflow in float16.
    s = measure_scale("exp(sub(div(cos(y_true), mul(y_true, -0.526)), mul(y_pred, y_true)))")
    assert s.gradient < 1 and s.value > 1e13
    assert len(s.problems()) == 1 and "|loss|" in s.problems()[0]


def test_scale_is_linear_in_a_positive_factor_and_deterministic():
    base, scaled = measure_scale(CE), measure_scale(f"mul(1000.0, {CE})")
    assert scaled.value == pytest.approx(1000 * base.value, rel=1e-9)
    assert scaled.gradient == pytest.approx(1000 * base.gradient, rel=1e-9)
    assert measure_scale(CE) == base


def test_unit_factor_brings_the_gradient_near_one():
    s = measure_scale(SCALE_TRICK)
    assert 10 ** -0.5 <= s.unit_factor * s.gradient <= 10 ** 0.5
    rescaled = measure_scale(f"mul({s.unit_factor!r}, {SCALE_TRICK})")
    assert rescaled.problems() == []
    assert measure_scale(CE).unit_factor == 1.0
    assert Scale("classification", 1.0, 0.0).unit_factor == 1.0
    assert Scale("classification", math.inf, math.inf).unit_factor == 1.0


def test_as_dict_is_plain_json_data():
    data = measure_scale(CE).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"kind", "value", "gradient", "max_value", "max_gradient",
                         "unit_factor", "inputs"}
    assert "softmax" in data["inputs"]


def test_non_finite_losses_are_beyond_any_bound():
    s = measure_scale("mul(1e300, mul(1e300, y_pred))")
    assert s.value == math.inf and len(s.problems()) == 2


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown kind 'ranking'; allowed: classification"):
        measure_scale(CE, "ranking")
    with pytest.raises(ValueError, match="never closed"):
        measure_scale("log(y_pred")


def test_a_loss_on_a_schedule_is_measured_at_its_worst_point():
    # cross-entropy at the end of training, a 1e7 scale trick at its start
    trick = measure_scale("add(mul(t, mul(-1.0, mul(y_true, log(y_pred)))), "
                          "mul(sub(1.0, t), div(y_pred, y_true)))")
    assert trick.gradient == pytest.approx(measure_scale("div(y_pred, y_true)").gradient)
    blend = measure_scale("add(mul(t, mul(-1.0, mul(y_true, log(y_pred)))), "
                          "mul(sub(1.0, t), mul(y_true, sub(1.0, y_pred))))")
    assert blend.problems() == [] and blend.gradient == pytest.approx(measure_scale(CE).gradient)
