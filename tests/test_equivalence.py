"""Keys modulo training equivalence: ``canonical_key(expr, kind)`` merges losses that train the
same model alike under Adam (additive terms free of y_pred, a positive scale, and for
classification terms c·y_pred and the split into target-class and other-class parts on one-hot
targets) and keeps the others apart."""

import pytest
import sympy
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import expressions

from lossevo import evaluate_many, load_task
from lossevo.evaluation.data import load_dataset
from lossevo.symbolic.compile import compile_expression, runtime_namespace, torch_source
from lossevo.symbolic.expression import KEY_KINDS, _training_form, canonical_key, to_sympy
from lossevo.symbolic.loss import KINDS, per_sample_loss

NEG_PY = "mul(-1.0, mul(y_pred, y_true))"  # −p_y after the class sum
CE = "mul(y_true, mul(-1.0, log(y_pred)))"
SQ = "mul(sub(y_pred, y_true), sub(y_pred, y_true))"

MERGE = [
    ("classification", NEG_PY, "sub(1.0, mul(y_pred, y_true))"),
    ("classification", NEG_PY, f"add(mul(2.5, {NEG_PY}), 3.0)"),
    ("classification", NEG_PY, f"add({NEG_PY}, mul(0.3, y_pred))"),
    ("classification", CE, "mul(y_true, mul(y_true, mul(-0.3, log(y_pred))))"),  # y_true² = y_true
    ("classification", CE, f"add(div({CE}, 4.0), sin(y_true))"),
    # a quick-start hall of fame held ten of these: division by y_true turns the constant into
    # c/ε on every other class, a constant there, so c does not matter (one-hot split)
    ("classification",
     "div(sub(add(y_pred, y_pred), div(sub(-4.557, div(y_true, y_pred)), y_true)), y_true)",
     "div(sub(add(y_pred, y_pred), div(sub(-0.012, div(y_true, y_pred)), y_true)), y_true)"),
    ("classification", "mul(y_pred, sin(y_true))", "mul(0.5, mul(y_pred, y_true))"),
    # division is linear in its numerator (the protection looks at the denominator only):
    # the next run's #1 and #3 were one function at two scales
    ("classification",
     "mul(div(sqrt(y_true), sqrt(exp(y_pred))), add(exp(exp(y_true)), y_pred))",
     "mul(div(sin(y_true), sqrt(exp(y_pred))), add(exp(exp(y_true)), y_pred))"),
    ("regression", SQ, f"add(mul(7.0, {SQ}), mul(y_true, y_true))"),
    ("regression", SQ, "sub(mul(y_pred, y_pred), mul(2.0, mul(y_pred, y_true)))"),  # expanded
    ("regression", NEG_PY, f"add(mul(1000.0, {NEG_PY}), log(y_true))"),
    ("binary", NEG_PY, f"add(mul(2.5, {NEG_PY}), 3.0)"),
]
APART = [
    *((kind, NEG_PY, "mul(y_pred, y_true)") for kind in KEY_KINDS),  # −g is not g
    *((kind, CE, "mul(y_true, sqrt(y_pred))") for kind in KEY_KINDS),
    ("classification", CE, "mul(-1.0, log(y_pred))"),
    ("classification", CE, f"add({CE}, mul(y_pred, y_pred))"),
    ("classification", f"add({CE}, mul(y_pred, y_pred))",
     f"add({CE}, mul(2.0, mul(y_pred, y_pred)))"),
    # 1e7·y_pred: the softmax's float32 rounding, scaled up, is gradient noise as large as CE's
    ("classification", CE, f"add({CE}, div(y_pred, 0.0))"),
    # the class sum and one-hot targets belong to classification only
    ("regression", NEG_PY, f"add({NEG_PY}, mul(0.3, y_pred))"),
    ("binary", NEG_PY, f"add({NEG_PY}, mul(0.3, y_pred))"),
    ("regression", "mul(y_true, y_pred)", "mul(y_true, mul(y_true, y_pred))"),
    # a scale small enough for Adam's ε to show
    ("classification", CE, "mul(y_true, mul(-0.001, log(y_pred)))"),
]


@pytest.mark.parametrize(("kind", "a", "b"), MERGE)
def test_training_equivalent_losses_share_a_key(kind, a, b):
    assert canonical_key(a, kind) == canonical_key(b, kind)
    assert canonical_key(a) != canonical_key(b)  # the exact key still tells them apart


@pytest.mark.parametrize(("kind", "a", "b"), APART)
def test_losses_that_train_differently_keep_different_keys(kind, a, b):
    assert canonical_key(a, kind) != canonical_key(b, kind)


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_constant_losses_share_one_key_of_their_own(kind):
    constant = {canonical_key(e, kind) for e in ("0.0", "add(y_true, 3.0)", "log(y_true)",
                                                 "sub(y_pred, y_pred)")}
    assert len(constant) == 1
    linear = canonical_key("add(mul(2.0, y_pred), y_true)", kind)
    assert (linear in constant) == (kind == "classification")  # Σₖ c·pₖ = c
    assert canonical_key(NEG_PY, kind) not in constant


def test_weight_decay_keeps_the_scale():
    """Adam's coupled L2 term wd·θ is not scaled with the loss: only added terms may go."""
    scaled = f"add(mul(2.5, {NEG_PY}), 3.0)"
    assert canonical_key(NEG_PY, "classification", 1e-4) != canonical_key(scaled,
                                                                           "classification", 1e-4)
    shifted = f"add({NEG_PY}, 3.0)"
    assert canonical_key(NEG_PY, "classification", 1e-4) == canonical_key(shifted,
                                                                           "classification", 1e-4)


def test_kinds_are_checked_and_match_the_loss_kinds():
    assert KEY_KINDS == KINDS
    with pytest.raises(ValueError, match="unknown kind 'ranking'"):
        canonical_key("y_pred", "ranking")


@given(expressions, st.floats(1.0, 1e6), st.floats(-1e3, 1e3), st.sampled_from(KEY_KINDS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
def test_key_ignores_a_positive_scale_and_an_added_constant(expr, c, k, kind):
    """key(c·e + k) == key(e) for c ≥ 1 once e's scale is in the merged range (1e4·e is, unless
    e's coefficients are all below 1e-6)."""
    e = f"mul(10000.0, {expr})"
    assume(canonical_key(e, kind) == canonical_key(f"mul(1e8, {expr})", kind))
    assert canonical_key(f"add({k!r}, mul({e}, {c!r}))", kind) == canonical_key(e, kind)


def _gradient(fn, kind: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    outputs = outputs.clone().requires_grad_(True)
    loss = per_sample_loss(fn, outputs, targets, kind).sum()
    if not loss.requires_grad:
        return torch.zeros_like(outputs)
    (grad,) = torch.autograd.grad(loss, outputs, allow_unused=True)
    return torch.zeros_like(outputs) if grad is None else grad


@given(expressions, st.sampled_from(KEY_KINDS), st.integers(0, 2**16))
@settings(max_examples=200, deadline=None)
def test_the_key_representative_has_the_same_gradient_direction(expr, kind, seed):
    """The form a key prints trains like the expression: its gradient with respect to the model
    outputs (through the softmax and class sum for classification) is a positive multiple."""
    rep = _training_form(to_sympy(expr), kind, scale_free=True)
    assume(rep != 0)  # a constant loss: its gradient is float noise, if anything
    # keys round constants to 10 significant digits: inside sin/cos a constant of size M moves
    # the phase by ~M·1e-10, so sin(p + div(log(0), 0)) = sin(p − 1.6e8) may turn its gradient
    # by 1e-2 rad; the direction is exact only while constants stay moderate
    assume(all(abs(float(n)) < 1e4 for n in rep.atoms(sympy.Number)))
    gen = torch.Generator().manual_seed(seed)
    if kind == "classification":
        outputs = torch.randn(16, 4, generator=gen, dtype=torch.float64)
        targets = torch.randint(0, 4, (16,), generator=gen)
    elif kind == "binary":
        outputs = torch.randn(16, generator=gen, dtype=torch.float64)
        targets = torch.randint(0, 2, (16,), generator=gen).double()
    else:
        outputs = torch.randn(16, generator=gen, dtype=torch.float64) * 2
        targets = torch.randn(16, generator=gen, dtype=torch.float64) * 2
    namespace = runtime_namespace()
    exec(torch_source(rep), namespace)
    a = _gradient(compile_expression(expr), kind, outputs, targets).flatten()
    b = _gradient(namespace["elementwise"], kind, outputs, targets).flatten()
    assume(torch.isfinite(a).all() and torch.isfinite(b).all())
    assume(a.norm() > 1e-6 and b.norm() > 1e-6)  # not a float-noise gradient
    assert float(a @ b / (a.norm() * b.norm())) == pytest.approx(1.0, abs=1e-6)


def test_losses_with_one_key_train_alike_under_adam():
    """Trained together on the batched path, losses with one key give the same metrics up to
    one validation prediction (1/n_val on any metric): Adam's ε (and float32 rounding of the
    scaled gradient) leave the parameters ~1e-5 apart, which can flip a near-tie, no more.
    A loss with another key moves the metrics well beyond that."""
    task = load_task("digits-sym-0.4").with_overrides(model={"widths": [16]},
                                                      budget={"epochs": 2, "lr": 1e-2})
    same = [CE, f"add(mul(2.5, {CE}), add(y_true, 3.0))",
            "add(mul(y_true, mul(y_true, mul(-0.3, log(y_pred)))), mul(0.7, y_pred))",
            f"mul(1000.0, {CE})"]
    assert len({canonical_key(e, task.kind) for e in same}) == 1
    assert canonical_key(NEG_PY, task.kind) != canonical_key(CE, task.kind)
    evals = evaluate_many([*same, NEG_PY], task, instances=2, seed=0)
    assert not any(e.rejected for e in evals)
    tol = 1 / len(load_dataset(task).y_val)
    base = evals[0].metrics
    for ev in evals[1:-1]:
        assert ev.metrics == pytest.approx(base, abs=tol)
    assert max(abs(evals[-1].metrics[k] - base[k]) for k in base) > 10 * tol


def test_measured_equivalence_merges_what_algebra_misses():
    """exp(c − p·y) is e^c·exp(−p·y): a positive multiple the symbolic key cannot see inside
    the protected exp. The gradient directions on the probe batch match; other losses stay."""
    from lossevo.symbolic.equivalence import distinct

    exprs = ["exp(sub(4.409, mul(y_pred, y_true)))",       # kept
             "exp(sub(2.679, exp(mul(y_pred, y_true))))",  # another function: kept
             "exp(sub(1.788, mul(y_pred, y_true)))",       # = e^(1.788-4.409) × the first
             CE, NEG_PY, "mul(2.0, y_true)"]               # CE, −p·y kept; constant kept
    assert canonical_key(exprs[0], "classification") != canonical_key(exprs[2],
                                                                      "classification")
    assert distinct(exprs, ["classification"]) == [0, 1, 3, 4, 5]
    # a loss that differs on one of the kinds is kept
    assert distinct([SQ, f"mul(3.0, {SQ})", "mul(y_pred, y_pred)"], ["regression"]) == [0, 2]
    assert distinct([NEG_PY, f"add({NEG_PY}, mul(0.3, y_pred))"],
                    ["classification", "regression"]) == [0, 1]


def test_measured_equivalence_probes_a_schedule_at_several_t():
    """A loss with t is compared over the whole schedule: a scale shared by every t merges
    (so does an added t), a scale that changes with t does not; class reductions work too."""
    from lossevo.symbolic.equivalence import distinct, gradient_direction

    nce = "div(mul(y_true, log(y_pred)), csum(log(y_pred)))"
    exprs = [f"mul(t, {CE})",                     # kept
             f"mul(2.0, mul(t, {CE}))",           # the first at scale 2: dropped
             CE,                                  # equal to the first at t = 1 only: kept
             f"add(t, {CE})",                     # CE plus a term without gradient: dropped
             nce,                                 # kept
             f"mul(3.0, {nce})"]                  # dropped
    assert distinct(exprs, ["classification"]) == [0, 2, 4]
    assert gradient_direction(CE, "classification").shape == gradient_direction(
        exprs[0], "classification").shape
    # on a single output the reductions are the identity
    assert distinct([SQ, "mul(csum(sub(y_pred, y_true)), cmax(sub(y_pred, y_true)))"],
                    ["regression"]) == [0]
