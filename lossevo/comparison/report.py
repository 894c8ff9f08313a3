"""Outputs of a comparison: rows with statistics, compare.csv / .json / .md, plots.

Every file is written to a temporary name in the output directory and renamed into place, so a
crash never leaves a half-written table behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from lossevo.atomic import write_atomic
from lossevo.comparison.config import CompareConfig
from lossevo.comparison.stats import (
    BOOTSTRAP_LEVEL,
    BOOTSTRAP_RESAMPLES,
    EXACT_MAX_N,
    average_ranks,
    bootstrap_mean_ci,
    holm,
    min_wilcoxon_p,
    task_ranks,
    wilcoxon_p,
)

__all__ = ["CSV_COLUMNS", "build_rows", "write_outputs"]

CSV_COLUMNS = ("contender", "task", "metric", "status", "mean", "std", "q90_q10", "min",
               "worst_env", "worst_env_std", "wilcoxon_p", "holm_p", "mean_diff", "diff_ci_low",
               "diff_ci_high", "vs", "rank", "seconds", "evolved", "reason")

Row = dict[str, Any]


def _clean_env(metrics: dict[str, float], metric: str) -> str:
    """'clean' when the task scores it, else the first environment (documented fallback)."""
    if f"{metric}.clean.mean" in metrics:
        return "clean"
    envs = [k[len(metric) + 1:].rsplit(".", 1)[0] for k in metrics if k.startswith(metric + ".")]
    return next(e for e in envs if e != "worst_env")


def _baselines(cfg: CompareConfig, rows: list[Row]) -> dict[str, str | None]:
    """Reference per task: the configured baseline, else the best non-evolved contender."""
    evolved = {c.label for c in cfg.contenders if c.evolved}
    refs: dict[str, str | None] = {}
    for task in cfg.tasks:
        ok = [r for r in rows if r["task"] == task.name and r["status"] == "ok"]
        if cfg.baseline is not None:
            refs[task.name] = cfg.baseline if any(r["contender"] == cfg.baseline
                                                  for r in ok) else None
        else:
            cands = [r for r in ok if r["contender"] not in evolved]
            best = max(cands, key=lambda r: r["worst_env"], default=None)  # first of ties
            refs[task.name] = None if best is None else best["contender"]
    return refs


def build_rows(cfg: CompareConfig, results: list[dict[str, Any]]) -> list[Row]:
    """One row per (contender, task): clean-environment statistics, worst-env mean and std
    (blank below two instances), per-environment means, against the reference the Wilcoxon p,
    its Holm adjustment over the task's contenders and the mean paired worst-env difference
    (contender − reference) with its bootstrap interval, rank within the task."""
    evolved = {c.label for c in cfg.contenders if c.evolved}
    rows: list[Row] = []
    for res in results:
        m = res["metric"]
        row: Row = {"contender": res["contender"], "task": res["task"], "metric": m,
                    "status": res["status"], "reason": res["reason"] or "",
                    "seconds": res["seconds"], "evolved": res["contender"] in evolved,
                    "envs": {}, "worst_instances": []}
        if res["status"] == "ok":
            met = res["metrics"]
            env = _clean_env(met, m)
            row.update({stat: met[f"{m}.{env}.{stat}"] for stat in ("mean", "std", "q90_q10",
                                                                    "min")})
            row["worst_env"] = met[f"{m}.worst_env.mean"]
            row["worst_env_std"] = met[f"{m}.worst_env.std"]
            row["envs"] = {e: met[f"{m}.{e}.mean"] for e in res["per_instance"][m]
                           if e != "worst_env"}
            row["worst_instances"] = list(res["per_instance"][m]["worst_env"])
            if len(row["worst_instances"]) < 2:  # summarize's 0.0 is no measured spread
                row["std"] = row["worst_env_std"] = None
        rows.append(row)
    refs = _baselines(cfg, rows)
    per_task: dict[str, dict[str, float]] = {}
    for task in cfg.tasks:
        ok = {r["contender"]: r for r in rows if r["task"] == task.name and r["status"] == "ok"}
        per_task[task.name] = task_ranks({k: r["worst_env"] for k, r in ok.items()})
        ref = refs[task.name]
        for label, r in ok.items():
            r["rank"] = per_task[task.name][label]
            r["vs"] = ref or ""
            if ref is not None and label != ref:
                _paired(r, ok[ref], cfg.seed)
        adjusted = holm({k: r.get("wilcoxon_p") for k, r in ok.items() if k != ref})
        for label, p in adjusted.items():
            ok[label]["holm_p"] = p
    avg = average_ranks(per_task)
    for r in rows:
        r["average_rank"], r["ranked_tasks"] = avg.get(r["contender"], (None, 0))
    return rows


def _paired(row: Row, ref: Row, seed: int) -> None:
    """Wilcoxon p and mean paired difference with its interval; a fresh generator from the
    comparison seed per pair, so an interval depends only on its own two contenders."""
    d = np.asarray(row["worst_instances"], dtype=np.float64) - np.asarray(
        ref["worst_instances"], dtype=np.float64)
    row["wilcoxon_p"] = wilcoxon_p(row["worst_instances"], ref["worst_instances"])
    row["mean_diff"] = float(d.mean())
    row["diff_ci_low"], row["diff_ci_high"] = bootstrap_mean_ci(d, np.random.default_rng(seed))


def _csv(rows: list[Row]) -> str:
    envs = list(dict.fromkeys(e for r in rows for e in r["envs"]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"env:{e}" for e in envs)])
    for r in rows:
        cells = [r.get(c, "") for c in CSV_COLUMNS] + [r["envs"].get(e, "") for e in envs]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                         for v in cells])
    return buf.getvalue()


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _pm(mean: Any, std: Any) -> str:
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"


def _diff(r: Row) -> str:
    if r.get("mean_diff") is None:
        return "–"
    ci = ("" if r.get("diff_ci_low") is None
          else f" [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]")
    return f"{r['mean_diff']:+.3f}{ci}"


def _noise_text(task: Any) -> str:
    n = task.noise
    if task.kind == "regression":
        return (f"targets {n.target.value} σ={n.target_sigma:g}, outliers "
                f"{n.outlier_fraction:g} × {n.outlier_scale:g}")
    return f"labels {n.labels.value} {n.rate:g}"


def _task_table(rows: list[Row], task: str) -> list[str]:
    ok = sorted((r for r in rows if r["task"] == task and r["status"] == "ok"),
                key=lambda r: -r["worst_env"])
    if not ok:
        return ["No contender finished on this task.", ""]
    envs = [e for e in ok[0]["envs"] if e != "clean"]  # clean has its own columns
    ref = ok[0]["vs"]
    lines = ["| rank | contender | worst_env | clean mean ± std | q90_q10 | min | "
             + " | ".join(envs) + f" | Δ worst_env vs {ref or '–'} [95% CI] | Wilcoxon p | "
             "Holm p | s |",
             "|" + "---|" * (10 + len(envs))]
    for r in ok:
        name = f"**{r['contender']}**" if r["evolved"] else r["contender"]
        envcells = " | ".join(_fmt(r["envs"].get(e)) for e in envs)
        if r["contender"] == ref:
            stats = "reference | reference | reference"
        else:
            stats = (f"{_diff(r)} | {_fmt(r.get('wilcoxon_p'), 4)} | "
                     f"{_fmt(r.get('holm_p'), 4)}")
        lines.append(f"| {_fmt(r['rank'], 1)} | {name} | "
                     f"{_pm(r['worst_env'], r['worst_env_std'])} | {_pm(r['mean'], r['std'])} | "
                     f"{_fmt(r['q90_q10'])} | {_fmt(r['min'])} | {envcells} | {stats} | "
                     f"{r['seconds']:.1f} |")
    return [*lines, ""]


def _markdown(cfg: CompareConfig, rows: list[Row], plots: dict[str, list[str]],
              config_text: str | None, seconds: float) -> str:
    n = cfg.instances
    ref = (f"the configured baseline {cfg.baseline!r}" if cfg.baseline
           else "the best non-evolved contender of the task")
    lines = ["# lossevo comparison", "",
             f"{len(cfg.contenders)} contenders × {len(cfg.tasks)} tasks, {n} instances "
             f"(seed {cfg.seed}; instance k has the same noise draw, initial weights and data "
             f"order for every contender), total {seconds:.1f} s.", "",
             "Scores: `worst_env` is the mean over instances of each instance's worst test "
             "environment; `clean` the clean test split (accuracy, or R² on regression). "
             "Evolved contenders are in **bold**. ± is the sample standard deviation over "
             "instances (ddof 1; not shown with one instance). Against the reference "
             f"({ref}): Δ is the mean over instances of the paired worst-env difference "
             "(contender − reference; > 0: the contender is better) with its "
             f"{BOOTSTRAP_LEVEL:.0%} percentile bootstrap interval ({BOOTSTRAP_RESAMPLES} "
             f"resamples of the instances, seed {cfg.seed}; with few instances it is too "
             "narrow); Wilcoxon p is the two-sided paired signed-rank test over instances of "
             f"worst-env scores (exact for up to {EXACT_MAX_N} non-zero differences, zero "
             "differences dropped); Holm p adjusts it across the contenders of the task. "
             f"With n = {n} instances the smallest possible p is 2/2^n = "
             f"{min_wilcoxon_p(n):.4g}.", ""]
    for task in cfg.tasks:
        t = task.name
        lines += [f"## {t}", "",
                  f"{task.dataset.value}, {task.model.kind.value} {list(task.model.widths)}, "
                  f"{task.budget.epochs} epochs, batch {task.budget.batch_size}, lr "
                  f"{task.budget.lr:g}; noise {_noise_text(task)}; "
                  f"environments {', '.join(e.name for e in task.environments)}.", ""]
        lines += _task_table(rows, t)
        lines += [f"![{p}](plots/{p})" for p in plots.get(t, [])] + [""]
    labels = [c.label for c in cfg.contenders]
    ranked = [r for r in rows if r.get("rank") is not None]
    lines += ["## Ranks across tasks (1 = best worst-env score; ties share the mean rank)", "",
              "| contender | " + " | ".join(t.name for t in cfg.tasks) + " | average rank |",
              "|" + "---|" * (len(cfg.tasks) + 2)]
    avg = {r["contender"]: r["average_rank"] for r in rows}
    counted = {r["contender"]: r["ranked_tasks"] for r in rows}
    for label in sorted(labels, key=lambda k: (avg[k] is None, avg[k] or 0.0)):
        cells = []
        for t in cfg.tasks:
            hit = next((r for r in ranked if r["contender"] == label and r["task"] == t.name),
                       None)
            status = next(r["status"] for r in rows if r["contender"] == label
                          and r["task"] == t.name)
            cells.append(_fmt(hit["rank"], 1) if hit else status)
        note = f" ({counted[label]} of {len(cfg.tasks)} tasks)" if 0 < counted[label] < len(
            cfg.tasks) else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(avg[label], 2)}{note} |")
    lines += [""]
    if plots.get("", []):
        lines += ["## Across noise rates", ""] + [f"![{p}](plots/{p})" for p in plots[""]] + [""]
    for note in plots.get("notes", []):
        lines += [f"_{note}_", ""]
    skipped = [r for r in rows if r["status"] != "ok"]
    lines += ["## Not applicable and failed", ""]
    lines += [f"- {r['contender']} on {r['task']}: {r['status']} — {r['reason']}"
              for r in skipped] or ["None."]
    if config_text is not None:
        lines += ["", "## Configuration", "", "```toml", config_text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_outputs(cfg: CompareConfig, results: list[dict[str, Any]], out: str | Path, *,
                  config_text: str | None = None, seconds: float = 0.0) -> Path:
    """Write compare.csv, compare.json, compare.md and plots/*.png into ``out``."""
    from lossevo.comparison.plots import write_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows(cfg, results)
    plots = write_plots(cfg, rows, out / "plots")
    doc = {"seed": cfg.seed, "instances": cfg.instances, "baseline": cfg.baseline,
           "min_wilcoxon_p": min_wilcoxon_p(cfg.instances), "seconds": seconds,
           "statistics": {"std_ddof": 1, "wilcoxon_exact_max_n": EXACT_MAX_N,
                          "wilcoxon_zero_method": "wilcox", "p_adjust": "holm",
                          "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
                          "bootstrap_level": BOOTSTRAP_LEVEL, "bootstrap_seed": cfg.seed},
           "tasks": [t.name for t in cfg.tasks],
           "contenders": [c.to_dict() for c in cfg.contenders],
           "config": cfg.raw, "results": results,
           "rows": [{k: v for k, v in r.items()} for r in rows]}
    write_atomic(out / "compare.json", json.dumps(doc, indent=1, default=str) + "\n")
    write_atomic(out / "compare.csv", _csv(rows))
    write_atomic(out / "compare.md", _markdown(cfg, rows, plots, config_text, seconds))
    return out
