import pytest

from lossevo import check_expression
from lossevo.symbolic.scale import measure_scale

GOOD = {
    "classification": [
        "mul(-1.0, mul(y_true, log(y_pred)))",
        "mul(y_true, sub(1.0, y_pred))",
        "div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7)",
        # evolved in campaigns here: the noisy-digits #1, a top tree, the quick start's best
        "mul(-0.714, mul(y_true, y_pred))",
        "exp(sub(4.409, mul(y_pred, y_true)))",
        "sub(sin(mul(y_true, log(y_pred))), exp(add(y_true, y_pred)))",
    ],
    "binary": [
        "mul(-1.0, add(mul(y_true, log(y_pred)), mul(sub(1.0, y_true), log(sub(1.0, y_pred)))))"
    ],
    "regression": ["mul(sub(y_pred, y_true), sub(y_pred, y_true))", "sqrt(sub(y_pred, y_true))"],
}


@pytest.mark.parametrize(("kind", "expr"), [(k, e) for k, es in GOOD.items() for e in es])
def test_good_losses_pass(kind, expr):
    assert check_expression(expr, kind) == []


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("mul(y_true, 3.0)", "does not depend on y_pred"),
        ("add(y_true, sub(y_pred, y_pred))", "does not depend on y_pred"),
        ("mul(1e300, mul(1e300, y_pred))", "not finite"),
        ("div(1e300, y_pred)", "gradient not finite"),
        ("mul(y_pred, y_true)", "rejection test"),  # rewards wrong classes
        ("mul(-1.0, y_pred)", "rejection test"),  # constant under softmax: no signal
    ],
)
def test_rejections(expr, reason):
    reasons = check_expression(expr, "classification")
    assert len(reasons) == 1 and reason in reasons[0]


@pytest.mark.parametrize(
    "expr",
    [
        "div(y_pred, y_true)",  # 1e7·(1 − p_y) + p_y: MAE at 1e7
        "div(sub(1.174, div(sub(-1.22, y_pred), y_true)), y_true)",  # ≈ 1e14·(1 − p_y) + c
    ],
)
def test_scale_tricks_are_rejected_naming_the_measure_and_the_bound(expr):
    reasons = check_expression(expr, "classification")
    assert reasons and all(r.startswith("scale: ") for r in reasons)
    assert "beyond the bound 1e+04" in reasons[0] and "90th percentile" in reasons[0]
    # Adam alone cannot tell: the same loss brought to a unit scale passes every probe.
    factor = measure_scale(expr).unit_factor
    assert check_expression(f"mul({factor!r}, {expr})", "classification") == []


def test_regression_rejects_a_loss_that_pushes_away():
    assert "rejection test" in check_expression("mul(-1.0, sqrt(sub(y_pred, y_true)))",
                                                "regression")[0]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown kind 'ranking'"):
        check_expression("y_pred", "ranking")
    with pytest.raises(ValueError, match="never closed"):
        check_expression("log(y_pred")


def test_a_scheduled_loss_is_checked_for_finiteness_at_both_ends_of_training():
    """A loss on the schedule t must be finite at t = 0 as well as at its default t = 1."""
    from lossevo.symbolic.probes import _finite_on_domain

    def at_start_only_inf(pred, true, t=1.0):
        return pred * true + (float("inf") if t == 0.0 else 0.0)

    at_start_only_inf.uses_t = True
    assert _finite_on_domain(at_start_only_inf, "classification") == (
        "not finite on the classification domain at t = 0")
    at_start_only_inf.uses_t = False  # a loss without t is checked once, at its default
    assert _finite_on_domain(at_start_only_inf, "classification") is None
