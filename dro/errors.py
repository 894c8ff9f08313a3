"""One error hierarchy for the ``dro`` package.

Bad input raises :class:`InvalidParameterError` (also a ``ValueError``, so scikit-learn's
checks recognise it); a solver that fails or cannot certify its answer raises
:class:`SolverError` instead of returning a wrong value.
"""

from __future__ import annotations

__all__ = ["DROError", "InvalidParameterError", "SolverError"]


class DROError(Exception):
    """Base class of every error raised on purpose by ``dro``."""


class InvalidParameterError(DROError, ValueError):
    """A hyperparameter or input has a value outside what is allowed."""


class SolverError(DROError, RuntimeError):
    """A solver failed, reported an inaccurate status, or its answer did not check out."""
