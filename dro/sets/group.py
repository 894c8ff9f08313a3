"""Group DRO: the worst mixture of known groups, sup_{q ∈ Δ_G} Σ_g q_g·mean_{i ∈ g} ℓ_i.

Its worst case is the largest group mean (groups absent from the sample are ignored); the
online algorithm of Sagawa et al. (2020, Alg. 1) keeps group weights across batches instead:
q_g ← q_g·exp(η·mean_g ℓ) over the groups present, normalised, risk Σ_g q_g mean_g. Losses
have shape (..., n) and ``groups`` the same shape (leading dims: independent problems, e.g.
stacked models); group means are sums over a one-hot membership, differentiable in ℓ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dro._validation import check_nonneg
from dro.errors import InvalidParameterError, SolverError
from dro.sets._xp import NUMPY, TORCH, Ops
from dro.sets.base import AmbiguitySet, CvxpyPiece, as_losses, check_torch_losses

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["GROUP", "GroupSet"]


def _means(ops: Ops, losses: Any, groups: Any, n_groups: int) -> tuple[Any, Any]:
    """(mean loss per group, group present) along the last axis; one-hot by comparison
    rather than scatter, which also works under torch.func.vmap."""
    xp = ops.xp
    member = ops.as_dtype(groups[..., None] == ops.arange_like(groups, 0, n_groups), losses)
    counts = xp.sum(member, axis=-2)
    means = xp.sum(member * losses[..., None], axis=-2) / ops.clamp_min(counts, 1.0)
    return means, counts > 0


class GroupSet(AmbiguitySet):
    """Mixtures of ``n_groups`` groups; ``step_size`` is the online algorithm's η."""

    name = "group"
    size_name = "step_size"

    def check_size(self, value: object) -> float:
        return check_nonneg("step_size", value)

    def means(self, losses: Tensor, groups: Tensor, n_groups: int) -> tuple[Tensor, Tensor]:
        """(group means (..., G), present (..., G)): mean loss per group, 0 where absent."""
        import torch

        losses = check_torch_losses(losses)
        if (not isinstance(groups, torch.Tensor) or groups.shape != losses.shape
                or groups.is_floating_point()):
            raise InvalidParameterError("groups must be an integer tensor with the shape of losses")
        if int(n_groups) < 1 or bool(((groups < 0) | (groups >= n_groups)).any()):
            raise InvalidParameterError(f"groups must lie in [0, n_groups={n_groups})")
        return _means(TORCH, losses, groups, int(n_groups))

    def risk(self, losses: Tensor, groups: Tensor, n_groups: int) -> Tensor:
        """The worst present group's mean loss, shape (...)."""
        import torch

        means, present = self.means(losses, groups, n_groups)
        return torch.where(present, means, -torch.inf).amax(-1)

    def online_step(self, q: Tensor, losses: Tensor, groups: Tensor, step_size: float
                    ) -> tuple[Tensor, Tensor]:
        """One step of Sagawa et al.'s algorithm for group weights q (..., G): returns
        (new q, risk (...)); q is updated without a graph, the risk is differentiable."""
        import torch

        eta = self.check_size(step_size)
        means, present = self.means(losses, groups, q.shape[-1])
        with torch.no_grad():
            q = q.to(device=losses.device, dtype=losses.dtype)
            q = q * torch.exp(eta * means.detach() * present)
            q = q / q.sum(-1, keepdim=True)
        return q, (q * means).sum(-1)

    def worst_case(self, losses: np.ndarray, groups: np.ndarray, n_groups: int
                   ) -> tuple[float, np.ndarray]:
        """(largest group mean, sample weights q): q uniform on the worst group's samples."""
        v = as_losses(losses)
        g = np.asarray(groups)
        if g.shape != v.shape or g.dtype.kind not in "iu" or g.min() < 0 or g.max() >= n_groups:
            raise InvalidParameterError(
                f"groups must be integers in [0, n_groups={n_groups}) with the shape of losses")
        means, present = _means(NUMPY, v, g, int(n_groups))
        worst = int(np.argmax(np.where(present, means, -np.inf)))
        q = (g == worst).astype(float)
        return float(means[worst]), q / q.sum()

    def cvxpy_piece(self, ell: object, groups: np.ndarray, n_groups: int) -> CvxpyPiece:
        """min t subject to t ≥ mean_g ℓ for each present group; the duals are the group
        weights q_g. There is no size: group DRO has no radius, so ``parameter`` is None."""
        import cvxpy as cp

        groups = np.asarray(groups)
        t = cp.Variable()
        cons = [cp.sum(ell[np.flatnonzero(groups == k)]) / np.sum(groups == k) <= t
                for k in range(int(n_groups)) if np.any(groups == k)]
        return CvxpyPiece(t, cons, cons, None)

    def primal_cvxpy(self, losses: np.ndarray, groups: np.ndarray, n_groups: int,
                     solver: str = "CLARABEL") -> float:
        """The worst mixture of the groups by a generic solver (a brute-force check)."""
        import cvxpy as cp

        v = as_losses(losses)
        piece = self.cvxpy_piece(cp.Constant(v), groups, n_groups)
        prob = cp.Problem(cp.Minimize(piece.objective), piece.constraints)
        prob.solve(solver=solver)
        if prob.status != cp.OPTIMAL:
            raise SolverError(f"group primal: {solver} returned status {prob.status!r}")
        return float(prob.value)


GROUP = GroupSet()
