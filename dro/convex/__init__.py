"""Exact convex DRO for linear models: cvxpy programs (radius as a Parameter), exact
worst-case evaluators, structured L-BFGS solvers and the certified dispatcher, which solves
on standardized features (scaling) and checks every answer (certify) before returning it.

Each ambiguity set's own math lives in ``dro.sets``; this package holds what they share.
Names load lazily, so the set files can import ``dro.convex.losses`` without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "LinearDROFit",
    "LinearDROProgram",
    "ProgramResult",
    "chi2_objective",
    "chi2_primal_cvxpy",
    "chi2_program",
    "chi2_worst_case",
    "cvar_objective",
    "cvar_primal_cvxpy",
    "cvar_program",
    "cvar_worst_case",
    "fit_linear_dro",
    "loss_spec",
    "robust_objective",
    "wasserstein_objective",
    "wasserstein_program",
]

_WHERE = {
    "LinearDROFit": "dro.convex.solve",
    "LinearDROProgram": "dro.convex.program",
    "ProgramResult": "dro.convex.program",
    "chi2_objective": "dro.convex.chi2",
    "chi2_primal_cvxpy": "dro.convex.worst_case",
    "chi2_program": "dro.convex.chi2",
    "chi2_worst_case": "dro.convex.worst_case",
    "cvar_objective": "dro.convex.cvar",
    "cvar_primal_cvxpy": "dro.convex.worst_case",
    "cvar_program": "dro.convex.cvar",
    "cvar_worst_case": "dro.convex.worst_case",
    "fit_linear_dro": "dro.convex.solve",
    "loss_spec": "dro.convex.losses",
    "robust_objective": "dro.convex.solve",
    "wasserstein_objective": "dro.convex.wasserstein",
    "wasserstein_program": "dro.convex.wasserstein",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dro.convex' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
