"""Named training schemes for `lossevo compare`, with their papers' recommended settings.

`build_scheme("sam", rho=0.1)` returns a picklable frozen scheme; pass it as
`evaluate_many(losses, task, scheme=...)` and every candidate loss is trained with it as its
base per-sample loss, on the same instances as plain training (paired comparisons).
`scheme.applies_to(task)` says why a scheme cannot run on a task (None when it can).
docs/baselines.md ("Training schemes") describes each scheme and its adaptation here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lossevo.baselines.scheme_base import BaselineScheme
from lossevo.baselines.scheme_inputs import (
    AdversarialFGSM,
    AdversarialPGD,
    Cutmix,
    Cutout,
    MaxUp,
    Mixup,
    WassersteinDRO,
)
from lossevo.baselines.scheme_weighting import (
    Chi2DRO,
    ClassWeightedERM,
    CVaRDRO,
    EarlyLearningRegularization,
    GroupDRO,
    SelfAdaptiveTraining,
    SharpnessAwareMinimization,
)

__all__ = ["SCHEMES", "BaselineScheme", "build_scheme", "scheme_class"]

_REGISTRY: dict[str, type[BaselineScheme]] = {
    cls.name: cls
    for cls in (
        EarlyLearningRegularization, SelfAdaptiveTraining, ClassWeightedERM, Chi2DRO, CVaRDRO,
        WassersteinDRO, GroupDRO, AdversarialFGSM, AdversarialPGD, SharpnessAwareMinimization,
        MaxUp, Mixup, Cutmix, Cutout,
    )
}
SCHEMES: tuple[str, ...] = tuple(_REGISTRY)


def scheme_class(name: str) -> type[BaselineScheme]:
    """The class of a named scheme (its docstring cites the paper)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown scheme {name!r}; allowed: {', '.join(SCHEMES)}")
    return _REGISTRY[name]


def build_scheme(name: str, **params: Any) -> BaselineScheme:
    """The scheme `name` with its defaults, overridden by `params` (checked: unknown names and
    bad values raise ValueError naming them and what is allowed)."""
    cls = scheme_class(name)
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in params:
        if key not in allowed:
            raise ValueError(f"unknown parameter {key!r} for scheme {name!r}; allowed: "
                             f"{', '.join(allowed) or 'none'}")
    return cls(**params)
