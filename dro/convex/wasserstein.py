"""Type-1 Wasserstein DRO for linear models: its program and exact objective live in
dro/sets/wasserstein.py (the set's one home); these names stay importable from here."""

from __future__ import annotations

from dro.sets.wasserstein import wasserstein_objective, wasserstein_program

__all__ = ["wasserstein_objective", "wasserstein_program"]
