"""Outputs of a comparison: compare.csv / .json / .md and plots from the rows of
:mod:`lossevo.comparison.rows` (both headline scores, the chance row, per-score ranks).

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

from lossevo.atomic import write_atomic
from lossevo.comparison.config import CompareConfig
from lossevo.comparison.rows import SCORES, build_rows
from lossevo.comparison.stats import (
    BOOTSTRAP_LEVEL,
    BOOTSTRAP_RESAMPLES,
    EXACT_MAX_N,
    min_wilcoxon_p,
)
from lossevo.evaluation.chance import CHANCE
from lossevo.symbolic.kinds import TaskKind

__all__ = ["CSV_COLUMNS", "build_rows", "write_outputs"]

_PAIRED = ("vs", "mean_diff", "diff_ci_low", "diff_ci_high", "wilcoxon_p", "holm_p")
CSV_COLUMNS = (
    "contender", "task", "metric", "status",
    *(f"{s}{stat}" for s in SCORES for stat in ("", "_std", "_ci_low", "_ci_high", "_q90_q10",
                                               "_min")),
    *(f"{s}_{stat}" for s in SCORES for stat in _PAIRED),
    *(f"{s}_{stat}" for stat in ("rank", "above_chance", "average_rank") for s in SCORES),
    "tuned", "early_stop", "stopped_epoch", "seconds", "tuning_seconds", "evolved", "reason")

Row = dict[str, Any]
_TITLE = {"clean": "clean", "worst_env": "worst-env"}


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


def _diff(r: Row, score: str) -> str:
    if r.get(f"{score}_mean_diff") is None:
        return "–"
    lo, hi = r.get(f"{score}_diff_ci_low"), r.get(f"{score}_diff_ci_high")
    ci = "" if lo is None else f" [{lo:+.3f}, {hi:+.3f}]"
    return f"{r[f'{score}_mean_diff']:+.3f}{ci}"


def _noise_text(task: Any) -> str:
    n = task.noise
    if task.kind == TaskKind.REGRESSION:
        return (f"targets {n.target.value} σ={n.target_sigma:g}, outliers "
                f"{n.outlier_fraction:g} × {n.outlier_scale:g}")
    return f"labels {n.labels.value} {n.rate:g}"


def _name(r: Row) -> str:
    if r["status"] == CHANCE:
        return f"*{CHANCE}*"
    return f"**{r['contender']}**" if r["evolved"] else r["contender"]


def _task_rows(rows: list[Row], task: str) -> list[Row]:
    """The task's finished contenders and its chance row, best worst-env score first."""
    return sorted((r for r in rows if r["task"] == task and r["status"] in ("ok", CHANCE)),
                  key=lambda r: (-r["worst_env"], -r["clean"]))


def _task_table(rows: list[Row], task: str) -> list[str]:
    """Headline table: both scores, their ranks, per-environment means, tuning, epochs."""
    shown = _task_rows(rows, task)
    if not any(r["status"] == "ok" for r in shown):
        return ["No contender finished on this task.", ""]
    metric = shown[0]["metric"]
    envs = [e for e in shown[0]["envs"] if e != "clean"]  # clean has its own column
    tuned = any(r["tuning"] for r in shown)
    early = any(r["early_stop"] for r in shown)
    head = (["contender", f"clean {metric} ± std", f"worst-env {metric} ± std", "clean rank",
             "worst-env rank", *envs] + (["tuned (validation)"] if tuned else [])
            + (["stopped epoch"] if early else []) + ["s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in shown:
        cells = [_name(r), _pm(r["clean"], r.get("clean_std")),
                 _pm(r["worst_env"], r.get("worst_env_std")),
                 _fmt(r.get("clean_rank"), 1), _fmt(r.get("worst_env_rank"), 1),
                 *(_fmt(r["envs"].get(e)) for e in envs)]
        if tuned:
            cells.append(r["tuned"] or "–")
        if early:
            cells.append(_fmt(r["stopped_epoch"], 1))
        cells.append("–" if r["status"] == CHANCE else f"{r['seconds']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _stats_table(rows: list[Row], task: str) -> list[str]:
    """Paired statistics of both scores against each score's reference."""
    shown = _task_rows(rows, task)
    ok = [r for r in shown if r["status"] == "ok"]
    if not ok:
        return []
    refs = {s: ok[0].get(f"{s}_vs") or "–" for s in SCORES}
    head = ["contender"]
    for s in SCORES:
        head += [f"Δ {_TITLE[s]} vs {refs[s]} [95% CI]", "Wilcoxon p", "Holm p"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in shown:
        cells = [_name(r)]
        for s in SCORES:
            if r["contender"] == refs[s] and r["status"] == "ok":
                cells += ["reference"] * 3
            else:
                cells += [_diff(r, s), _fmt(r.get(f"{s}_wilcoxon_p"), 4),
                          _fmt(r.get(f"{s}_holm_p"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _chance_text(rows: list[Row], task: Any) -> list[str]:
    floor = next((r for r in rows if r["task"] == task.name and r["status"] == CHANCE), None)
    if floor is None:
        return []
    what = (f"always the clean training-target mean {floor['predicts']:.4g}"
            if task.kind == TaskKind.REGRESSION else
            f"always class {floor['predicts']}, the majority of the clean training labels")
    left = [_TITLE[s] for s in SCORES if not floor.get(f"{s}_ranked", True)]
    note = (f" No contender is clearly above it on {' and '.join(left)}: this task is left "
            "out of those average ranks." if left else "")
    return [f"Chance ({what}): clean {_fmt(floor['clean'])}, worst-env "
            f"{_fmt(floor['worst_env'])}.{note}", ""]


def _rank_tables(cfg: CompareConfig, rows: list[Row]) -> list[str]:
    lines = ["## Ranks across tasks", "",
             "Per score, within each task (1 = best, ties share the mean rank), averaged over "
             "the tasks where at least one contender is clearly above chance: the lower end of "
             f"the {BOOTSTRAP_LEVEL:.0%} bootstrap interval of its mean over instances is above "
             "the chance row (with one instance: its score). Ranks in parentheses are from "
             "left-out tasks and do not enter the average.", ""]
    labels = [c.label for c in cfg.contenders]
    for score in SCORES:
        left = [t.name for t in cfg.tasks
                if any(r["task"] == t.name and r["status"] == CHANCE
                       and not r.get(f"{score}_ranked", True) for r in rows)]
        avg = {r["contender"]: r.get(f"{score}_average_rank") for r in rows
               if r["status"] != CHANCE}
        counted = {r["contender"]: r.get(f"{score}_ranked_tasks", 0) for r in rows
                   if r["status"] != CHANCE}
        lines += [f"### {_TITLE[score]} score", "",
                  "| contender | " + " | ".join(t.name for t in cfg.tasks) + " | average rank |",
                  "|" + "---|" * (len(cfg.tasks) + 2)]
        for label in sorted(labels, key=lambda k: (avg.get(k) is None, avg.get(k) or 0.0)):
            cells = []
            for t in cfg.tasks:
                r = next((r for r in rows if r["contender"] == label and r["task"] == t.name),
                         None)
                if r is None or r.get(f"{score}_rank") is None:
                    cells.append(r["status"] if r is not None else "–")
                elif t.name in left:
                    cells.append(f"({_fmt(r[f'{score}_rank'], 1)})")
                else:
                    cells.append(_fmt(r[f"{score}_rank"], 1))
            n = counted.get(label, 0)
            ranked = len(cfg.tasks) - len(left)
            note = f" ({n} of {ranked} tasks)" if 0 < n < ranked else ""
            lines.append(f"| {label} | " + " | ".join(cells)
                         + f" | {_fmt(avg.get(label), 2)}{note} |")
        lines += ["", f"Left out of the {_TITLE[score]} average ranks (no contender clearly "
                  f"above chance): {', '.join(left) if left else 'none'}.", ""]
    return lines


def _tuning_section(cfg: CompareConfig, rows: list[Row]) -> list[str]:
    from lossevo.comparison.tuning import EVOLVED_SCALES, TUNING_RACING, point_text

    if not cfg.tune:
        return ["## Tuning", "",
                "Off (`tune = false`, the default, keeps small comparisons cheap): every "
                "built-in loss and scheme ran with its defaults and every evolved loss as "
                "evolved.", ""]
    r_ = TUNING_RACING
    lines = ["## Tuning on validation", "",
             "Each built-in loss and scheme"
             + (" and each evolved loss" if cfg.tune_evolved else "")
             + " chose one point of its declared grid (at most 4; evolved: every constant "
             f"scaled by {', '.join(f'×{s:g}' for s in EVOLVED_SCALES)}) on the noisy "
             f"validation split, raced over the {cfg.instances} instances (first "
             f"{r_.initial}, ×{r_.growth:g} per round, keeping scores ≥ the "
             f"{r_.keep_quantile:g} quantile), by the task's fitness "
             "(first component shown; ties keep the default); only the chosen point (bold) "
             "was trained again and scored on test. Test was never read for the choice. "
             "Fitness: " + "; ".join(f"{t.name} ({', '.join(t.fitness_spec)})"
                                     for t in cfg.tasks) + ".", "",
             "| task | contender | validation score per grid point (instances) | chosen | s |",
             "|---|---|---|---|---|"]
    for r in rows:
        t = r.get("tuning")
        if not t:
            continue
        cells = []
        for i, point in enumerate(t["points"]):
            fit = t["validation"][i]
            text = (f"{point_text(point)}: {_fmt(fit[0]) if fit else 'failed'} "
                    f"({t['instances'][i]}{', raced out' if t['raced_out'][i] else ''})")
            cells.append(f"**{text}**" if i == t["chosen_index"] else text)
        chosen = r["tuned"] or "–"
        if t.get("reason"):
            chosen += f" ({t['reason']})"
        lines.append(f"| {r['task']} | {r['contender']} | {' · '.join(cells)} | {chosen} | "
                     f"{t['seconds']:.1f} |")
    return [*lines, ""]


def _markdown(cfg: CompareConfig, rows: list[Row], plots: dict[str, list[str]],
              config_text: str | None, seconds: float) -> str:
    n = cfg.instances
    ref = (f"the configured baseline {cfg.baseline!r}" if cfg.baseline
           else "per score the best non-evolved contender of the task")
    lines = ["# lossevo comparison", "",
             f"{len(cfg.contenders)} contenders × {len(cfg.tasks)} tasks, {n} instances "
             f"(seed {cfg.seed}; instance k has the same noise draw, initial weights and data "
             f"order for every contender), total {seconds:.1f} s.", "",
             "Two headline scores on the test split (accuracy, or R² on regression): `clean`, "
             "the clean test environment, and `worst-env`, the mean over instances of each "
             "instance's worst test environment. Evolved contenders are in **bold**; *chance* "
             "is a constant predictor scored on the same environments (see each task). ± is "
             "the sample standard deviation over instances (ddof 1; not shown with one "
             f"instance). Against the reference ({ref}), per score: Δ is the mean over "
             "instances of the paired difference (contender − reference; > 0: the contender "
             f"is better) with its {BOOTSTRAP_LEVEL:.0%} percentile bootstrap interval "
             f"({BOOTSTRAP_RESAMPLES} resamples of the instances, seed {cfg.seed}; with few "
             "instances it is too narrow); Wilcoxon p is the two-sided paired signed-rank "
             f"test over instances (exact for up to {EXACT_MAX_N} non-zero differences, zero "
             "differences dropped); Holm p adjusts it across the contenders of the task (the "
             "chance row is not in that family). With "
             f"n = {n} instances the smallest possible p is 2/2^n = {min_wilcoxon_p(n):.4g}.",
             ""]
    for task in cfg.tasks:
        t = task.name
        lines += [f"## {t}", "",
                  f"{task.dataset.value}, {task.model.kind.value} {list(task.model.widths)}, "
                  f"{task.budget.epochs} epochs, batch {task.budget.batch_size}, lr "
                  f"{task.budget.lr:g}; noise {_noise_text(task)}; "
                  f"environments {', '.join(e.name for e in task.environments)}.", ""]
        lines += _chance_text(rows, task)
        lines += _task_table(rows, t)
        lines += _stats_table(rows, t)
        lines += [f"![{p}](plots/{p})" for p in plots.get(t, [])] + [""]
    lines += _rank_tables(cfg, rows)
    lines += _tuning_section(cfg, rows)
    if any(r["early_stop"] for r in rows):
        lines += ["## Early stopping", "",
                  "Contenders with `early_stop` (and `ce_early_stop`) keep, per model, the "
                  "epoch with the best clean accuracy on the noisy validation split (regression: "
                  "the lowest validation MSE); `stopped epoch` is its mean over instances "
                  "(1-based; 0: no epoch improved on the initial weights).", ""]
    if plots.get("", []):
        lines += ["## Across noise rates", ""] + [f"![{p}](plots/{p})" for p in plots[""]] + [""]
    for note in plots.get("notes", []):
        lines += [f"_{note}_", ""]
    skipped = [r for r in rows if r["status"] not in ("ok", CHANCE)]
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
    from lossevo.comparison.tuning import EVOLVED_SCALES, racing_settings
    from lossevo.evaluation.chance import chance_scores

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chance = {t.name: chance_scores(t, cfg.seed) for t in cfg.tasks}
    rows = build_rows(cfg, results, chance)
    plots = write_plots(cfg, [r for r in rows if r["status"] != CHANCE], out / "plots")
    floor = {s: {r["task"]: {"chance": r[s], "ranked": r.get(f"{s}_ranked", True)}
                 for r in rows if r["status"] == CHANCE} for s in SCORES}
    doc = {"seed": cfg.seed, "instances": cfg.instances, "baseline": cfg.baseline,
           "min_wilcoxon_p": min_wilcoxon_p(cfg.instances), "seconds": seconds,
           "scores": list(SCORES),
           "statistics": {"std_ddof": 1, "wilcoxon_exact_max_n": EXACT_MAX_N,
                          "wilcoxon_zero_method": "wilcox", "p_adjust": "holm",
                          "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
                          "bootstrap_level": BOOTSTRAP_LEVEL, "bootstrap_seed": cfg.seed,
                          "floor": "a task enters a score's average ranks when some "
                                   "contender's bootstrap interval of its mean lies above "
                                   "the chance value (one instance: its score)"},
           "tuning": {"tune": cfg.tune, "tune_evolved": cfg.tune_evolved,
                      "split": "validation", "racing": racing_settings(),
                      "evolved_scales": list(EVOLVED_SCALES)},
           "chance": chance, "floor": floor,
           "tasks": [t.name for t in cfg.tasks],
           "contenders": [c.to_dict() for c in cfg.contenders],
           "config": cfg.raw, "results": results,
           "rows": [{k: v for k, v in r.items()} for r in rows]}
    write_atomic(out / "compare.json", json.dumps(doc, indent=1, default=str) + "\n")
    write_atomic(out / "compare.csv", _csv(rows))
    write_atomic(out / "compare.md", _markdown(cfg, rows, plots, config_text, seconds))
    return out
