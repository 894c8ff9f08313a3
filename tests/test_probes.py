import pytest

from lossevo import check_expression

GOOD = {
    "classification": [
        "mul(-1.0, mul(y_true, log(y_pred)))",
        "mul(y_true, sub(1.0, y_pred))",
        "div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7)",
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


def test_regression_rejects_a_loss_that_pushes_away():
    assert "rejection test" in check_expression("mul(-1.0, sqrt(sub(y_pred, y_true)))",
                                                "regression")[0]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown kind 'ranking'"):
        check_expression("y_pred", "ranking")
    with pytest.raises(ValueError, match="never closed"):
        check_expression("log(y_pred")
