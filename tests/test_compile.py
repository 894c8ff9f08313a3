import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from strategies import expressions

from lossevo.symbolic.compile import compile_expression, torch_source
from lossevo.symbolic.reference import evaluate_numpy

GEN = torch.Generator().manual_seed(0)
Y_PRED = torch.rand(64, generator=GEN, dtype=torch.float64) * (1 - 2e-6) + 1e-6
Y_TRUE = (torch.rand(64, generator=GEN, dtype=torch.float64) < 0.5).to(torch.float64)


@given(expressions)
@settings(max_examples=200, deadline=None)
def test_torch_value_equals_numpy_reference(expr):
    fn = compile_expression(expr)
    value = fn(Y_PRED, Y_TRUE).numpy()
    ref, magnitude = evaluate_numpy(expr, Y_PRED.numpy(), Y_TRUE.numpy(), track_magnitude=True)
    assume(magnitude < 1e8)
    finite = np.isfinite(ref) & np.isfinite(value)
    np.testing.assert_allclose(value[finite], ref[finite], rtol=1e-7, atol=1e-9 * (1 + magnitude))


@given(expressions)
@settings(max_examples=150, deadline=None)
def test_gradients_finite_where_value_finite(expr):
    y_pred = Y_PRED.clone().requires_grad_(True)
    value = compile_expression(expr)(y_pred, Y_TRUE)
    assume(value.requires_grad)  # expressions without y_pred have no gradient to check
    assume(bool(torch.isfinite(value).all()) and float(value.detach().abs().max()) < 1e30)
    (grad,) = torch.autograd.grad(value.sum(), y_pred, allow_unused=True)
    assert grad is None or bool(torch.isfinite(grad).all())


def test_protected_gradients_at_the_singular_points():
    x = torch.tensor([0.0, 1e-8, -1e-8, 2.0], dtype=torch.float64, requires_grad=True)
    for expr in ["sqrt(y_pred)", "log(y_pred)", "div(1.0, y_pred)", "exp(mul(100.0, y_pred))"]:
        (grad,) = torch.autograd.grad(compile_expression(expr)(x, x).sum(), x)
        assert torch.isfinite(grad).all(), expr


def test_protected_division_semantics():
    fn = compile_expression("div(y_true, y_pred)")
    b = torch.tensor([0.0, 5e-8, -5e-8, 2e-7, -0.5], dtype=torch.float64)
    out = fn(b, torch.ones_like(b))
    expected = torch.tensor([1e7, 1e7, -1e7, 5e6, -2.0], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_broadcasting(dtype):
    fn = compile_expression("add(mul(y_true, log(y_pred)), 2.5)")
    out = fn(torch.full((4, 1), 0.5, dtype=dtype), torch.ones(3, dtype=dtype))
    assert out.shape == (4, 3) and out.dtype == dtype
    const = compile_expression("add(1.0, 2.0)")(torch.zeros(2, 3, dtype=dtype), torch.zeros(3))
    assert const.shape == (2, 3) and const.dtype == dtype and bool((const == 3).all())
    one_sided = compile_expression("y_pred")(torch.zeros(3, dtype=dtype), torch.zeros(2, 3))
    assert one_sided.shape == (2, 3)


def test_generated_source_is_straight_line_code():
    src = torch_source("add(log(mul(y_pred, y_true)), sin(log(mul(y_pred, y_true))))")
    assert src.startswith("def elementwise(y_pred, y_true, t=1.0):\n    t0 = ")  # t unused
    assert src.count("p_log(") == 1  # the repeated subexpression is computed once
    assert "eval" not in src


def test_deep_expression_compiles_and_matches_reference():
    # DEAP's eval-based gp.compile fails from depth ~150 ("too many nested parentheses");
    # ours compiles up to the parser's MAX_DEPTH (100 nested primitives)
    expr = "y_pred"
    for i in range(50):
        expr = f"add(sin({expr}), {0.001 * (i + 1)!r})"
    fn = compile_expression(expr)
    np.testing.assert_allclose(
        fn(Y_PRED, Y_TRUE).numpy(), evaluate_numpy(expr, Y_PRED.numpy(), Y_TRUE.numpy()),
        rtol=1e-10,
    )


def test_works_under_vmap_and_grad():
    fn = compile_expression("mul(y_true, sqrt(sub(1.0, y_pred)))")
    batched = torch.func.vmap(fn)(Y_PRED.reshape(8, 8), Y_TRUE.reshape(8, 8))
    torch.testing.assert_close(batched.reshape(-1), fn(Y_PRED, Y_TRUE))
    g = torch.func.grad(lambda p: fn(p, Y_TRUE).sum())(Y_PRED)
    assert torch.isfinite(g).all()
