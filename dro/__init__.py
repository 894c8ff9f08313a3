"""dro: Wasserstein, χ², CVaR, KL and group distributionally robust optimization.

Exact convex solvers with scikit-learn estimators for linear models (``dro.estimators``,
``dro.convex``) and differentiable worst-case risks for deep models in torch (``dro.nn``),
all looking up the ambiguity sets of ``dro.sets`` (one file per set, one registry).
Names load lazily so ``import dro`` costs nothing (torch and cvxpy load on first use).

Note: the PyPI package ``dro`` (namkoong-lab) has the same import name; installing it
overwrites this one.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CVaRDROClassifier",
    "Chi2DROClassifier",
    "Chi2DRORegressor",
    "DROClassifier",
    "DROError",
    "DRORegressor",
    "GroupDRO",
    "InvalidParameterError",
    "SolverError",
    "WassersteinDROClassifier",
    "WassersteinDRORegressor",
    "chi2_risk",
    "cvar_risk",
    "fit_linear_dro",
    "group_dro_risk",
    "wasserstein_penalty_risk",
    "worst_case_risk",
    "worst_case_weights",
]

_WHERE = {
    "CVaRDROClassifier": "dro.estimators",
    "Chi2DROClassifier": "dro.estimators",
    "Chi2DRORegressor": "dro.estimators",
    "DROClassifier": "dro.estimators",
    "DRORegressor": "dro.estimators",
    "WassersteinDROClassifier": "dro.estimators",
    "WassersteinDRORegressor": "dro.estimators",
    "DROError": "dro.errors",
    "InvalidParameterError": "dro.errors",
    "SolverError": "dro.errors",
    "fit_linear_dro": "dro.convex.solve",
    "GroupDRO": "dro.nn",
    "chi2_risk": "dro.nn",
    "cvar_risk": "dro.nn",
    "group_dro_risk": "dro.nn",
    "wasserstein_penalty_risk": "dro.nn",
    "worst_case_risk": "dro.nn",
    "worst_case_weights": "dro.nn",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dro' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
