"""Exact linear DRO: ERM limits, closed forms, brute-force primals, radius sweeps, solver errors."""

from __future__ import annotations

import itertools
import math

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import linprog
from sklearn.linear_model import LogisticRegression

from dro.convex.chi2 import chi2_program
from dro.convex.losses import loss_and_derivative, loss_spec
from dro.convex.solve import fit_linear_dro
from dro.convex.wasserstein import wasserstein_objective, wasserstein_program
from dro.errors import InvalidParameterError, SolverError

LOGISTIC = loss_spec("classification", "logistic")
HINGE = loss_spec("classification", "hinge")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    logits = X @ np.array([1.5, -1.0, 0.5, 0.0]) + 0.3
    y = np.where(rng.random(200) < 1 / (1 + np.exp(-logits)), 1.0, -1.0)
    return X, y


def _erm(X, y):
    clf = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(X, y)
    coef, b = clf.coef_.ravel(), float(clf.intercept_[0])
    return coef, b, float(np.logaddexp(0, -y * (X @ coef + b)).mean())


@pytest.mark.parametrize("formulation,solver", [("wasserstein", "lbfgs"),
                                                ("wasserstein", "CLARABEL"),
                                                ("chi2", "lbfgs"), ("chi2", "CLARABEL")])
def test_radius_zero_is_unregularized_logistic_regression(data, formulation, solver) -> None:
    X, y = data
    coef, b, obj = _erm(X, y)
    fit = fit_linear_dro(X, y, formulation=formulation, spec=LOGISTIC, radius=0.0, solver=solver)
    assert fit.objective == pytest.approx(obj, rel=1e-8)
    np.testing.assert_allclose(fit.coef, coef, atol=1e-5)
    assert fit.intercept == pytest.approx(b, abs=1e-5)


def test_chi2_tends_to_erm_as_radius_shrinks(data) -> None:
    # 0 ≤ value − ERM ≤ sqrt(ρ·Var ℓ(θ_ERM)), since sup_q qᵀℓ ≤ mean + sqrt(ρ Var) at θ_ERM.
    X, y = data
    coef, b, obj = _erm(X, y)
    sd = float(np.logaddexp(0, -y * (X @ coef + b)).std())
    for r in (1e-2, 1e-4, 1e-6, 1e-8):
        gap = fit_linear_dro(X, y, formulation="chi2", spec=LOGISTIC, radius=r).objective - obj
        assert -1e-10 <= gap <= math.sqrt(r) * sd * (1 + 1e-6)


@pytest.mark.parametrize("norm,dual", [(2, 2), (math.inf, 1), (1, math.inf)])
def test_kappa_inf_equals_norm_regularized_closed_form(data, norm, dual) -> None:
    X, y = data
    w, b = cp.Variable(4), cp.Variable()
    reg = cp.Problem(cp.Minimize(cp.sum(cp.logistic(-cp.multiply(y, X @ w + b))) / 200
                                 + 0.2 * cp.norm(w, dual)))
    reg.solve(solver="CLARABEL")
    from dro._validation import dual_norm

    fit = fit_linear_dro(X, y, formulation="wasserstein", spec=LOGISTIC, radius=0.2,
                         dual_p=dual_norm(norm))
    assert fit.objective == pytest.approx(reg.value, rel=1e-6)


@pytest.mark.parametrize("spec", [LOGISTIC, HINGE])
def test_huge_kappa_reformulation_equals_kappa_inf(data, spec) -> None:
    X, y = data
    inf = fit_linear_dro(X, y, formulation="wasserstein", spec=spec, radius=0.1,
                         solver="CLARABEL")
    big = fit_linear_dro(X, y, formulation="wasserstein", spec=spec, radius=0.1, kappa=1e4)
    small = fit_linear_dro(X, y, formulation="wasserstein", spec=spec, radius=0.1, kappa=0.5)
    assert big.objective == pytest.approx(inf.objective, rel=1e-6)
    assert small.objective > inf.objective + 1e-3  # cheap label flips add risk


@pytest.mark.parametrize("spec", [LOGISTIC, HINGE])
@pytest.mark.parametrize("kappa", [0.3, 1.0, 5.0])
def test_finite_kappa_dual_equals_brute_force_primal(data, spec, kappa) -> None:
    # At a fixed θ the worst case flips mass f_i ≤ 1/n of each sample (cost κ per unit) and
    # spends the remaining budget moving x, which pays ‖θ‖_* per unit in the limit: an LP.
    X, y = data[0][:25], data[1][:25]
    n, eps = 25, 0.1
    coef, b = np.array([0.8, -0.5, 0.3, 0.1]), 0.2
    keep, _ = loss_and_derivative(spec, X @ coef + b, y)
    flip, _ = loss_and_derivative(spec, X @ coef + b, -y)
    tn = float(np.linalg.norm(coef))
    res = linprog(-(flip - keep - kappa * tn), A_ub=[np.full(n, kappa)], b_ub=[eps],
                  bounds=[(0, 1 / n)] * n, method="highs")
    primal = keep.mean() + eps * tn - res.fun
    dual = wasserstein_objective(X, y, coef, b, spec, radius=eps, dual_p=2.0, kappa=kappa)
    assert dual == pytest.approx(primal, rel=1e-9)


def test_radius_sweep_reuses_dpp_program_and_is_monotone(data) -> None:
    X, y = data
    radii = [0.0, 0.01, 0.05, 0.1, 0.3]
    for prog in (wasserstein_program(X, y, HINGE, dual_p=2.0, kappa=1.0, fit_intercept=True),
                 chi2_program(X, y, LOGISTIC, fit_intercept=True)):
        assert prog.problem.is_dcp(dpp=True)
        values = [r.value for r in prog.sweep(radii)]
        assert all(b > a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("formulation", ["wasserstein", "chi2"])
def test_structured_solver_agrees_with_clarabel(data, formulation) -> None:
    X, y = data
    for dual in ([2.0, 1.0] if formulation == "wasserstein" else [2.0]):
        kw = dict(formulation=formulation, spec=LOGISTIC, radius=0.1, dual_p=dual)
        fast = fit_linear_dro(X, y, solver="lbfgs", **kw)
        conic = fit_linear_dro(X, y, solver="CLARABEL", **kw)
        assert fast.objective == pytest.approx(conic.objective, rel=1e-7)


@pytest.mark.parametrize("loss", ["absolute", "huber", "squared"])
def test_regression_closed_forms(loss) -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(80)
    spec = loss_spec("regression", loss)
    fit = fit_linear_dro(X, y, formulation="wasserstein", spec=spec, radius=0.1)
    conic = fit_linear_dro(X, y, formulation="wasserstein", spec=spec, radius=0.1,
                           solver="CLARABEL")
    assert fit.objective == pytest.approx(conic.objective, rel=1e-6)
    r = y - X @ fit.coef - fit.intercept
    tn = np.linalg.norm(fit.coef)
    closed = {"absolute": np.abs(r).mean() + 0.1 * tn,
              "huber": np.where(np.abs(r) <= 1, r * r / 2, np.abs(r) - 0.5).mean() + 0.1 * tn,
              "squared": (np.sqrt(np.mean(r * r)) + 0.1 * tn) ** 2}[loss]
    assert fit.objective == pytest.approx(closed, rel=1e-10)
    if loss == "squared":
        with pytest.raises(InvalidParameterError, match="kappa"):
            fit_linear_dro(X, y, formulation="wasserstein", spec=spec, radius=0.1, kappa=2.0)


def test_solver_that_stops_early_raises(data) -> None:
    X, y = data
    prog = chi2_program(X, y, LOGISTIC, fit_intercept=True)
    with pytest.warns(UserWarning), pytest.raises(SolverError, match="status"):
        prog.solve(0.1, solver="CLARABEL", max_iter=2)


def test_unknown_solver_and_lbfgs_on_hinge_are_rejected(data) -> None:
    X, y = data
    with pytest.raises(InvalidParameterError, match="solver='nope'"):
        fit_linear_dro(X, y, formulation="chi2", spec=LOGISTIC, radius=0.1, solver="nope")
    with pytest.raises(InvalidParameterError, match="lbfgs"):
        fit_linear_dro(X, y, formulation="chi2", spec=HINGE, radius=0.1, solver="lbfgs")
