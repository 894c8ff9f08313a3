"""scikit-learn estimators for linear DRO models over the sets of ``dro.sets``.

``DROClassifier`` / ``DRORegressor`` take any reweighting set of the registry by name
(``ambiguity='chi2' | 'cvar' | 'kl' | ...``), so a new set needs no new estimator; the named
classes (Wasserstein, χ², CVaR) fix the set. Constructors only store parameters; ``fit``
validates them (the set reads the hyperparameters it needs) and the data, solves through
:func:`dro.convex.solve.fit_linear_dro` and sets the fitted attributes (ending in ``_``):
``coef_``, ``intercept_``, ``robust_objective_``, ``worst_case_weights_`` (None for
Wasserstein, whose worst case moves samples instead of reweighting them), ``solver_status_``
and ``solver_`` ('closed form' where θ = 0 is provably optimal). The Wasserstein ``radius``
and ``kappa`` are in feature units; docs/dro.md says how they map onto the standardized
features the solvers see.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from dro._validation import check_nonneg
from dro.convex.losses import loss_spec
from dro.convex.solve import fit_linear_dro
from dro.errors import InvalidParameterError
from dro.sets import LinearModelSet, ReweightingSet, get_set

__all__ = [
    "CVaRDROClassifier",
    "Chi2DROClassifier",
    "Chi2DRORegressor",
    "DROClassifier",
    "DRORegressor",
    "WassersteinDROClassifier",
    "WassersteinDRORegressor",
]


class _LinearDRO(BaseEstimator):
    """Shared fit logic; subclasses name the set (``_formulation``) and the task."""

    _formulation = "wasserstein"
    _task = "classification"

    def _ambiguity(self) -> LinearModelSet:
        return get_set(self._formulation, LinearModelSet, what="formulation")  # type: ignore[return-value]

    def _settings(self) -> dict:
        """Validated solver settings from the hyperparameters (never mutates them)."""
        fit_intercept = self.fit_intercept
        if not isinstance(fit_intercept, bool | np.bool_):
            raise InvalidParameterError(f"fit_intercept={fit_intercept!r} must be True or False")
        spec = loss_spec(self._task, self.loss, check_nonneg("delta", getattr(self, "delta", 1)))
        if self._task == "regression" and spec.name == "huber" and spec.delta == 0:
            raise InvalidParameterError("delta=0 is not allowed; the Huber threshold must be > 0")
        ball = self._ambiguity()
        out = {"formulation": ball.name, "spec": spec, "fit_intercept": bool(fit_intercept),
               "solver": getattr(self, "solver", None)}
        out.update(ball.settings(self.get_params(deep=False)))  # radius, alpha, norm, ...
        return out

    def _solve(self, X: np.ndarray, y: np.ndarray) -> None:
        fit = fit_linear_dro(X, y, **self._settings())
        self.coef_ = fit.coef
        self.intercept_ = fit.intercept
        self.robust_objective_ = fit.objective
        self.worst_case_weights_ = fit.weights
        self.solver_status_ = fit.status
        self.solver_ = fit.solver

    def _decision(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_


class _Classifier(ClassifierMixin, _LinearDRO):
    """Binary linear classifier: classes_[1] is coded +1, classes_[0] is coded −1."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y):
        """Fit the robust linear classifier; returns self."""
        settings = self._settings()  # fail on bad hyperparameters before touching data
        del settings
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes = unique_labels(y)
        if classes.size != 2:
            raise InvalidParameterError(
                f"Only binary classification is supported by {type(self).__name__}: y has "
                f"{classes.size} class(es) {classes.tolist()[:5]}, need exactly 2 classes"
            )
        self.classes_ = classes
        self._solve(X, np.where(y == classes[1], 1.0, -1.0))
        return self

    def decision_function(self, X) -> np.ndarray:
        """Linear score θᵀx + b; positive means classes_[1]."""
        return self._decision(X)

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)  # checks fitted before classes_ is read
        return self.classes_[(scores > 0).astype(int)]

    @available_if(lambda self: self.loss == "logistic")
    def predict_proba(self, X) -> np.ndarray:
        """Logistic probabilities (only for loss='logistic')."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -500, 500)))
        return np.column_stack([1.0 - p, p])


class _Regressor(RegressorMixin, _LinearDRO):
    _task = "regression"

    def fit(self, X, y):
        """Fit the robust linear regressor; returns self."""
        self._settings()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._solve(X, np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X) -> np.ndarray:
        return self._decision(X)


class WassersteinDROClassifier(_Classifier):
    """Worst-case expected loss over a type-1 Wasserstein ball of the given ``radius``.

    Cost ‖x − x′‖_norm + κ·1[y ≠ y′]. κ = inf: mean loss + radius·‖θ‖_* (dual norm);
    finite κ: the label-flip reformulation of Shafieezadeh-Abadeh, Esfahani & Kuhn (2015).
    ``solver``: None (fastest exact), 'lbfgs', 'torch', 'cvxpy' or a cvxpy solver name.
    """

    _formulation = "wasserstein"

    def __init__(self, loss="logistic", radius=0.1, norm=2, kappa=math.inf,
                 fit_intercept=True, solver=None):
        self.loss = loss
        self.radius = radius
        self.norm = norm
        self.kappa = kappa
        self.fit_intercept = fit_intercept
        self.solver = solver


class WassersteinDRORegressor(_Regressor):
    """Wasserstein DRO regression, cost ‖x − x′‖_norm + κ|y − y′|.

    Lipschitz losses (absolute, huber): mean loss + radius·L·max(‖θ‖_*, 1/κ). For 'squared'
    ``radius`` is a type-2 radius: (sqrt(MSE) + radius·‖θ‖_*)², κ must be inf.
    """

    _formulation = "wasserstein"

    def __init__(self, loss="absolute", radius=0.1, norm=2, kappa=math.inf,
                 fit_intercept=True, solver=None, delta=1.0):
        self.loss = loss
        self.radius = radius
        self.norm = norm
        self.kappa = kappa
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.delta = delta


class Chi2DROClassifier(_Classifier):
    """Worst case over Q with E_P̂[(dQ/dP̂ − 1)²] ≤ radius (no ½; ρ_half = radius/2)."""

    _formulation = "chi2"

    def __init__(self, loss="logistic", radius=0.1, fit_intercept=True, solver=None):
        self.loss = loss
        self.radius = radius
        self.fit_intercept = fit_intercept
        self.solver = solver


class Chi2DRORegressor(_Regressor):
    """χ² DRO regression (same ball as :class:`Chi2DROClassifier`)."""

    _formulation = "chi2"

    def __init__(self, loss="absolute", radius=0.1, fit_intercept=True, solver=None, delta=1.0):
        self.loss = loss
        self.radius = radius
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.delta = delta


class CVaRDROClassifier(_Classifier):
    """Mean loss of the worst ``alpha`` fraction of the training samples (CVaR_α)."""

    _formulation = "cvar"

    def __init__(self, alpha=0.1, loss="logistic", fit_intercept=True, solver=None):
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.solver = solver


class _AnySet:
    """Mixin: the set is the ``ambiguity`` hyperparameter, any reweighting set registered."""

    def _ambiguity(self) -> ReweightingSet:
        return get_set(self.ambiguity, ReweightingSet)  # type: ignore[attr-defined,return-value]


class DROClassifier(_AnySet, _Classifier):
    """Worst-case expected loss over the reweighting set named ``ambiguity`` (dro.sets).

    'chi2' and 'kl' read ``radius`` (χ²: E[(dQ/dP̂ − 1)²] ≤ radius; KL: KL(Q‖P̂) ≤ radius, in
    nats), 'cvar' reads ``alpha``; the other of the two is ignored. Wasserstein moves samples
    instead and has its own estimator (:class:`WassersteinDROClassifier`).
    """

    def __init__(self, ambiguity="chi2", loss="logistic", radius=0.1, alpha=0.1,
                 fit_intercept=True, solver=None):
        self.ambiguity = ambiguity
        self.loss = loss
        self.radius = radius
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver


class DRORegressor(_AnySet, _Regressor):
    """Regression over the reweighting set named ``ambiguity`` (as :class:`DROClassifier`)."""

    def __init__(self, ambiguity="chi2", loss="absolute", radius=0.1, alpha=0.1,
                 fit_intercept=True, solver=None, delta=1.0):
        self.ambiguity = ambiguity
        self.loss = loss
        self.radius = radius
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.delta = delta
