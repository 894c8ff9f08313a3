"""Fair tuning for ``lossevo compare`` (``tune = true``): each contender chooses one point of
its declared grid on the validation split, and only the chosen point is scored on test.

The same budget for everyone: at most 4 points per contender, raced over the comparison's
instances with :data:`TUNING_RACING`, all on ``split="validation"`` (noisy like training, as a
user has it), with the contender's own early stopping. The winner is the best fitness vector
of the task (``task.fitness_spec``, compared in order) among the points that ran every
instance; an exact tie keeps the default. Test is never read here.

Grids: built-in losses ``lossevo.baselines.losses.grid_points``, schemes
``lossevo.baselines.schemes.scheme_grid_points`` (their main hyperparameter; the base loss
stays as configured); evolved losses (``tune_evolved = true``) every numeric constant scaled
jointly by :data:`EVOLVED_SCALES` (×1 is the loss as evolved). A hyperparameter the contender's
table sets explicitly is fixed: its values leave the grid.

Losses and expressions race in one ``evaluate_many(..., racing=)`` call (new instances only
each round). Each scheme point is a different training scheme, which ``evaluate_many`` takes
one at a time and only from instance 0, so a scheme's round re-trains the instances it has
already seen (the same seeds give the same models up to float rounding): the same decisions
at more training cost, recorded in ``trainings``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from lossevo.comparison.config import Contender
from lossevo.evaluation.racing import Racing, race
from lossevo.evaluation.tasks import Task
from lossevo.symbolic.kinds import TaskKind

__all__ = ["EVOLVED_SCALES", "TUNING_RACING", "apply_point", "grid", "grids_for_unit",
           "point_text", "racing_settings", "scale_constants", "tune"]

TUNING_RACING = Racing(initial=2, growth=2.0, keep_quantile=0.5, min_survivors=1)
EVOLVED_SCALES = (0.5, 1.0, 1.5, 2.0)
_MAX_POINTS = 4

Point = dict[str, Any]
Build = Callable[[Contender, Task], tuple[Any, Any]]


def _constants(expression: str) -> list[float]:
    from lossevo.symbolic.parse import parse

    return [n.value for n in parse(expression) if n.kind == "constant" and n.value != 0]


def scale_constants(expression: str, factor: float) -> str:
    """The expression with every numeric constant multiplied by ``factor`` (shortest float
    text; the tree is otherwise unchanged)."""
    from lossevo.symbolic.parse import format_nodes, parse

    return format_nodes([dataclasses.replace(n, value=float(f"{n.value * factor:.12g}"))
                         if n.kind == "constant" else n for n in parse(expression)])


def _without_fixed(points: list[Point], fixed: dict[str, Any]) -> list[Point]:
    """Grid points with the explicitly set hyperparameters dropped (and the duplicates that
    leaves); only the remaining keys are tuned."""
    out: list[Point] = []
    for p in points:
        q = {k: v for k, v in p.items() if k not in fixed}
        if q not in out:
            out.append(q)
    return out


def grid(c: Contender, task: Task) -> list[Point]:
    """The contender's tuning points on ``task`` (overrides for :func:`apply_point`); one
    point ``{}`` when there is nothing to tune, none when the contender cannot run there."""
    try:
        if c.expression is not None:
            return ([{"scale": s} for s in EVOLVED_SCALES] if _constants(c.expression)
                    else [{}])
        if c.scheme is not None:
            from lossevo.baselines.schemes import scheme_grid_points

            points = _without_fixed(scheme_grid_points(c.scheme, task), c.scheme_params)
        else:
            from lossevo.baselines.losses import grid_points

            base = c.loss or ("mse" if task.kind is TaskKind.REGRESSION else "ce")
            points = _without_fixed(grid_points(base, task.kind), c.loss_params)
    except ValueError:  # e.g. a classification loss on a regression task: n/a when run
        return []
    if len(points) > _MAX_POINTS:
        raise ValueError(f"{c.label}: a tuning grid has at most {_MAX_POINTS} points, "
                         f"got {len(points)}")
    return points


def apply_point(c: Contender, point: Point) -> Contender:
    """The contender with one grid point applied (same label)."""
    if not point or point == {"scale": 1.0}:  # ×1 keeps the evolved text exactly
        return c
    if c.expression is not None:
        return dataclasses.replace(c, expression=scale_constants(c.expression,
                                                                 point["scale"]))
    if c.scheme is not None:
        return dataclasses.replace(c, scheme_params={**c.scheme_params, **point})
    return dataclasses.replace(c, loss_params={**c.loss_params, **point})


def point_text(point: Point | None) -> str:
    """``q=0.5`` (``×1.5`` for an evolved loss's scale); empty for no point."""
    if not point:
        return ""
    if set(point) == {"scale"}:
        return f"×{point['scale']:g}"
    return ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
                     for k, v in point.items())


def _default_index(c: Contender, task: Task, points: list[Point]) -> int | None:
    """Which point is the contender untuned (None when no point is)."""
    if c.expression is not None:
        defaults: dict[str, Any] = {"scale": 1.0}
    elif c.scheme is not None:
        from lossevo.baselines.scheme_base import attack_epsilon
        from lossevo.baselines.schemes import RELATIVE_GRIDS, scheme_class

        defaults = {f.name: f.default for f in dataclasses.fields(scheme_class(c.scheme))}
        relative = RELATIVE_GRIDS.get(c.scheme)
        if relative is not None and defaults.get(relative) is None:
            defaults[relative] = attack_epsilon(None, task)
    else:
        from lossevo.baselines.losses import loss_defaults

        defaults = loss_defaults(c.loss or ("mse" if task.kind is TaskKind.REGRESSION else "ce"),
                                 task.kind)
    return next((i for i, p in enumerate(points)
                 if all(defaults.get(k) == v for k, v in p.items())), None)


def tune(c: Contender, task: Task, points: list[Point], build: Build, *, instances: int,
         seed: int, device: Any) -> tuple[Contender, dict[str, Any]]:
    """Choose ``c``'s grid point on validation (see the module docstring); returns the
    contender with the chosen point applied and a plain record of every point's outcome."""
    from lossevo.evaluation.fitness import evaluate_many

    started = time.perf_counter()
    variants = [apply_point(c, p) for p in points]
    built = [build(v, task) for v in variants]
    common = {"seed": seed, "device": device, "split": "validation",
              "early_stopping": c.early_stop}
    if c.scheme is None:
        evals = evaluate_many([b[0] for b in built], task, instances=instances,
                              racing=TUNING_RACING, **common)
        trainings = [ev.trainings for ev in evals]
        raced_out = [ev.raced_out for ev in evals]
    else:
        found: list[Any] = [None] * len(points)
        trained = [0] * len(points)

        def run_round(idx: list[int], ids: list[int]) -> list[int]:
            count = ids[-1] + 1  # instances 0..count-1: earlier ones are trained again
            for i in idx:
                found[i] = evaluate_many([built[i][0]], task, instances=count,
                                         scheme=built[i][1], **common)[0]
                trained[i] += count
            return [i for i in idx if found[i].rejected is None]

        outcome = race(list(range(len(points))), instances, TUNING_RACING, run_round,
                       lambda i: found[i].fitness[0])
        evals, trainings = found, trained
        raced_out = [i in outcome.raced_out for i in range(len(points))]
    finished = [i for i, ev in enumerate(evals)
                if ev is not None and ev.rejected is None and not raced_out[i]]
    default = _default_index(c, task, points)
    chosen = max(finished, key=lambda i: (evals[i].fitness, i == default), default=None)
    reason = None
    if chosen is None:  # every point failed: report the contender as configured
        chosen, reason = default, "every grid point failed on validation"
    record = {
        "points": points,
        "fitness_spec": list(task.fitness_spec),
        "validation": [None if ev is None or ev.rejected else list(ev.fitness)
                       for ev in evals],
        "instances": [0 if ev is None else ev.instances for ev in evals],
        "raced_out": raced_out,
        "rejected": [None if ev is None else ev.rejected for ev in evals],
        "trainings": sum(trainings),
        "chosen": None if chosen is None else points[chosen],
        "chosen_index": chosen,
        "default_index": default,
        "reason": reason,
        "seconds": time.perf_counter() - started,
    }
    return (c if chosen is None else variants[chosen]), record


def grids_for_unit(contenders: list[Contender], task: Task) -> dict[str, list[Point]]:
    """{label: points} of the unit's contenders that are tuned and have more than one point."""
    out = {}
    for c in contenders:
        if c.tune:
            points = grid(c, task)
            if len(points) > 1:
                out[c.label] = points
    return out


def racing_settings() -> dict[str, Any]:
    """The tuning race as plain data (reports, unit keys)."""
    return dataclasses.asdict(TUNING_RACING)

