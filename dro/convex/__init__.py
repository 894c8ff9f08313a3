"""Exact convex DRO for linear models: cvxpy programs (radius as a Parameter), exact
worst-case evaluators, structured L-BFGS solvers and the certified dispatcher, which solves
on standardized features (scaling) and checks every answer (certify) before returning it."""

from dro.convex.chi2 import chi2_objective, chi2_program
from dro.convex.cvar import cvar_objective, cvar_program
from dro.convex.losses import loss_spec
from dro.convex.program import LinearDROProgram, ProgramResult
from dro.convex.solve import LinearDROFit, fit_linear_dro, robust_objective
from dro.convex.wasserstein import wasserstein_objective, wasserstein_program
from dro.convex.worst_case import (
    chi2_primal_cvxpy,
    chi2_worst_case,
    cvar_primal_cvxpy,
    cvar_worst_case,
)

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
