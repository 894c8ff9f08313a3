"""Ambiguity sets, one file each, and the one registry every solver and risk looks them up in.

A set file holds its cvxpy program piece, its exact worst case and its batched torch form
(see dro/sets/base.py for the interfaces). Adding a set is its file plus one line in
``REGISTRY`` (name → "module:object", imported on first lookup); docs/dro.md walks through
KL as the example.
"""

from __future__ import annotations

import importlib

from dro.errors import InvalidParameterError
from dro.sets.base import AmbiguitySet, LinearModelSet
from dro.sets.reweighting import ReweightingSet

__all__ = ["REGISTRY", "AmbiguitySet", "LinearModelSet", "ReweightingSet", "get_set",
           "set_names"]

REGISTRY: dict[str, str] = {
    "chi2": "dro.sets.chi2:CHI2",
    "cvar": "dro.sets.cvar:CVAR",
    "kl": "dro.sets.kl:KL",
    "wasserstein": "dro.sets.wasserstein:WASSERSTEIN",
    "group": "dro.sets.group:GROUP",
}


def _load(name: str) -> AmbiguitySet:
    module, obj = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), obj)


def set_names(kind: type[AmbiguitySet] = AmbiguitySet) -> tuple[str, ...]:
    """Names of the registered sets that are a ``kind`` (e.g. LinearModelSet)."""
    return tuple(name for name in REGISTRY if isinstance(_load(name), kind))


def get_set(name: object, kind: type[AmbiguitySet] = AmbiguitySet, *,
            what: str = "ambiguity") -> AmbiguitySet:
    """The set registered as ``name``; it must be a ``kind`` (what the caller needs of it).

    Raises InvalidParameterError naming the bad value (as ``what=...``) and the names allowed.
    """
    found = _load(name) if isinstance(name, str) and name in REGISTRY else None
    if found is None or not isinstance(found, kind):
        raise InvalidParameterError(
            f"{what}={name!r} is not allowed; choose one of {set_names(kind)}"
        )
    return found
