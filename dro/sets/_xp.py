"""The few array operations whose spelling differs between numpy and torch.

A set writes its worst case once, against ``ops.xp`` (the numpy or the torch module: both
take ``axis=``/``keepdims=`` and share exp, log, sqrt, where, cumsum, ...) and these helpers.
The numpy form then runs as plain numpy, with no torch import and no torch thread pool (on a
busy machine a torch call on a small array can wait milliseconds for its worker threads),
and the torch form runs batched on any device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NUMPY", "TORCH", "Ops"]


class Ops:
    """numpy's spelling; :class:`_TorchOps` overrides what torch spells differently."""

    @property
    def xp(self) -> Any:
        return np

    def sort_desc(self, x: Any) -> Any:
        return -np.sort(-x, axis=-1)

    def argsort_desc(self, x: Any) -> Any:
        """Descending order along the last axis; ties keep the lower index first."""
        return np.argsort(-x, axis=-1, kind="stable")

    def take(self, x: Any, idx: Any) -> Any:
        return np.take_along_axis(x, idx, axis=-1)

    def put(self, like: Any, idx: Any, values: Any) -> Any:
        """Zeros shaped like ``like`` with ``values`` (broadcast) placed at ``idx``."""
        out = np.zeros_like(like)
        np.put_along_axis(out, idx, np.broadcast_to(values, like.shape), axis=-1)
        return out

    def logsumexp(self, x: Any) -> Any:
        top = np.max(x, axis=-1, keepdims=True)
        return top + np.log(np.sum(np.exp(x - top), axis=-1, keepdims=True))

    def clamp_min(self, x: Any, low: float) -> Any:
        return np.maximum(x, low)

    def arange_like(self, x: Any, start: float, stop: float) -> Any:
        return np.arange(start, stop, dtype=x.dtype)

    def as_dtype(self, x: Any, like: Any) -> Any:
        return x.astype(like.dtype)

    def vector(self, values: list[float], like: Any) -> Any:
        return np.asarray(values, dtype=like.dtype)


class _TorchOps(Ops):
    @property
    def xp(self) -> Any:
        import torch

        return torch

    def sort_desc(self, x: Any) -> Any:
        return self.xp.sort(x, dim=-1, descending=True).values

    def argsort_desc(self, x: Any) -> Any:
        return self.xp.argsort(x, dim=-1, descending=True, stable=True)

    def take(self, x: Any, idx: Any) -> Any:
        return self.xp.take_along_dim(x, idx, dim=-1)

    def put(self, like: Any, idx: Any, values: Any) -> Any:
        return self.xp.zeros_like(like).scatter(-1, idx, values.expand_as(like))

    def logsumexp(self, x: Any) -> Any:
        return self.xp.logsumexp(x, dim=-1, keepdim=True)

    def clamp_min(self, x: Any, low: float) -> Any:
        return x.clamp_min(low)

    def arange_like(self, x: Any, start: float, stop: float) -> Any:
        return self.xp.arange(start, stop, dtype=x.dtype, device=x.device)

    def as_dtype(self, x: Any, like: Any) -> Any:
        return x.to(like.dtype)

    def vector(self, values: list[float], like: Any) -> Any:
        return self.xp.tensor(values, dtype=like.dtype, device=like.device)


NUMPY = Ops()
TORCH = _TorchOps()
