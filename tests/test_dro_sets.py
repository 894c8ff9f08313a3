"""The registry of ambiguity sets and the batched torch forms: leading dims are independent
problems, each solved exactly as if alone; dro imports nothing from lossevo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dro
from dro.convex.solve import FORMULATIONS
from dro.errors import InvalidParameterError
from dro.nn import GroupDRO, group_dro_step, wasserstein_penalty_risk, worst_case_weights
from dro.sets import REGISTRY, LinearModelSet, ReweightingSet, get_set, set_names
from dro.sets.group import GROUP


def test_registry_names_and_errors() -> None:
    assert all(get_set(name).name == name for name in REGISTRY)
    assert set(set_names(ReweightingSet)) == {"chi2", "cvar", "kl"}
    assert set(FORMULATIONS) == {"chi2", "cvar", "kl", "wasserstein"}
    with pytest.raises(InvalidParameterError,
                       match=r"ambiguity='chi3' is not allowed; choose one of \('chi2', 'cvar', "
                             r"'kl', 'wasserstein', 'group'\)"):
        get_set("chi3")
    with pytest.raises(InvalidParameterError, match=r"formulation='group' is not allowed; "
                                                    r"choose one of \('chi2', 'cvar', 'kl', "
                                                    r"'wasserstein'\)"):
        get_set("group", LinearModelSet, what="formulation")
    with pytest.raises(InvalidParameterError, match="formulation='kll'"):
        dro.fit_linear_dro(np.ones((4, 1)), np.array([1.0, -1, 1, -1]), formulation="kll",
                           spec=dro.convex.loss_spec("classification", "logistic"), radius=0.1)


@pytest.mark.parametrize("name,size", [("chi2", 0.7), ("cvar", 0.23), ("kl", 0.3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_weights_equal_each_row_alone(name: str, size: float, dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(2, 3, 17, generator=gen, dtype=dtype)
    losses[1, 2, :6] = losses[1, 2, 6]  # ties
    losses[0, 1] = 0.5  # constant row
    batched = worst_case_weights(losses, name, size)
    assert batched.dtype == dtype and batched.shape == losses.shape
    for i in range(2):
        for j in range(3):
            alone = worst_case_weights(losses[i, j], name, size)
            torch.testing.assert_close(batched[i, j], alone, rtol=0, atol=0)
            _, q = get_set(name).worst_case(losses[i, j].double().numpy(), size)
            np.testing.assert_allclose(alone.double().numpy(), q, rtol=1e-6, atol=1e-7)


def test_group_forms_batched_numpy_and_cvxpy_agree() -> None:
    gen = torch.Generator().manual_seed(3)
    losses = torch.rand(2, 30, generator=gen, dtype=torch.float64)
    groups = torch.randint(0, 3, (2, 30), generator=gen)
    groups[1][groups[1] == 2] = 0  # group 2 absent from row 1
    q = torch.full((2, 4), 0.25, dtype=torch.float64)
    refs = [GroupDRO(4, step_size=0.5), GroupDRO(4, step_size=0.5)]
    for _ in range(3):
        q, risk = group_dro_step(q, losses, groups, 0.5)
        for i, ref in enumerate(refs):
            torch.testing.assert_close(risk[i], ref(losses[i], groups[i]))
            torch.testing.assert_close(q[i], ref.q)
    worst = GROUP.risk(losses, groups, 4)
    for i in range(2):
        value, qs = GROUP.worst_case(losses[i].numpy(), groups[i].numpy(), 4)
        assert worst[i].item() == pytest.approx(value, rel=1e-12)
        assert qs @ losses[i].numpy() == pytest.approx(value, rel=1e-12)
        assert GROUP.primal_cvxpy(losses[i].numpy(), groups[i].numpy(), 4) == pytest.approx(
            value, rel=1e-7)
        assert dro.group_dro_risk(losses[i], groups[i], 4).item() == pytest.approx(value)


def test_wasserstein_penalty_batched_equals_each_problem_alone() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 20, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 20, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 4, 1, generator=gen, dtype=torch.float64, requires_grad=True)

    def loss_fn(pred, target):
        return (target - pred) ** 2

    batched = wasserstein_penalty_risk(lambda inp: (inp @ w).squeeze(-1), loss_fn, x, y,
                                       gamma=2.0, steps=10)
    assert batched.shape == (3,)
    for m in range(3):
        alone = wasserstein_penalty_risk(lambda inp, m=m: (inp @ w[m]).squeeze(-1), loss_fn,
                                         x[m], y[m], gamma=2.0, steps=10)
        torch.testing.assert_close(batched[m], alone)
    with pytest.raises(InvalidParameterError, match="reduction='none'"):
        wasserstein_penalty_risk(lambda inp: inp, lambda p, t: p.sum(), x, y, gamma=1.0)


def test_dro_imports_nothing_from_lossevo() -> None:
    root = Path(dro.__file__).parent
    assert not [p for p in root.rglob("*.py") if "lossevo" in p.read_text()]
    code = ("import sys, dro.nn, dro.estimators, dro.sets, dro.convex.solve, dro.torch_linear; "
            "sys.exit(any(m.startswith('lossevo') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
