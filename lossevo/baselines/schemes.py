"""Named training schemes for `lossevo compare`, with their papers' recommended settings.

`build_scheme("sam", rho=0.1)` returns a picklable frozen scheme; pass it as
`evaluate_many(losses, task, scheme=...)` and every candidate loss is trained with it as its
base per-sample loss, on the same instances as plain training (paired comparisons).
`scheme.applies_to(task)` says why a scheme cannot run on a task (None when it can).
`SCHEME_TUNING_GRIDS` declares, per scheme, the few values of its main hyperparameter that a
fair tuning on validation may try (`scheme_grid_points`). docs/baselines.md ("Training
schemes") describes each scheme, its adaptation here and where its grid comes from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lossevo.baselines.scheme_base import BaselineScheme, attack_epsilon
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

__all__ = ["RELATIVE_GRIDS", "SCHEMES", "SCHEME_TUNING_GRIDS", "BaselineScheme", "build_scheme",
           "scheme_class", "scheme_grid_points"]

_REGISTRY: dict[str, type[BaselineScheme]] = {
    cls.name: cls
    for cls in (
        EarlyLearningRegularization, SelfAdaptiveTraining, ClassWeightedERM, Chi2DRO, CVaRDRO,
        WassersteinDRO, GroupDRO, AdversarialFGSM, AdversarialPGD, SharpnessAwareMinimization,
        MaxUp, Mixup, Cutmix, Cutout,
    )
}
SCHEMES: tuple[str, ...] = tuple(_REGISTRY)

# Per scheme, the values of its main hyperparameter a fair tuning on validation may try: at
# most 4, the default always among them, every other parameter at its default. Sources and
# reasons: docs/baselines.md ("Tuning grids of the schemes").
SCHEME_TUNING_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "elr": {"lam": (1.0, 3.0, 5.0, 7.0)},
    "sat": {"warmup": (0.1, 0.2, 0.3, 0.5)},
    "cw_erm": {},
    "chi2_dro": {"radius": (0.5, 1.0, 2.0, 4.0)},
    "cvar_dro": {"alpha": (0.05, 0.1, 0.2, 0.5)},
    "wasserstein_dro": {"gamma": (0.5, 1.0, 2.0, 4.0)},
    "group_dro": {"eta": (0.001, 0.01, 0.1, 1.0)},
    "adv_fgsm": {"epsilon": (0.25, 0.5, 1.0, 2.0)},
    "adv_pgd": {"epsilon": (0.25, 0.5, 1.0, 2.0)},
    "sam": {"rho": (0.02, 0.05, 0.1, 0.2)},
    "maxup": {"m": (2, 4, 8)},
    "mixup": {"alpha": (0.2, 1.0, 2.0, 8.0)},
    "cutmix": {"alpha": (0.25, 0.5, 1.0, 2.0)},
    "cutout": {"size": (2, 3, 4, 5)},
}
# Grids given as factors of the task-dependent default (the attack ε defaults to the task's
# first FGSM/PGD level, else DEFAULT_EPSILON), so the default is the factor 1.
RELATIVE_GRIDS: dict[str, str] = {"adv_fgsm": "epsilon", "adv_pgd": "epsilon"}


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


def scheme_grid_points(name: str, task: Any = None) -> list[dict[str, Any]]:
    """The points of the scheme's declared tuning grid, as `build_scheme` overrides; `[{}]`
    (the defaults alone) when nothing is tuned. Relative grids (`RELATIVE_GRIDS`) are resolved
    against `task` (None: no attack environment, ε = DEFAULT_EPSILON)."""
    scheme_class(name)
    grid = SCHEME_TUNING_GRIDS[name]
    if not grid:
        return [{}]
    (param, values), = grid.items()
    if RELATIVE_GRIDS.get(name) == param:
        base = attack_epsilon(None, task)
        values = tuple(float(f"{base * f:.6g}") for f in values)
    return [{param: v} for v in values]
