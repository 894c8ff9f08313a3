"""Multi-task fitness: one candidate scored on several tasks, aggregated into one number.

A campaign may list several tasks (``[[tasks]]``, all of one kind, distinct names). Raw scores
of different tasks are not comparable (58% on noisy digits is good, on wine it is poor), so
each task's score — the first component of its fitness vector, a level such as
``accuracy.clean.mean`` — is put on a common scale first::

    normalized = (score − chance) / (best baseline − chance)

0 is the constant majority-class predictor (mean target for regression) scored on the task's
validation environments (lossevo.evaluation.chance, ``split="validation"``), 1 the best of the
declared built-in baselines at their defaults, trained once at campaign start on the same
instances and seed as the candidates. Both numbers go into the run's state and checkpoint, so
a resumed run reuses them and never retrains the baselines. Where no baseline beats chance (or
none trained), the scale falls back to (1 − chance), the distance to a perfect score
(accuracy and R² are at most 1), and the progress output says so.

``aggregate = "normalized_mean"`` averages the normalized scores; ``"worst"`` keeps the lowest:
a loss must do well on every task. Listing one task twice, the second time with
``budget = {optimizer = "sgd", lr = ...}`` and its own ``name``, with ``"worst"`` is how a
campaign requires that a loss trains under both Adam and SGD (docs/multi-task.md).

The campaign's fitness vector is then ``(aggregate,)``; each record keeps every task's own
fitness, metrics and normalized score as plain data under ``tasks`` (SQLite column ``tasks``,
``{task: {"fitness", "metrics", "normalized", "rejected", "raced_out", "trainings"}}``). A candidate
rejected on any task is rejected, with the task named in the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lossevo.evaluation.optimizers import ignores_loss_scale
from lossevo.evaluation.tasks import TASK_PRESETS, Task
from lossevo.search.records import CandidateRecord, Json, Result

if TYPE_CHECKING:
    from lossevo.evaluation.fidelity import Fidelity
    from lossevo.search.config import CampaignConfig

__all__ = [
    "AGGREGATES",
    "DEFAULT_BASELINES",
    "MultiTask",
    "at_rung",
    "check_references",
    "check_tasks",
    "combine",
    "compute_references",
    "normalize",
    "reference",
    "reference_lines",
    "scale_free",
    "task_files",
    "task_scores",
]

AGGREGATES = ("normalized_mean", "worst")
DEFAULT_BASELINES = {
    "classification": ("ce", "mae", "gce", "sce", "nce_rce", "anl_ce"),
    "regression": ("mse", "mae", "huber"),
}
_PERFECT = 1.0  # the best accuracy and the best R²: the fallback top of the scale
_MIN_SCALE = 1e-9  # a best baseline this close to chance cannot define a scale
_LEVELS = ("mean", "min")  # statistics that have a chance level (spreads do not)


@dataclass(frozen=True)
class MultiTask:
    """``[multi_task]``: `aggregate` ("normalized_mean" or "worst") of the per-task normalized
    scores; `baselines`: built-in loss names whose best validation score is each task's 1.0
    (empty: ``DEFAULT_BASELINES`` of the tasks' kind)."""

    aggregate: str = "normalized_mean"
    baselines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"config key 'multi_task.aggregate' = {self.aggregate!r} is not "
                             f"allowed; allowed: {', '.join(AGGREGATES)}")
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"config key 'multi_task.baselines' = {list(self.baselines)!r} is "
                             f"not allowed; allowed: distinct built-in loss names")

    def baseline_names(self, kind: str) -> tuple[str, ...]:
        return self.baselines or DEFAULT_BASELINES[kind]


# --- configuration checks ------------------------------------------------------------------


def _level(task: Task) -> tuple[str, str, str]:
    """(metric, environment, statistic) of the task's first fitness component."""
    spec = task.fitness_spec[0]
    metric, _, rest = spec.partition(".")
    env, _, stat = rest.rpartition(".")
    return metric, env, stat


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"config key {key!r} = {value!r} is not allowed; allowed: {allowed}")


def check_tasks(tasks: Sequence[Task], spec: MultiTask) -> None:
    """The tasks of a multi-task campaign can share one search and one normalized scale:
    distinct names, one kind (expressions and canonical keys are per kind), a first fitness
    component that is a level with a chance value, and baselines of that kind."""
    _check(len(tasks) >= 1, "tasks", [], "at least one task")
    names = [t.name for t in tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    _check(not twice, "tasks", names, f"distinct task names ({', '.join(twice)} appears more "
           f"than once: give each entry its own 'name')")
    kinds = {t.kind for t in tasks}
    _check(len(kinds) == 1, "tasks", [f"{t.name} ({t.kind})" for t in tasks],
           "tasks of one kind (all classification or all regression): an evolved expression "
           "is a loss of one kind")
    for i, t in enumerate(tasks):
        metric, env, stat = _level(t)
        envs = [e.name for e in t.environments] + ["worst_env"]
        _check(not t.fitness_spec[0].startswith("-") and metric == t.metric and env in envs
               and stat in _LEVELS, f"tasks[{i}].fitness", list(t.fitness_spec),
               f"a first component that is a level with a chance value, "
               f"'{t.metric}.<environment>.mean' or '.min' (environment: "
               f"{', '.join(envs)}); multi-task normalization does not take spreads, "
               f"negated or lower-is-better metrics (use r2, not -mse)")
    from lossevo.baselines.losses import LOSSES, REGRESSION_LOSSES

    kind = tasks[0].kind
    known = LOSSES if kind == "classification" else REGRESSION_LOSSES
    for name in spec.baselines:
        _check(name in known, "multi_task.baselines", name,
               f"built-in {kind} losses: {', '.join(known)}")
    _check(bool(spec.baseline_names(kind)), "multi_task.baselines", [], "at least one name")


def scale_free(tasks: Sequence[Task]) -> bool:
    """Whether scaled copies of a loss may share a canonical key: only when every task's
    trainer ignores the loss's scale (lossevo.evaluation.optimizers.ignores_loss_scale)."""
    return all(ignores_loss_scale(t.budget) for t in tasks)


def at_rung(tasks: Sequence[Task], fidelity: Fidelity | None, rung: int | None) -> list[Task]:
    """The tasks as rung `rung` of multi-fidelity evaluation trains them (each its own share of
    its own epochs); `rung` None or the last: the tasks themselves."""
    if fidelity is None or rung is None or rung == len(fidelity.rungs) - 1:
        return list(tasks)
    return [t.with_overrides(budget={"epochs": fidelity.epochs(t.budget.epochs)[rung]})
            for t in tasks]


def task_files(data: Mapping[str, Any]) -> list[tuple[Any, Any, int]]:
    """Entries of a config's ``tasks`` list that name a task *file* (not a preset), as
    (container, key, index in ``tasks``), so a run keeps its own copy
    (lossevo.search.store.RunStore.task_copy_path)."""
    out: list[tuple[Any, Any, int]] = []
    entries = data.get("tasks")
    if not isinstance(entries, list):
        return out
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and entry not in TASK_PRESETS:
            out.append((entries, i, i))
        elif isinstance(entry, dict):
            for key in ("preset", "base"):
                ref = entry.get(key)
                if isinstance(ref, str) and ref not in TASK_PRESETS:
                    out.append((entry, key, i))
    return out


# --- references: chance and best baseline, once per campaign -------------------------------


def reference(task: Task, chance: float, baselines: Mapping[str, float | None]) -> Json:
    """A task's scale from its chance value and its baselines' scores (None: rejected):
    ``{"level", "chance", "best_baseline", "best_name", "baselines", "scale", "note"}``;
    `note` says why the fallback scale (1 − chance) was used, else None."""
    valid = {n: s for n, s in baselines.items() if s is not None and math.isfinite(s)}
    best_name = max(valid, key=lambda n: valid[n]) if valid else None  # ties: first declared
    best = valid[best_name] if best_name is not None else None
    note = None
    if best is not None and best - chance > _MIN_SCALE:
        scale = best - chance
    else:
        scale = _PERFECT - chance if _PERFECT - chance > _MIN_SCALE else 1.0
        why = ("no baseline trained" if best is None else
               f"the best baseline ({best_name}, {best:.4f}) is not above chance "
               f"({chance:.4f})")
        note = f"{why}: scaled by {scale:.4f} (perfect score − chance) instead"
    return {"level": task.fitness_spec[0], "chance": chance, "best_baseline": best,
            "best_name": best_name, "baselines": dict(baselines), "scale": scale, "note": note}


def _chance(task: Task, seed: int) -> float:
    from lossevo.evaluation.chance import chance_scores

    _, env, _ = _level(task)  # a constant has no spread: its mean and min are one number
    scores = chance_scores(task, seed, split="validation")
    return float(scores["worst_env"] if env == "worst_env" else scores["envs"][env])


def compute_references(cfg: CampaignConfig,
                       run_payloads: Callable[[list[Json]], list[list[Result] | BaseException]],
                       device: str | None) -> Json:
    """Chance and best baseline of every task, on validation. `run_payloads` evaluates
    payloads of ``lossevo.search.campaign.evaluate_chunk`` (on the backend) and returns each
    one's results or its exception. Baselines train without racing: a scale is a full
    evaluation. Plain data: the references go into the checkpoint as they are."""
    from lossevo.baselines.losses import build_loss

    spec = cfg.multi_task
    assert spec is not None
    kind = cfg.task.kind
    names = spec.baseline_names(kind)
    losses = [build_loss(n, kind=kind) for n in names]
    payloads = [{"expressions": losses, "task": t, "instances": cfg.instances, "seed": cfg.seed,
                 "racing": None, "device": device, "threads": 1} for t in cfg.tasks]
    results = run_payloads(payloads)
    refs: dict[str, Json] = {}
    for task, result in zip(cfg.tasks, results, strict=True):
        scores: dict[str, float | None] = {}
        for i, name in enumerate(names):
            ok = not isinstance(result, BaseException) and not result[i].rejected
            scores[name] = float(result[i].fitness[0]) if ok else None
        refs[task.name] = reference(task, _chance(task, cfg.seed), scores)
    return {"aggregate": spec.aggregate, "baselines": list(names), "tasks": refs}


def check_references(cfg: CampaignConfig, refs: Json) -> None:
    """A checkpoint's references belong to this configuration's tasks."""
    names = [t.name for t in cfg.tasks]
    if list(refs.get("tasks", {})) != names:
        raise ValueError(f"the checkpoint's multi-task references are for tasks "
                         f"{list(refs.get('tasks', {}))}, the config lists {names}")


def reference_lines(refs: Json) -> list[str]:
    """One progress line per task: its chance value, best baseline and any fallback."""
    lines = []
    for name, ref in refs["tasks"].items():
        best = ("none" if ref["best_name"] is None else
                f"{ref['best_name']} {ref['best_baseline']:.4f}")
        line = (f"  {name}: {ref['level']} on validation, chance {ref['chance']:.4f}, best "
                f"baseline {best}")
        if ref["note"]:
            line += f" — {ref['note']}"
        lines.append(line)
    return lines


# --- one candidate -----------------------------------------------------------------------


def normalize(score: float, ref: Mapping[str, Any]) -> float:
    """A task score on the scale chance = 0, best baseline = 1 (-inf stays -inf)."""
    return (score - ref["chance"]) / ref["scale"]


def combine(refs: Json, results: Sequence[Result]) -> Result:
    """One function's result from its results on each task (in the order of
    ``refs["tasks"]``): fitness ``(aggregate,)``, metrics ``{"aggregate",
    "normalized/<task>"}``, costs summed over tasks, every task's own results under ``tasks``."""
    names = list(refs["tasks"])
    per: dict[str, Json] = {}
    reasons: dict[str, str] = {}
    for name, res in zip(names, results, strict=True):
        fit = list(res.fitness)
        score = normalize(fit[0], refs["tasks"][name]) if not res.rejected else -math.inf
        per[name] = {"fitness": fit, "metrics": res.metrics, "normalized": score,
                     "rejected": res.rejected, "raced_out": res.raced_out,
                     "trainings": res.trainings}
        if res.rejected:
            reasons[name] = res.rejected
    if len(set(reasons.values())) == 1 and len(reasons) == len(names):
        rejected: str | None = next(iter(reasons.values()))  # e.g. a probe: one reason for all
    else:
        rejected = "; ".join(f"task {n}: {r}" for n, r in reasons.items()) or None
    scores = [p["normalized"] for p in per.values()]
    if rejected:
        value, metrics = -math.inf, {}
    else:
        value = min(scores) if refs["aggregate"] == "worst" else sum(scores) / len(scores)
        metrics = {"aggregate": value, **{f"normalized/{n}": s for n, s in zip(names, scores,
                                                                              strict=True)}}
    workers = list(dict.fromkeys(r.worker for r in results))
    return Result(fitness=(value,), metrics=metrics, rejected=rejected,
                  seconds=sum(r.seconds for r in results),
                  trainings=sum(r.trainings for r in results),
                  model_epochs=sum(r.model_epochs for r in results),
                  worker=",".join(workers), raced_out=any(r.raced_out for r in results),
                  tasks=per)


def task_scores(record: CandidateRecord) -> str:
    """' [a 0.93, b 0.81]': the normalized score per task of a record, for progress lines."""
    per = record.tasks
    if not per:
        return ""
    return " [" + ", ".join(f"{n} {p['normalized']:.3f}" for n, p in per.items()) + "]"
