"""Early stopping on the validation split, per model, inside one batched training run.

Nobody who trains with cross-entropy on noisy labels reports the last epoch: they keep the
epoch that scored best on their (noisy) validation set. This keeps, for every stacked model,
the parameters of its best epoch by clean-environment validation accuracy (regression: the
lowest validation MSE, in the standardized units the model trains in). The choice reads only
validation, so a report on test stays honest.
"""

from __future__ import annotations

import torch

from lossevo.evaluation.models import Params, stacked_forward

__all__ = ["EarlyStopper"]


class EarlyStopper:
    """``on_epoch`` hook for :func:`lossevo.evaluation.training.train_models` (see the module
    doc)."""

    def __init__(self, module: torch.nn.Module, params: Params, x_val: torch.Tensor,
                 y_val: torch.Tensor, regression: bool) -> None:
        self.module, self.x, self.y, self.regression = module, x_val, y_val, regression
        self.best = {k: v.detach().clone() for k, v in params.items()}
        n_models = next(iter(params.values())).shape[0]
        self.score = torch.full((n_models,), float("-inf"), dtype=torch.float64,
                                device=x_val.device)
        self.epoch = torch.zeros(n_models, dtype=torch.long)  # 1-based; 0: never improved

    def __call__(self, epoch: int, params: Params) -> None:
        with torch.no_grad():
            out = stacked_forward(self.module, params, self.x, shared=True)
            if self.regression:
                score = -((out.squeeze(-1).double() - self.y.double()) ** 2).mean(1)
            else:
                score = (out.argmax(-1) == self.y).double().mean(1)
            score = torch.nan_to_num(score, nan=float("-inf"))
            better = score > self.score  # ties keep the earlier epoch
            if not bool(better.any()):
                return
            self.score = torch.where(better, score, self.score)
            self.epoch[better.cpu()] = epoch + 1
            for k, v in params.items():
                self.best[k][better] = v[better]
