"""Parameter checks shared by the solvers and estimators (errors name the value and the choices)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from dro.errors import InvalidParameterError

__all__ = ["check_choice", "check_nonneg", "check_open_unit", "dual_norm"]


def check_choice(name: str, value: object, allowed: Iterable[object]) -> None:
    """Raise unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidParameterError(f"{name}={value!r} is not allowed; choose one of {allowed}")


def check_nonneg(name: str, value: object, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking it is a non-negative real (inf if allowed)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}={value!r} must be a non-negative number") from None
    if math.isnan(v) or v < 0 or (math.isinf(v) and not allow_inf):
        extra = " or inf" if allow_inf else " and finite"
        raise InvalidParameterError(f"{name}={value!r} must be >= 0{extra}")
    return v


def check_open_unit(name: str, value: object) -> float:
    """Return ``value`` as a float in (0, 1]."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}={value!r} must be a number in (0, 1]") from None
    if not 0.0 < v <= 1.0:
        raise InvalidParameterError(f"{name}={value!r} must be in (0, 1]")
    return v


def dual_norm(norm: object) -> float:
    """Dual exponent of the transport-cost norm: 1 ↔ inf, 2 ↔ 2."""
    if norm in (1, 2) and not isinstance(norm, bool):
        return {1: math.inf, 2: 2.0}[int(norm)]  # type: ignore[call-overload]
    if norm in ("inf", math.inf) or (isinstance(norm, float) and math.isinf(norm)):
        return 1.0
    raise InvalidParameterError(f"norm={norm!r} is not allowed; choose one of (1, 2, inf)")
