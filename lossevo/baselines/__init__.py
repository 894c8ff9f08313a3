"""Named baselines for `lossevo compare`: robust losses (`losses`, the 2021–2024 frontier in
`frontier`) and training schemes (`schemes`) with their official defaults, and per loss and per
scheme a small declared tuning grid (`TUNING_GRIDS`, `grid_points`; `SCHEME_TUNING_GRIDS`,
`scheme_grid_points`)."""

from lossevo.baselines.losses import (
    LOSSES,
    REGRESSION_LOSSES,
    REGRESSION_TUNING_GRIDS,
    TUNING_GRIDS,
    build_loss,
    grid_points,
    loss_defaults,
)
from lossevo.baselines.schemes import (
    SCHEME_TUNING_GRIDS,
    SCHEMES,
    build_scheme,
    scheme_grid_points,
)

__all__ = ["LOSSES", "REGRESSION_LOSSES", "REGRESSION_TUNING_GRIDS", "SCHEMES",
           "SCHEME_TUNING_GRIDS", "TUNING_GRIDS", "build_loss", "build_scheme", "grid_points",
           "loss_defaults", "scheme_grid_points"]
