"""The opt-in `frontier` preset: class reductions csum/cmax and the training-progress terminal t.

Every route (sympy, canonical key, torch, numpy reference, DEAP grammar, training loop) takes
them from the one primitive table; NCE+RCE and ANL-CE's parts written as expressions equal the
built-in baselines.
"""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest
import torch
from deap import gp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lossevo.baselines import frontier
from lossevo.baselines.losses import build_loss
from lossevo.evaluation.models import build_module, init_params
from lossevo.evaluation.tasks import Budget, ModelSpec
from lossevo.evaluation.training import Group, TrainingScheme, train_models
from lossevo.search.variation import generate
from lossevo.symbolic.compile import compile_expression, runtime_namespace, torch_source
from lossevo.symbolic.expression import KEY_KINDS, _training_form, canonical_key, to_latex, to_sympy
from lossevo.symbolic.grammar import ConstantSpec, build_pset, from_text
from lossevo.symbolic.loss import KINDS, SymbolicLoss, per_sample_loss
from lossevo.symbolic.primitives import (
    PRIMITIVE_SETS,
    lookup,
    names,
    primitive_set,
    primitive_set_terminals,
)
from lossevo.symbolic.reference import evaluate_numpy

CPU = torch.device("cpu")
CE = "mul(-1.0, mul(y_true, log(y_pred)))"
# The baselines' constants: RCE's A = log 1e-4 (β = 10 folded in), ANL's A = −log 1e-7.
RCE_SCALE = -10.0 * math.log(1e-4)
ANL_A = -math.log(1e-7)
NCE = "div(mul(y_true, log(y_pred)), csum(log(y_pred)))"  # log p_y / Σ_k log p_k
RCE = f"mul({RCE_SCALE!r}, mul(sub(1.0, y_true), y_pred))"  # −A·Σ_{k≠y} p_k
# 1 − (A + log p_y) / Σ_k (A + log p_k), the 1 written as Σ_k y_k
NNCE = (f"mul(y_true, sub(1.0, div(add({ANL_A!r}, log(y_pred)), "
        f"csum(add({ANL_A!r}, log(y_pred))))))")

_UNARY = [n for n in PRIMITIVE_SETS["frontier"] if lookup(n).arity == 1]
_BINARY = [n for n in PRIMITIVE_SETS["frontier"] if lookup(n).arity == 2]
frontier_expressions = st.recursive(
    st.one_of(st.sampled_from(["y_pred", "y_true", "t"]),
              st.floats(-5, 5, allow_nan=False).map(lambda x: repr(round(x, 3)))),
    lambda kids: st.one_of(
        st.tuples(st.sampled_from(_BINARY), kids, kids).map(lambda a: f"{a[0]}({a[1]}, {a[2]})"),
        st.tuples(st.sampled_from(_UNARY), kids).map(lambda a: f"{a[0]}({a[1]})"),
    ),
    max_leaves=12,
)


def _classification_batch(seed: int, n: int = 16, classes: int = 4, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=gen, dtype=torch.float64) * scale
    return logits, torch.randint(0, classes, (n,), generator=gen)


# --- the table and the presets -------------------------------------------------------------


def test_ganetic_is_unchanged_and_frontier_extends_it():
    ganetic = ("add", "sub", "mul", "div", "sqrt", "log", "exp", "sin", "cos")
    assert PRIMITIVE_SETS["ganetic"] == ganetic
    assert PRIMITIVE_SETS["frontier"] == (*ganetic, "csum", "cmax")
    assert primitive_set_terminals("ganetic") == ("y_pred", "y_true")
    assert primitive_set_terminals("frontier") == ("y_pred", "y_true", "t")
    assert [p.name for p in primitive_set("frontier") if p.reduces_classes] == ["csum", "cmax"]
    # every primitive of the table has a torch form in generated code
    assert {f"p_{n}" for n in names() if lookup(n).sympy_node} <= set(runtime_namespace())
    with pytest.raises(ValueError, match="unknown primitive set 'rich'; allowed: "):
        primitive_set_terminals("rich")


def test_grammar_draws_the_new_primitives_only_in_the_frontier_preset():
    ganetic, rich = build_pset("ganetic"), build_pset("frontier")
    assert ganetic.arguments == ["y_pred", "y_true"]
    assert rich.arguments == ["y_pred", "y_true", "t"]
    assert "csum" not in ganetic.mapping and "csum" in rich.mapping
    with pytest.raises(ValueError, match="terminal 't' at position 12 is not in primitive set "
                                         "'lossevo_ganetic'; allowed: y_pred, y_true"):
        from_text("add(y_pred, t)", ganetic)
    with pytest.raises(ValueError, match="'csum' at position 0 is not in primitive set"):
        from_text("csum(y_pred)", ganetic)
    rng = random.Random(1)
    texts = [str(gp.PrimitiveTree(generate(rich, rng, 1, 4, method="full",
                                           consts=ConstantSpec()))) for _ in range(60)]
    joined = " ".join(texts)
    assert "csum(" in joined and "cmax(" in joined and any(
        "t" in [tok.strip("(), ") for tok in text.split()] for text in texts)
    for text in texts:  # each goes through the whole symbolic path
        assert str(from_text(text, rich)) == text
        canonical_key(text, "classification")
        compile_expression(text)


# --- semantics: torch, numpy reference and sympy agree --------------------------------------


def test_class_reductions_sum_and_max_over_the_last_axis():
    p = torch.softmax(_classification_batch(0, n=5, classes=3)[0], dim=-1)
    y = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0, 1]]
    ones = torch.ones_like(p)
    torch.testing.assert_close(compile_expression("csum(y_pred)")(p, y), ones)
    torch.testing.assert_close(compile_expression("csum(2.0)")(p, y), 6 * ones)  # C·2
    torch.testing.assert_close(compile_expression("cmax(y_pred)")(p, y),
                               p.amax(-1, keepdim=True).expand_as(p))
    torch.testing.assert_close(compile_expression("cmax(-2.0)")(p, y), -2 * ones)
    torch.testing.assert_close(compile_expression("mul(t, csum(y_true))")(p, y, 0.25),
                               0.25 * ones)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_class_reductions_are_the_identity_on_a_single_output(kind):
    gen = torch.Generator().manual_seed(3)
    outputs = torch.randn(9, 1, generator=gen, dtype=torch.float64)
    targets = torch.rand(9, generator=gen, dtype=torch.float64).round()
    plain = "mul(sub(y_pred, y_true), sub(y_pred, y_true))"
    reduced = "mul(csum(sub(y_pred, y_true)), cmax(sub(y_pred, y_true)))"
    want = SymbolicLoss(plain, kind=kind, reduction="none")(outputs, targets)
    got = SymbolicLoss(reduced, kind=kind, reduction="none")(outputs, targets)
    assert got.shape == (9,)
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)


@given(frontier_expressions, st.floats(0.0, 1.0), st.integers(0, 2**16))
@settings(max_examples=120, deadline=None)
def test_torch_equals_numpy_reference_with_reductions_and_t(expr, t, seed):
    """The compiled form (through sympy's rewriting) and the tree-order reference agree on
    (samples, classes) inputs."""
    logits, targets = _classification_batch(seed)
    p = torch.softmax(logits, dim=-1)
    y = torch.nn.functional.one_hot(targets, 4).double()
    value = compile_expression(expr)(p, y, t).numpy()
    ref, magnitude = evaluate_numpy(expr, p.numpy(), y.numpy(), t=t, track_magnitude=True)
    assume(magnitude < 1e8)
    assert value.shape == ref.shape == (16, 4)
    finite = np.isfinite(ref) & np.isfinite(value)
    np.testing.assert_allclose(value[finite], ref[finite], rtol=1e-7, atol=1e-9 * (1 + magnitude))


@given(frontier_expressions, st.sampled_from(KINDS), st.sampled_from([0.0, 1.0]))
@settings(max_examples=100, deadline=None)
def test_gradients_finite_where_the_loss_is(expr, kind, t):
    if kind == "classification":
        outputs, targets = _classification_batch(1)
    else:
        outputs = torch.randn(16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        targets = (outputs > 0).double()
    outputs.requires_grad_(True)
    loss = per_sample_loss(compile_expression(expr), outputs, targets, kind, t)
    assume(loss.requires_grad)
    assume(bool(torch.isfinite(loss).all()) and float(loss.detach().abs().max()) < 1e30)
    (grad,) = torch.autograd.grad(loss.sum(), outputs, allow_unused=True)
    assert grad is None or bool(torch.isfinite(grad).all())


def test_sympy_folds_only_what_holds_for_any_number_of_classes():
    assert str(to_sympy("csum(mul(3.0, y_pred))")) == "3.0*csum(y_pred)"
    assert str(to_sympy("csum(mul(t, log(y_pred)))")) == "t*csum(plog(y_pred))"
    assert str(to_sympy("csum(2.0)")) == "2.0*csum(1)"  # C is not known
    assert str(to_sympy("cmax(add(y_pred, 2.0))")) == "cmax(y_pred) + 2.0"
    assert str(to_sympy("cmax(mul(2.0, csum(y_pred)))")) == "2.0*csum(y_pred)"
    assert str(to_sympy("cmax(mul(-2.0, y_pred))")) == "cmax(-2.0*y_pred)"  # max(−x) ≠ −max x
    assert to_latex("cmax(csum(y_pred))") == r"\sum_{k}\left(y_{pred}\right)"


# --- canonical keys --------------------------------------------------------------------------


def test_keys_do_not_split_one_hot_targets_inside_a_class_reduction():
    # csum(y·log p) is log p_y on every class; y·csum(log p) is Σ_k log p_k on the true one
    assert canonical_key("csum(mul(y_true, log(y_pred)))", "classification") != canonical_key(
        "mul(y_true, csum(log(y_pred)))", "classification")
    # Σ_k y_k = max_k y_k = 1 on one-hot targets
    for one in ("csum(y_true)", "cmax(y_true)", "csum(mul(0.5, add(y_true, y_true)))"):
        assert canonical_key(f"mul({one}, {CE})", "classification") == canonical_key(
            CE, "classification")
    # kept apart where they are not one: other kinds (the keys also serve mixed kinds), and
    # the softmax's Σ p = 1, which holds in floats only up to rounding
    assert canonical_key(f"mul(csum(y_true), {CE})", "regression") != canonical_key(
        CE, "regression")
    assert canonical_key(f"mul(csum(y_pred), {CE})", "classification") != canonical_key(
        CE, "classification")
    # a schedule is not a constant scale
    assert canonical_key(f"mul(t, {CE})", "classification") != canonical_key(
        CE, "classification")
    assert canonical_key(f"add(t, {CE})", "classification") == canonical_key(
        CE, "classification")


def _gradient(fn, kind, outputs, targets, t):
    outputs = outputs.clone().requires_grad_(True)
    loss = per_sample_loss(fn, outputs, targets, kind, t).sum()
    if not loss.requires_grad:
        return torch.zeros_like(outputs)
    (grad,) = torch.autograd.grad(loss, outputs, allow_unused=True)
    return torch.zeros_like(outputs) if grad is None else grad


@given(frontier_expressions, st.sampled_from(KEY_KINDS), st.integers(0, 2**16))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
def test_the_key_representative_trains_alike_at_every_t(expr, kind, seed):
    """The form a key prints has, at each t, a gradient that is a positive multiple of the
    expression's (one multiple for the whole schedule: the key factors out numbers only)."""
    rep = _training_form(to_sympy(expr), kind, scale_free=True)
    assume(rep != 0)
    gen = torch.Generator().manual_seed(seed)
    if kind == "classification":
        outputs, targets = _classification_batch(seed)
    else:
        outputs = torch.randn(16, generator=gen, dtype=torch.float64) * 2
        targets = torch.randint(0, 2, (16,), generator=gen).double()
    namespace = runtime_namespace()
    exec(torch_source(rep), namespace)
    a = torch.cat([_gradient(compile_expression(expr), kind, outputs, targets, t).flatten()
                   for t in (0.0, 0.5, 1.0)])
    b = torch.cat([_gradient(namespace["elementwise"], kind, outputs, targets, t).flatten()
                   for t in (0.0, 0.5, 1.0)])
    assume(torch.isfinite(a).all() and torch.isfinite(b).all())
    assume(a.norm() > 1e-6 and b.norm() > 1e-6)  # not a float-noise gradient
    assert float(a @ b / (a.norm() * b.norm())) == pytest.approx(1.0, abs=1e-6)


# --- the frontier as expressions --------------------------------------------------------------


@pytest.mark.parametrize(("expr", "reference"), [
    (f"add({NCE}, {RCE})", build_loss("nce_rce")),  # α = 1, β = 10, A = log 1e-4
    (NCE, frontier.nce),  # ANL-CE's active part
    (NNCE, build_loss("anl_ce", alpha=0.0, beta=1.0)),  # its passive part, A = −log 1e-7
    (f"add({NCE}, {NNCE})", build_loss("anl_ce")),  # α = β = 1 (δ‖θ‖₁ is the trainer's)
], ids=["nce_rce", "nce", "nnce", "anl_ce"])
def test_frontier_losses_written_as_expressions_equal_the_baselines(expr, reference):
    """Values and gradients agree to 1e-6 where every probability is above ~1e-3; below, the
    protected log(p + 1e-7) floors at log 1e-7 (like ANL's clamp), the baselines' NCE not."""
    logits, targets = _classification_batch(2, n=256, classes=10)
    assert float(torch.softmax(logits, -1).min()) > 1e-3
    logits.requires_grad_(True)
    got = SymbolicLoss(expr, reduction="none")(logits, targets)
    want = reference(logits, targets)
    (got_grad,) = torch.autograd.grad(got.sum(), logits)
    (want_grad,) = torch.autograd.grad(want.sum(), logits)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("expr", "reference"), [
    (f"add({NCE}, {RCE})", build_loss("nce_rce")),
    (f"add({NCE}, {NNCE})", build_loss("anl_ce", delta=0.0)),
], ids=["nce_rce", "anl_ce"])
def test_frontier_expressions_train_like_the_baselines(expr, reference):
    """Trained on the batched path as a campaign trains a candidate (a SymbolicLoss with
    reduction "none"), float32 models end where the baseline's end (parameters moved ~0.1)."""
    module, params, x, y = _problem(n_models=2, classes=4)
    budget = Budget(epochs=2, batch_size=16, lr=1e-2)
    ours = train_models(module, params, x, y, [Group(SymbolicLoss(expr, reduction="none"), 0, 2)],
                        budget, [5, 6], True)
    theirs = train_models(module, params, x, y, [Group(reference, 0, 2)], budget, [5, 6], True)
    assert ours.failures == theirs.failures == [None]
    for name, value in theirs.params.items():
        assert float((value - params[name]).abs().max()) > 1e-2
        torch.testing.assert_close(ours.params[name], value, rtol=0, atol=1e-5)


# --- t in training -------------------------------------------------------------------------


def _problem(n_models: int = 2, n: int = 50, classes: int = 3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, classes, (n_models, n), generator=g)
    module = build_module(ModelSpec(widths=(12,)), 6, classes)
    return module, init_params(module, list(range(10, 10 + n_models)), CPU), x, y


class _Recorder:
    """A per-sample loss that records the t it is called with (None: called without)."""

    def __init__(self, uses_t: bool):
        self.uses_t = uses_t
        self.seen: list[float | None] = []

    def __call__(self, outputs, targets, t=None):
        self.seen.append(t)
        return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")


def test_training_passes_the_fraction_of_steps_done_to_losses_that_use_t():
    module, params, x, y = _problem(n_models=2)
    timed, plain = _Recorder(True), _Recorder(False)
    budget = Budget(epochs=2, batch_size=16, lr=1e-2)  # 50 samples: 4 steps per epoch
    res = train_models(module, params, x, y, [Group(timed, 0, 1), Group(plain, 1, 2)], budget,
                       [1, 2], True)
    assert res.failures == [None, None]
    assert timed.seen == [k / 8 for k in range(8)]
    assert plain.seen == [None] * 8  # called exactly as before


def test_schemes_see_t_in_the_batch():
    class Spy(TrainingScheme):
        def __init__(self):
            self.times = []

        def objective(self, state, batch, params):
            self.times.append(batch.t)
            return super().objective(state, batch, params)

    module, params, x, y = _problem(n_models=1)
    spy = Spy()
    train_models(module, params, x, y[:1], [Group(_Recorder(True), 0, 1)],
                 Budget(epochs=1, batch_size=25), [1], True, scheme=spy)
    assert spy.times == [0.0, 0.5]


def test_a_schedule_in_t_changes_training_and_a_loss_without_t_does_not():
    module, params, x, y = _problem(n_models=1)
    one_step = Budget(epochs=1, batch_size=64, lr=1e-2)  # a single step, at t = 0
    scheduled = train_models(module, params, x, y[:1],
                             [Group(SymbolicLoss(f"mul(t, {CE})", reduction="none"), 0, 1)],
                             one_step, [1], True)
    for name, value in params.items():  # zero loss at t = 0: Adam does not move
        torch.testing.assert_close(scheduled.params[name], value, rtol=0, atol=0)
    # without t, the module takes the same path as the bare compiled function
    budget = Budget(epochs=2, batch_size=16, lr=1e-2)
    fn = compile_expression(CE)
    a = train_models(module, params, x, y[:1], [Group(SymbolicLoss(CE, reduction="none"), 0, 1)],
                     budget, [1], True)
    b = train_models(module, params, x, y[:1], [Group(
        lambda o, tg: per_sample_loss(fn, o, tg, "classification"), 0, 1)], budget, [1], True)
    for name in params:
        assert torch.equal(a.params[name], b.params[name])
        assert not torch.equal(a.params[name], params[name])


def test_symbolic_loss_takes_t_as_attribute_and_argument():
    logits, targets = _classification_batch(4)
    expr = f"mul(add(t, 0.5), {CE})"
    ce = SymbolicLoss(CE, reduction="none")(logits, targets)
    loss = SymbolicLoss(expr, reduction="none", t=0.25)
    assert loss.uses_t and not SymbolicLoss(CE).uses_t
    torch.testing.assert_close(loss(logits, targets), 0.75 * ce)
    torch.testing.assert_close(loss(logits, targets, t=1.0), 1.5 * ce)
    loss.t = 0.0
    torch.testing.assert_close(loss(logits, targets), 0.5 * ce)
    torch.testing.assert_close(SymbolicLoss(expr, reduction="none")(logits, targets), 1.5 * ce)
    restored = pickle.loads(pickle.dumps(loss))
    torch.testing.assert_close(restored(logits, targets), 0.5 * ce)
    refused = r"t = .* is not allowed; allowed: a number in \[0, 1\]"
    for bad in (1.5, -0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match=refused):
            SymbolicLoss(expr, t=bad)
    with pytest.raises(ValueError, match=r"t = 2 is not allowed"):
        loss(logits, targets, t=2)
    with pytest.raises(ValueError, match=r"t = -1 is not allowed"):
        evaluate_numpy(expr, 0.5, 1.0, t=-1)
