"""The contract between the packages: DRO risks consume per-sample losses from SymbolicLoss."""

import torch
import torch.nn.functional as F

import dro
from lossevo import SymbolicLoss

GCE = "div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7)"


def test_chi2_and_cvar_risks_over_an_evolved_loss():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 10, (64,), generator=gen)
    losses = SymbolicLoss(GCE, reduction="none")(logits, targets)
    assert losses.shape == (64,)
    chi2 = dro.chi2_risk(losses, 0.5)
    cvar = dro.cvar_risk(losses, 0.1)
    # worst-case risks sit between the mean and the max of the per-sample losses
    assert losses.mean() <= chi2 <= losses.max()
    assert losses.mean() <= cvar <= losses.max() + 1e-12
    (grad,) = torch.autograd.grad(chi2, logits)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_radius_zero_risk_is_the_mean_of_the_evolved_loss():
    logits = torch.randn(32, 3, dtype=torch.float64)
    targets = torch.randint(0, 3, (32,))
    ce = SymbolicLoss("mul(-1.0, mul(y_true, log(y_pred)))", reduction="none")(logits, targets)
    torch.testing.assert_close(dro.chi2_risk(ce, 0.0), ce.mean())
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets, reduction="none"),
                               atol=1e-5, rtol=0)
