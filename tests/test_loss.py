import pickle

import pytest
import torch
import torch.nn.functional as F

from lossevo import SymbolicLoss

CE = "mul(-1.0, mul(y_true, log(y_pred)))"
BCE = "mul(-1.0, add(mul(y_true, log(y_pred)), mul(sub(1.0, y_true), log(sub(1.0, y_pred)))))"
MSE = "mul(sub(y_pred, y_true), sub(y_pred, y_true))"
GEN = torch.Generator().manual_seed(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_expression_equals_torch(dtype):
    logits = (0.3 * torch.randn(256, 3, generator=GEN)).to(dtype)  # probabilities near 1/3
    targets = torch.randint(0, 3, (256,), generator=GEN)
    ours = SymbolicLoss(CE)(logits, targets)
    ref = F.cross_entropy(logits, targets)
    assert abs(ours.item() - ref.item()) < 1e-6
    per = SymbolicLoss(CE, reduction="none")(logits, targets)
    assert per.shape == (256,)
    torch.testing.assert_close(per, F.cross_entropy(logits, targets, reduction="none"),
                               atol=1e-6, rtol=0)


def test_binary_and_regression_kinds():
    logits = 0.5 * torch.randn(100, 1, generator=GEN, dtype=torch.float64)
    targets = (torch.rand(100, generator=GEN) < 0.5).to(torch.float64)
    ours = SymbolicLoss(BCE, kind="binary")(logits, targets)
    ref = F.binary_cross_entropy_with_logits(logits.squeeze(1), targets)
    assert abs(ours.item() - ref.item()) < 1e-6
    pred, target = torch.randn(50, generator=GEN), torch.randn(50, generator=GEN)
    torch.testing.assert_close(SymbolicLoss(MSE, kind="regression")(pred, target),
                               F.mse_loss(pred, target))


def test_gradients_flow_to_logits():
    logits = torch.randn(8, 10, generator=GEN, requires_grad=True)
    SymbolicLoss(CE)(logits, torch.arange(8)).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_vmap_over_stacked_models_equals_loop():
    loss = SymbolicLoss("mul(y_true, sub(1.0, y_pred))", reduction="mean")
    logits = torch.randn(4, 16, 10, generator=GEN)
    targets = torch.randint(0, 10, (16,), generator=GEN)
    batched = torch.func.vmap(loss, in_dims=(0, None))(logits, targets)
    torch.testing.assert_close(batched, torch.stack([loss(x, targets) for x in logits]))


def test_pickle_round_trip():
    loss = SymbolicLoss(CE, reduction="sum")
    clone = pickle.loads(pickle.dumps(loss))
    x, t = torch.randn(5, 4, generator=GEN), torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(clone(x, t), loss(x, t))
    assert "reduction='sum'" in repr(clone)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "multilabel"}, "unknown kind 'multilabel'; allowed: classification"),
        ({"reduction": "max"}, "unknown reduction 'max'; allowed: mean"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SymbolicLoss(CE, **kwargs)


def test_bad_expression():
    with pytest.raises(ValueError, match="position"):
        SymbolicLoss("mul(y_true, log(y_pred)")
