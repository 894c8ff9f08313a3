"""scikit-learn contract and fitted attributes of the DRO estimators."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from dro.errors import InvalidParameterError
from dro.estimators import (
    Chi2DROClassifier,
    Chi2DRORegressor,
    CVaRDROClassifier,
    WassersteinDROClassifier,
    WassersteinDRORegressor,
)

DEFAULTS = [WassersteinDROClassifier(), Chi2DROClassifier(), CVaRDROClassifier(),
            WassersteinDRORegressor(), Chi2DRORegressor()]
VARIANTS = [WassersteinDROClassifier(loss="hinge", kappa=1.0, norm=np.inf),
            Chi2DRORegressor(loss="huber"), WassersteinDRORegressor(loss="squared")]


@parametrize_with_checks(DEFAULTS)
def test_sklearn_contract(estimator, check) -> None:
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(VARIANTS)
def test_sklearn_contract_variants(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = np.where(X @ np.array([1.0, -1.0, 0.5]) + 0.8 * rng.standard_normal(120) > 0, "b", "a")
    return X, y


@pytest.mark.parametrize("est,ball", [(Chi2DROClassifier(radius=0.5), "chi2"),
                                      (CVaRDROClassifier(alpha=0.2), "cvar")])
def test_worst_case_weights_are_a_distribution_in_the_ball(binary, est, ball) -> None:
    X, y = binary
    est = clone(est).fit(X, y)
    q = est.worst_case_weights_
    assert q.shape == (120,) and q.min() >= 0 and q.sum() == pytest.approx(1.0)
    if ball == "chi2":
        assert np.mean((120 * q - 1) ** 2) <= 0.5 + 1e-8
    else:
        assert q.max() <= 1 / (0.2 * 120) + 1e-12
    margins = np.where(y == est.classes_[1], 1, -1) * est.decision_function(X)
    assert q @ np.logaddexp(0, -margins) == pytest.approx(est.robust_objective_, rel=1e-9)
    assert est.solver_status_.startswith("optimal")


def test_objective_monotone_in_radius_and_classes_kept(binary) -> None:
    X, y = binary
    objs = [WassersteinDROClassifier(radius=r).fit(X, y).robust_objective_
            for r in (0.0, 0.05, 0.2, 0.5)]
    assert all(b > a for a, b in itertools.pairwise(objs))
    est = WassersteinDROClassifier().fit(X, y)
    assert list(est.classes_) == ["a", "b"] and est.worst_case_weights_ is None
    assert set(est.predict(X)) <= {"a", "b"} and est.score(X, y) > 0.7
    assert not hasattr(WassersteinDROClassifier(loss="hinge"), "predict_proba")


@pytest.mark.parametrize("est,match", [
    (WassersteinDROClassifier(radius=-1), "radius=-1"),
    (WassersteinDROClassifier(norm=3), "norm=3"),
    (WassersteinDROClassifier(kappa=0), "kappa=0"),
    (WassersteinDROClassifier(loss="squared"), "loss='squared'"),
    (Chi2DROClassifier(solver="fast"), "solver='fast'"),
    (CVaRDROClassifier(alpha=2), "alpha=2"),
    (WassersteinDRORegressor(loss="logistic"), "loss='logistic'"),
])
def test_bad_hyperparameters_are_named(binary, est, match) -> None:
    X, y = binary
    with pytest.raises(InvalidParameterError, match=match):
        est.fit(X, y if est._task == "classification" else np.arange(120.0))


def test_multiclass_is_rejected_clearly(binary) -> None:
    X, _ = binary
    with pytest.raises(ValueError, match="Only binary classification"):
        Chi2DROClassifier().fit(X, np.arange(120) % 3)
