"""The rows of a comparison: per (contender, task) both headline scores with their statistics
against the reference, the chance row of each task, and ranks per score that leave out the
tasks nobody clearly learned.

Two headline scores, everywhere with the same names: ``clean`` (the clean test environment;
accuracy, or R² on regression) and ``worst_env`` (per instance the worst test environment,
then the mean over instances). Each gets its own reference (the configured baseline, else the
task's best non-evolved contender *by that score*), paired Wilcoxon p, Holm p, mean paired
difference with its bootstrap interval, rank within the task and average rank across tasks.

Floor: a task enters a score's average ranks only when at least one contender is *clearly
above chance* on it: the lower end of the 95 % percentile bootstrap interval of its mean over
instances (:func:`lossevo.comparison.stats.bootstrap_mean_ci`, seeded with the comparison's
seed) is above the chance row's value; with one instance, that single score. Left-out tasks
still show their within-task ranks, and compare.md lists them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lossevo.comparison.stats import (
    average_ranks,
    bootstrap_mean_ci,
    holm,
    task_ranks,
    wilcoxon_p,
)
from lossevo.evaluation.chance import CHANCE

__all__ = ["SCORES", "build_rows"]

SCORES = ("clean", "worst_env")  # the headline scores, in column order
Row = dict[str, Any]


def _clean_env(metrics: dict[str, float], metric: str) -> str:
    """'clean' when the task scores it, else the first environment (documented fallback)."""
    if f"{metric}.clean.mean" in metrics:
        return "clean"
    envs = [k[len(metric) + 1:].rsplit(".", 1)[0] for k in metrics if k.startswith(metric + ".")]
    return next(e for e in envs if e != "worst_env")


def _point_text(tuning: dict[str, Any] | None) -> str:
    if not tuning or tuning.get("chosen") is None:
        return ""
    from lossevo.comparison.tuning import point_text

    return point_text(tuning["chosen"])


def _result_row(res: dict[str, Any], evolved: bool, early: bool, seed: int) -> Row:
    m = res["metric"]
    stopped = res.get("stopped_epoch")
    row: Row = {"contender": res["contender"], "task": res["task"], "metric": m,
                "status": res["status"], "reason": res["reason"] or "",
                "seconds": res["seconds"], "evolved": evolved, "envs": {}, "instances": {},
                "early_stop": early, "tuning": res.get("tuning"),
                "tuned": _point_text(res.get("tuning")),
                "tuning_seconds": (res.get("tuning") or {}).get("seconds"),
                "stopped_epoch": float(np.mean(stopped)) if stopped else None}
    if res["status"] != "ok":
        return row
    met, per = res["metrics"], res["per_instance"][m]
    envs = {"clean": _clean_env(met, m), "worst_env": "worst_env"}
    for score, env in envs.items():
        for stat in ("mean", "std", "q90_q10", "min"):
            row[score if stat == "mean" else f"{score}_{stat}"] = met[f"{m}.{env}.{stat}"]
        values = list(per[env])
        row["instances"][score] = values
        if len(values) < 2:  # summarize's 0.0 is no measured spread
            row[f"{score}_std"] = None
        row[f"{score}_ci_low"], row[f"{score}_ci_high"] = bootstrap_mean_ci(
            values, np.random.default_rng(seed))
    row["envs"] = {e: met[f"{m}.{e}.mean"] for e in per if e != "worst_env"}
    return row


def _chance_row(task: str, chance: dict[str, Any]) -> Row:
    return {"contender": CHANCE, "task": task, "metric": chance["metric"], "status": CHANCE,
            "reason": "", "seconds": 0.0, "evolved": False, "envs": dict(chance["envs"]),
            "instances": {}, "early_stop": False, "tuning": None, "tuned": "",
            "tuning_seconds": None, "stopped_epoch": None, "clean": chance["clean"],
            "worst_env": chance["worst_env"], "predicts": chance["predicts"]}


def _reference(cfg: Any, ok: dict[str, Row], score: str) -> str | None:
    """The configured baseline, else the best non-evolved contender by `score` (first of
    ties); None when it did not finish."""
    if cfg.baseline is not None:
        return cfg.baseline if cfg.baseline in ok else None
    cands = [r for r in ok.values() if not r["evolved"]]
    best = max(cands, key=lambda r: r[score], default=None)
    return None if best is None else best["contender"]


def _paired(row: Row, ref: Row, score: str, seed: int) -> None:
    """Wilcoxon p and mean paired difference with its interval on `score`; a fresh generator
    from the comparison seed per pair, so an interval depends only on its two contenders."""
    b = np.asarray(ref["instances"][score], dtype=np.float64)
    a = (np.asarray(row["instances"][score], dtype=np.float64) if row["status"] == "ok"
         else np.full_like(b, row[score]))  # the chance row is the same on every instance
    d = a - b
    row[f"{score}_wilcoxon_p"] = wilcoxon_p(a, b)
    row[f"{score}_mean_diff"] = float(d.mean())
    row[f"{score}_diff_ci_low"], row[f"{score}_diff_ci_high"] = bootstrap_mean_ci(
        d, np.random.default_rng(seed))


def _lower(row: Row, score: str) -> float:
    low = row.get(f"{score}_ci_low")
    return row[score] if low is None else low


def build_rows(cfg: Any, results: list[dict[str, Any]],
               chance: dict[str, dict[str, Any]] | None = None) -> list[Row]:
    """One row per (contender, task) in result order, each task's chance row first (when
    `chance` gives it: {task: lossevo.evaluation.chance.chance_scores}); see the module
    docstring for the statistics, references, ranks and the floor."""
    evolved = {c.label for c in cfg.contenders if c.evolved}
    early = {c.label for c in cfg.contenders if getattr(c, "early_stop", False)}
    rows: list[Row] = []
    for task in cfg.tasks:
        if chance is not None and task.name in chance:
            rows.append(_chance_row(task.name, chance[task.name]))
        rows += [_result_row(res, res["contender"] in evolved, res["contender"] in early,
                             cfg.seed) for res in results if res["task"] == task.name]
    per_score: dict[str, dict[str, dict[str, float]]] = {s: {} for s in SCORES}
    for task in cfg.tasks:
        ok = {r["contender"]: r for r in rows if r["task"] == task.name and r["status"] == "ok"}
        floor = next((r for r in rows if r["task"] == task.name and r["status"] == CHANCE),
                     None)
        for score in SCORES:
            ranks = task_ranks({k: r[score] for k, r in ok.items()})
            ref = _reference(cfg, ok, score)
            for label, r in ok.items():
                r[f"{score}_rank"] = ranks[label]
                r[f"{score}_vs"] = ref or ""
                if ref is not None and label != ref:
                    _paired(r, ok[ref], score, cfg.seed)
            adjusted = holm({k: r.get(f"{score}_wilcoxon_p") for k, r in ok.items()
                             if k != ref})
            for label, p in adjusted.items():
                ok[label][f"{score}_holm_p"] = p
            included = True
            if floor is not None:
                for r in ok.values():
                    r[f"{score}_above_chance"] = _lower(r, score) > floor[score]
                included = any(r[f"{score}_above_chance"] for r in ok.values())
                floor[f"{score}_ranked"] = included
                floor[f"{score}_vs"] = ref or ""
                if ref is not None:
                    _paired(floor, ok[ref], score, cfg.seed)
            if included:
                per_score[score][task.name] = ranks
    for score in SCORES:
        avg = average_ranks(per_score[score])
        for r in rows:
            if r["status"] != CHANCE:
                r[f"{score}_average_rank"], r[f"{score}_ranked_tasks"] = avg.get(
                    r["contender"], (None, 0))
    return rows
