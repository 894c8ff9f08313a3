"""Exported modules behave exactly like the engine's compiled losses, and import only torch."""

import ast
import importlib.util
import itertools
import math
import re
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from lossevo.symbolic.compile import compile_expression
from lossevo.symbolic.export import export_loss
from lossevo.symbolic.expression import to_latex, to_sympy
from lossevo.symbolic.loss import KINDS, SymbolicLoss

ROOT = Path(__file__).resolve().parents[1]

# A long sum: its generated line must be wrapped to pass the line-length rule.
_LONG = "y_pred"
for _i in range(1, 30):
    _LONG = f"add({_LONG}, sqrt(add(y_true, {_i / 10})))"

EXPRESSIONS = [
    "mul(-1.0, mul(y_true, log(y_pred)))",  # cross-entropy; log(0) on the zero one-hot entries
    "sub(mul(y_true, log(y_pred)), div(y_pred, 2.5))",
    "div(y_true, sub(y_pred, 0.5))",  # division by ~0 where y_pred ~ 0.5
    "div(y_pred, sub(y_true, y_true))",  # folds to division by the constant 0
    "sqrt(sub(y_pred, y_true))",  # sqrt at 0 (value and gradient)
    "log(mul(y_pred, sub(1.0, y_true)))",
    "exp(mul(100.0, y_pred))",  # the exp cap at 30
    "add(sin(y_pred), cos(mul(y_true, y_pred)))",
    "1.5",  # constant: broadcast to the input shape
    _LONG,
    # the frontier preset: class reductions and the fraction of training done t
    "add(div(mul(y_true, log(y_pred)), csum(log(y_pred))), mul(t, cmax(sub(y_pred, 2.0))))",
]
SCHEDULED = EXPRESSIONS[-1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One exported module per (expression, kind)."""
    folder = tmp_path_factory.mktemp("exports")
    modules = {}
    for (i, expr), kind in itertools.product(enumerate(EXPRESSIONS), KINDS):
        path = export_loss(expr, folder / f"loss_{i}_{kind}.py", kind=kind,
                           fitness=(0.25, -1.0), metrics={"accuracy": 0.9})
        modules[expr, kind] = (path, _load(path, f"_exported_{i}_{kind}"))
    return modules


def _edge_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    values = [0.0, 1e-9, -1e-9, 0.5, 0.5 + 1e-9, 0.5 - 1e-9, 1.0, -0.3, 2.0, 0.31]
    grid = torch.tensor(list(itertools.product(values, values)), dtype=torch.float64)
    return grid[:, 0].clone(), grid[:, 1].clone()


def _value_and_grads(fn, *inputs):
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    if not out.requires_grad:  # a constant expression: the gradient is zero everywhere
        return out, tuple(torch.zeros_like(x) for x in inputs)
    grads = torch.autograd.grad(out.sum(), inputs, allow_unused=True, materialize_grads=True)
    return out.detach(), grads


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_elementwise_matches_compiled_values_and_gradients(exported, expr):
    module = exported[expr, "classification"][1]
    y_pred, y_true = _edge_inputs()
    got, got_grads = _value_and_grads(module.elementwise, y_pred, y_true)
    want, want_grads = _value_and_grads(compile_expression(expr), y_pred, y_true)
    assert got.shape == want.shape == y_pred.shape
    assert torch.isfinite(want).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=0)


def _task_batch(kind: str, shape_1: bool = False):
    gen = torch.Generator().manual_seed(7)
    if kind == "classification":
        logits = torch.randn(9, 4, generator=gen, dtype=torch.float64) * 3
        return logits, torch.randint(0, 4, (9,), generator=gen)
    logits = torch.randn(9, 1 if shape_1 else 9, generator=gen, dtype=torch.float64)
    logits = logits if shape_1 else logits[0]
    if kind == "binary":
        return logits, torch.randint(0, 2, (9,), generator=gen)
    return logits, torch.randn(9, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_module_matches_symbolic_loss(exported, expr, kind, reduction):
    module = exported[expr, kind][1]
    for shape_1 in (False, True) if kind != "classification" else (False,):
        logits, targets = _task_batch(kind, shape_1)
        exported_loss = module.EvolvedLoss(reduction=reduction)
        engine_loss = SymbolicLoss(expr, kind=kind, reduction=reduction)
        got, (got_grad,) = _value_and_grads(partial(exported_loss, targets=targets), logits)
        want, (want_grad,) = _value_and_grads(partial(engine_loss, targets=targets), logits)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=0)
        assert torch.isfinite(got_grad).all()


@pytest.mark.parametrize("kind", KINDS)
def test_scheduled_loss_round_trips_with_t_as_argument_or_attribute(exported, kind):
    """An exported loss with csum and t: t is a constructor argument, a settable attribute and
    a per-call argument, each giving the engine's value at that t (default 1.0)."""
    module = exported[SCHEDULED, kind][1]
    assert module.USES_T is True and module.EvolvedLoss.uses_t
    logits, targets = _task_batch(kind)
    values = {}
    for t in (0.0, 0.3, 1.0):
        want, (want_grad,) = _value_and_grads(
            partial(SymbolicLoss(SCHEDULED, kind=kind, t=t), targets=targets), logits)
        built = module.EvolvedLoss(t=t)
        settable = module.EvolvedLoss()
        settable.t = t
        for loss in (built, settable, partial(module.EvolvedLoss(t=0.7), t=t)):
            got, (got_grad,) = _value_and_grads(partial(loss, targets=targets), logits)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
            torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=0)
        values[t] = float(want)
    assert len(set(values.values())) == 3  # the schedule matters
    assert float(module.EvolvedLoss()(logits, targets)) == values[1.0]
    with pytest.raises(ValueError, match=r"t = 1.5 is not allowed; allowed: a number in \[0, 1\]"):
        module.EvolvedLoss(t=1.5)
    assert exported[EXPRESSIONS[0], kind][1].USES_T is False


@pytest.mark.parametrize("kind", KINDS)
def test_exported_loss_carries_its_measured_scale(exported, kind):
    """SCALE in the module is the scale probe's measurement, so a user can pick an SGD learning
    rate or a float16 loss scale from it without lossevo installed."""
    from lossevo.symbolic.scale import measure_scale

    for expr in (EXPRESSIONS[0], SCHEDULED):
        module = exported[expr, kind][1]
        measured = measure_scale(expr, kind).as_dict()
        assert measured == module.SCALE
        assert "SCALE" in module.__all__


def _standalone_value(path, call: str) -> float:
    """The loss value a fresh interpreter, where lossevo cannot be imported, gets from the
    exported file at `path` on a fixed 2×3 batch (``call``: the arguments after the targets)."""
    script = (
        "import sys, importlib.util\n"
        "sys.modules['lossevo'] = None  # importing lossevo would fail\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "import torch\n"
        "x = torch.linspace(-2, 2, 6, dtype=torch.float64).reshape(2, 3)\n"
        f"print(repr(m.EvolvedLoss()(x, torch.tensor([0, 2]){call}).item()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


def test_scheduled_loss_runs_standalone(exported):
    path = exported[SCHEDULED, "classification"][0]
    x = torch.linspace(-2, 2, 6, dtype=torch.float64).reshape(2, 3)
    want = SymbolicLoss(SCHEDULED, t=0.25)(x, torch.tensor([0, 2])).item()
    assert _standalone_value(path, ", t=0.25") == want


def test_module_rejects_unknown_reduction(exported):
    module = exported[EXPRESSIONS[0], "binary"][1]
    with pytest.raises(ValueError, match="'median'"):
        module.EvolvedLoss(reduction="median")


def test_constants(exported):
    for (expr, kind), (_, module) in exported.items():
        assert expr == module.EXPRESSION
        assert str(to_sympy(expr)) == module.SYMPY
        assert to_latex(expr) == module.LATEX
        assert kind == module.KIND
        assert module.EvolvedLoss().kind == kind
        assert module.FITNESS == (0.25, -1.0)
        assert module.METRICS == {"accuracy": 0.9}


def test_constants_none_and_non_finite(tmp_path):
    path = export_loss("y_pred", tmp_path / "a.py", kind="regression")
    module = _load(path, "_exported_none")
    assert module.FITNESS is None and module.METRICS is None
    metrics = {"per_env": [0.5, float("inf")], "name": "x" * 300, "nested": {"k": (1,)},
               "numpy": [np.float32(0.25), np.int64(3)], "ok": True}
    fitness = (float("nan"), 1, np.float64(-0.5))
    path = export_loss("y_pred", tmp_path / "b.py", fitness=fitness, metrics=metrics)
    module = _load(path, "_exported_nan")
    assert math.isnan(module.FITNESS[0]) and module.FITNESS[1:] == (1, -0.5)
    assert module.METRICS["ok"] is True
    assert metrics == module.METRICS


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or ".").split(".")[0])
    return names


def test_imports_only_torch_and_math(exported):
    for path, _ in exported.values():
        assert _imported_modules(path) <= {"torch", "math"}, path


def test_standalone_without_lossevo(exported):
    """The file runs in a fresh interpreter where lossevo cannot be imported."""
    path = exported[EXPRESSIONS[1], "classification"][0]
    x = torch.linspace(-2, 2, 6, dtype=torch.float64).reshape(2, 3)
    want = SymbolicLoss(EXPRESSIONS[1])(x, torch.tensor([0, 2])).item()
    assert _standalone_value(path, "") == want


def test_output_is_ruff_clean(exported):
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed")
    paths = sorted({str(path.parent) for path, _ in exported.values()})
    done = subprocess.run([ruff, "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                           *paths], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "loss.py"
    path.write_text("old")
    export_loss("y_pred", path, name="MyLoss")
    module = _load(path, "_exported_overwrite")
    assert hasattr(module, "MyLoss") and "MyLoss" in module.__all__
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.py"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expr": "div(y_pred)"}, "invalid expression 'div\\(y_pred\\)'"),
        ({"expr": "foo(y_pred, y_true)"}, "invalid expression 'foo"),
        ({"kind": "ranking"}, "unknown kind 'ranking'"),
        ({"name": "not an identifier"}, "'not an identifier'"),
        ({"name": "elementwise"}, "'elementwise'"),
        ({"fitness": [1.0]}, "fitness must be a tuple"),
        ({"metrics": {"a": object()}}, "metrics\\['a'\\]: unsupported value"),
        ({"metrics": {1: 2}}, "keys must be str"),
    ],
)
def test_bad_input(tmp_path, kwargs, match):
    args = {"expr": "y_pred", "path": tmp_path / "x.py", **kwargs}
    with pytest.raises(ValueError, match=match):
        export_loss(args.pop("expr"), args.pop("path"), **args)
    assert not list(tmp_path.iterdir())


def test_bad_path(tmp_path):
    missing = tmp_path / "missing" / "x.py"
    with pytest.raises(ValueError, match=re.escape(str(missing.parent))):
        export_loss("y_pred", missing)
    with pytest.raises(ValueError, match=r"'\.py'"):
        export_loss("y_pred", tmp_path / "x.txt")
