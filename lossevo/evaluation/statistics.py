"""Robustness statistics across instances and the fitness vector built from them.

Metric names follow one pattern: `<metric>.<environment>.<statistic>`, where metric is
accuracy (classification), r2 or mse (regression), or sharpness; environment is an
`Environment.name` (e.g. `clean`, `gauss-0.1`, `fgsm-0.05`) or `worst_env` (per instance the
worst environment: lowest accuracy/R², highest MSE); statistic is mean, std (sample, ddof=1;
0.0 for a single instance), q90_q10 (spread between the 90th and 10th percentiles) or min. The
metric and statistic never contain dots; the environment may (parse with split('.', 1) and
rsplit('.', 1)).

One instance has no measurable spread: its std is 0.0 rather than NaN so that a fitness using
`-<metric>.worst_env.std` stays finite (and neutral: every candidate gets 0) in campaigns run
with instances = 1. Reports that show the spread to a reader blank it below two instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["STATISTICS", "fitness_vector", "summarize", "with_worst_env", "worst_fitness"]

STATISTICS = ("mean", "std", "q90_q10", "min")
_HIGHER_IS_BETTER = {"accuracy": True, "r2": True, "mse": False, "sharpness": False}


def with_worst_env(
    per_env: Mapping[str, Mapping[str, np.ndarray]],
) -> dict[str, dict[str, np.ndarray]]:
    """Add the per-instance worst environment to {metric: {env: values (instances,)}}."""
    out = {m: dict(envs) for m, envs in per_env.items()}
    for metric, envs in out.items():
        if metric == "sharpness" or not envs:
            continue
        stacked = np.stack(list(envs.values()))
        worst = stacked.min(0) if _HIGHER_IS_BETTER[metric] else stacked.max(0)
        envs["worst_env"] = worst
    return out


def summarize(per_instance: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Flat metric dict with every statistic of every (metric, environment)."""
    metrics: dict[str, float] = {}
    for metric, envs in per_instance.items():
        for env, values in envs.items():
            v = np.asarray(values, dtype=np.float64)
            q90, q10 = np.quantile(v, [0.9, 0.1])
            metrics[f"{metric}.{env}.mean"] = float(v.mean())
            metrics[f"{metric}.{env}.std"] = float(v.std(ddof=1)) if v.size > 1 else 0.0
            metrics[f"{metric}.{env}.q90_q10"] = float(q90 - q10)
            metrics[f"{metric}.{env}.min"] = float(v.min())
    return metrics


def fitness_vector(metrics: Mapping[str, float], spec: Sequence[str]) -> tuple[float, ...]:
    """Fitness components in `spec` order (to maximize); '-name' negates the metric."""
    values = []
    for name in spec:
        sign, key = (-1.0, name[1:]) if name.startswith("-") else (1.0, name)
        if key not in metrics:
            raise ValueError(f"fitness metric {key!r} not computed; available: {sorted(metrics)}")
        values.append(sign * metrics[key])
    return tuple(values)


def worst_fitness(spec: Sequence[str]) -> tuple[float, ...]:
    """What a rejected candidate gets: -inf in every component (all components are maximized)."""
    return tuple(float("-inf") for _ in spec)
