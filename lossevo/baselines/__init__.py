"""Named baselines for `lossevo compare`: robust losses (`losses`) and training schemes
(`schemes`) with their papers' recommended hyperparameters."""

from lossevo.baselines.losses import LOSSES, REGRESSION_LOSSES, build_loss, loss_defaults
from lossevo.baselines.schemes import SCHEMES, build_scheme

__all__ = ["LOSSES", "REGRESSION_LOSSES", "SCHEMES", "build_loss", "build_scheme",
           "loss_defaults"]
