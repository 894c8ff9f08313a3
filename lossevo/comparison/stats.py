"""Statistics of a comparison: paired Wilcoxon tests over instances, ranks across tasks.

Contenders share instances (common random numbers), so instance k of two contenders differs
only by the loss or scheme: the paired signed-rank test on per-instance worst-environment
scores is the right test, and with n instances its smallest possible two-sided p-value is
2 / 2**n (0.125 at n = 4, 0.0078 at n = 8): few instances can never look "significant".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["average_ranks", "min_wilcoxon_p", "task_ranks", "wilcoxon_p"]


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can give with n pairs."""
    return 2.0 / 2.0**n


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired Wilcoxon signed-rank p-value of a vs b; None without pairs.

    All-zero differences (identical scores on every instance) give p = 1: no evidence of a
    difference. Zero differences are otherwise dropped (Wilcoxon's convention).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal lengths, got {x.size} and {y.size}")
    if x.size == 0:
        return None
    d = x - y
    if np.all(d == 0):
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


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
