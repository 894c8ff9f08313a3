"""Statistics of a comparison: paired Wilcoxon tests over instances, Holm's correction, the
mean paired difference with a bootstrap interval, ranks across tasks.

Contenders share instances (common random numbers), so instance k of two contenders differs
only by the loss or scheme: the paired signed-rank test on per-instance worst-environment
scores is the right test, and with n instances its smallest possible two-sided p-value is
2 / 2**n (0.125 at n = 4, 0.0078 at n = 8): few instances can never look "significant".

The Wilcoxon method is pinned here rather than left to scipy's default, which changed across
versions (exact vs normal approximation, how zeros and ties are handled):
- differences are rounded to a grid of 1e-12 × the largest |score| first, so float noise makes
  neither a non-zero difference nor a broken tie;
- zero differences are dropped (Wilcoxon's convention); all-zero differences give p = 1;
- n ≤ 50 non-zero differences without ties: `scipy.stats.wilcoxon(method="exact")`;
- n ≤ 50 with tied |differences|: the exact permutation distribution of the signed-rank sum
  over the observed mid-ranks (all 2**n sign patterns, counted by dynamic programming);
- n > 50: `scipy.stats.wilcoxon(method="approx", correction=True)` (normal approximation with
  tie-corrected variance and continuity correction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["BOOTSTRAP_LEVEL", "BOOTSTRAP_RESAMPLES", "EXACT_MAX_N", "average_ranks",
           "bootstrap_mean_ci", "holm", "min_wilcoxon_p", "task_ranks", "wilcoxon_p"]

EXACT_MAX_N = 50
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_LEVEL = 0.95


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can give with n pairs."""
    return 2.0 / 2.0**n


def _differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal lengths, got {x.size} and {y.size}")
    if x.size == 0:
        return x
    grid = 1e-12 * max(1.0, float(np.abs(x).max()), float(np.abs(y).max()))
    return np.round((x - y) / grid) * grid


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired Wilcoxon signed-rank p-value of a vs b; None without pairs.

    The method follows the rule in the module docstring, whatever the scipy version.
    """
    d = _differences(a, b)
    if d.size == 0:
        return None
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    from scipy.stats import rankdata, wilcoxon

    n = d.size
    tied = np.unique(np.abs(d)).size < n
    if n > EXACT_MAX_N:
        res = wilcoxon(d, zero_method="wilcox", correction=True, alternative="two-sided",
                       method="approx")
        return float(res.pvalue)
    if not tied:
        res = wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="exact")
        return float(res.pvalue)
    return _exact_tied_p(rankdata(np.abs(d)), d > 0)


def _exact_tied_p(ranks: np.ndarray, positive: np.ndarray) -> float:
    """Exact two-sided p of the positive-rank sum given mid-ranks: each of the 2**n sign
    patterns is equally likely under H0. Doubled mid-ranks are integers, so the distribution
    of the doubled sum is a convolution over an integer support."""
    r2 = np.rint(2 * ranks).astype(np.int64)
    dist = np.zeros(int(r2.sum()) + 1)
    dist[0] = 1.0
    for r in r2:  # each rank (≥ 1, so r ≥ 2) joins the sum or not, with probability 1/2
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:-r]
        dist = 0.5 * (dist + shifted)
    t = int(r2[positive].sum())
    lower, upper = dist[: t + 1].sum(), dist[t:].sum()
    return float(min(1.0, 2.0 * min(lower, upper)))


def holm(pvalues: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjustment over a family of p-values (None entries are not tested and
    stay None): sorted ascending, p_(i) becomes max_{j ≤ i} min(1, (m − j + 1) · p_(j))."""
    tested = sorted((p, k) for k, p in pvalues.items() if p is not None)
    m = len(tested)
    out: dict[str, float | None] = {k: None for k in pvalues}
    running = 0.0
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def bootstrap_mean_ci(d: Sequence[float], rng: np.random.Generator, *,
                      resamples: int = BOOTSTRAP_RESAMPLES,
                      level: float = BOOTSTRAP_LEVEL) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of `d` (instances resampled with
    replacement); (None, None) with fewer than two values. With few values the interval is
    too narrow: it never leaves the range of the observed differences."""
    x = np.asarray(d, dtype=np.float64)
    if x.size < 2:
        return None, None
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def task_ranks(scores: Mapping[str, float]) -> dict[str, float]:
    """Rank 1 = highest score; ties share the average rank."""
    from scipy.stats import rankdata

    labels = list(scores)
    ranks = rankdata([-scores[k] for k in labels], method="average")
    return {k: float(r) for k, r in zip(labels, ranks, strict=True)}


def average_ranks(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, tuple[float, int]]:
    """{contender: (mean rank over the tasks it was ranked on, number of those tasks)}."""
    collected: dict[str, list[float]] = {}
    for ranks in per_task.values():
        for label, r in ranks.items():
            collected.setdefault(label, []).append(r)
    return {k: (float(np.mean(v)), len(v)) for k, v in collected.items()}
