"""The comparison protocol: every contender on the same tasks, instances (seeds) and budget.

Work units are (task, group of contenders) as plain dicts, mapped on a backend by the
module-level :func:`run_unit`, which rebuilds the contenders from names and parameters. By
default each contender is its own unit (``backend.chunk = 1``): its batch then holds exactly
its ``instances`` models whatever else is listed, so adding a contender never moves another's
numbers, not even in the last bits (batch shape changes float rounding; docs/tasks.md). Loss
and expression contenders may share a batch with ``chunk > 1``; a training scheme is always a
unit of its own. A failing contender is recorded with its reason and never stops the run; a
scheme or loss that does not apply to a task is recorded as ``n/a`` with the reason.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossevo.backends import make_backend
from lossevo.comparison.config import CompareConfig, Contender, load_compare_config
from lossevo.tasks import Task

__all__ = ["compare", "make_units", "run_comparison", "run_unit"]

Result = dict[str, Any]


class _NotApplicable(Exception):
    """A contender that does not apply to a task (reason in the message)."""


def _build(c: Contender, task: Task) -> tuple[Any, Any]:
    """(loss for evaluate_many, scheme or None), rebuilt from plain data in the worker."""
    if c.expression is not None:
        return c.expression, None
    from lossevo.baselines.losses import REGRESSION_LOSSES, build_loss

    kind = task.kind
    base = c.loss or ("mse" if kind == "regression" else "ce")
    if kind == "regression" and base not in REGRESSION_LOSSES:
        raise _NotApplicable(f"loss {base!r} is classification-only; regression losses: "
                             + ", ".join(REGRESSION_LOSSES))
    loss = build_loss(base, kind=kind, **c.loss_params)
    if c.scheme is None:
        return loss, None
    from lossevo.baselines.schemes import build_scheme

    scheme = build_scheme(c.scheme, **c.scheme_params)
    reason = scheme.applies_to(task)
    if reason:
        raise _NotApplicable(str(reason))
    return loss, scheme


def _record(label: str, task: Task, status: str, reason: str | None = None,
            evaluation: Any = None) -> Result:
    rec: Result = {"contender": label, "task": task.name, "metric": task.metric,
                   "status": status, "reason": reason, "metrics": {}, "per_instance": {},
                   "seconds": 0.0, "loss": None}
    if evaluation is not None:
        rec.update(metrics=evaluation.metrics, per_instance=evaluation.per_instance,
                   seconds=evaluation.seconds, loss=evaluation.loss)
    return rec


def run_unit(payload: dict[str, Any]) -> list[Result]:
    """Worker entry point: train one unit's contenders on its task; plain data in and out."""
    import torch

    from lossevo.fitness import evaluate_many

    task: Task = payload["task"]
    contenders = [Contender(**d) for d in payload["contenders"]]
    out: list[Result | None] = [None] * len(contenders)
    built: list[tuple[int, Any, Any]] = []
    for i, c in enumerate(contenders):
        try:
            loss, scheme = _build(c, task)
            built.append((i, loss, scheme))
        except _NotApplicable as exc:
            out[i] = _record(c.label, task, "n/a", str(exc))
        except Exception as exc:
            out[i] = _record(c.label, task, "failed", f"{type(exc).__name__}: {exc}")
    schemes = {id(s) for _, _, s in built if s is not None}
    if schemes and len(built) > 1:
        raise ValueError("a training scheme must be a unit of its own")
    threads = torch.get_num_threads()
    torch.set_num_threads(payload["threads"])  # the same arithmetic on every backend
    try:
        if built:
            kwargs: dict[str, Any] = {}
            if built[0][2] is not None:
                kwargs["scheme"] = built[0][2]
            try:
                evals = evaluate_many([b[1] for b in built], task,
                                      instances=payload["instances"], seed=payload["seed"],
                                      device=payload["device"], **kwargs)
            except Exception as exc:
                evals = [None] * len(built)
                reason = f"{type(exc).__name__}: {exc}"
            for (i, _, _), ev in zip(built, evals, strict=True):
                label = contenders[i].label
                if ev is None:
                    out[i] = _record(label, task, "failed", reason)
                elif ev.rejected is not None:
                    out[i] = _record(label, task, "failed", ev.rejected, ev)
                else:
                    out[i] = _record(label, task, "ok", None, ev)
    finally:
        torch.set_num_threads(threads)
    return [r for r in out if r is not None]


def make_units(cfg: CompareConfig, device: str | None = None) -> list[dict[str, Any]]:
    """Work units in task order: schemes alone, other contenders in groups of backend.chunk."""
    units = []
    for task in cfg.tasks:
        plain = [c for c in cfg.contenders if c.scheme is None]
        groups = [plain[i:i + cfg.backend.chunk]
                  for i in range(0, len(plain), cfg.backend.chunk)]
        groups += [[c] for c in cfg.contenders if c.scheme is not None]
        units += [{"task": task, "contenders": [c.to_dict() for c in g],
                   "instances": cfg.instances, "seed": cfg.seed, "device": device,
                   "threads": 1} for g in groups]
    return units


def _progress_line(unit_results: list[Result], done: int, total: int, elapsed: float) -> str:
    parts = []
    for r in unit_results:
        if r["status"] == "ok":
            score = r["metrics"].get(f"{r['metric']}.worst_env.mean", float("nan"))
            parts.append(f"{r['contender']} on {r['task']}: {r['seconds']:.1f} s, "
                         f"worst-env {r['metric']} {score:.3f}")
        else:
            parts.append(f"{r['contender']} on {r['task']}: {r['status']} ({r['reason']})")
    left = elapsed / done * (total - done)
    return f"[{done}/{total}] " + "; ".join(parts) + f" — ~{left / 60:.1f} min left"


def run_comparison(cfg: CompareConfig, *, device: str | None = None,
                   log: Callable[[str], None] | None = None) -> list[Result]:
    """Train every contender on every task; one result dict per (contender, task), in
    config order. Progress lines go to ``log`` (unit by unit, with a time-left estimate)."""
    units = make_units(cfg, device)
    order = {(t.name, c.label): i for i, (t, c) in enumerate(
        (t, c) for t in cfg.tasks for c in cfg.contenders)}
    results: list[Result] = []
    b = cfg.backend
    started = time.perf_counter()
    with make_backend(b.name, workers=b.workers or None, scheduler=b.scheduler or None,
                      chunk_size=1) as backend:
        step = 1 if b.name == "serial" else max(1, backend.workers)
        for lo in range(0, len(units), step):
            batch = units[lo:lo + step]
            outcomes = backend.map(run_unit, batch, return_exceptions=True)
            for j, (unit, res) in enumerate(zip(batch, outcomes, strict=True)):
                if isinstance(res, BaseException):  # a worker died: only its unit is lost
                    res = [_record(c["label"], unit["task"], "failed", f"worker error: {res}")
                           for c in unit["contenders"]]
                results += res
                if log is not None:
                    log(_progress_line(res, lo + j + 1, len(units),
                                       time.perf_counter() - started))
    return sorted(results, key=lambda r: order[(r["task"], r["contender"])])


def compare(config: str | Path | CompareConfig, out: str | Path, *, quiet: bool = False,
            device: str | None = None, **overrides: Any) -> Path:
    """Run a comparison and write compare.csv/.json/.md and plots into ``out``.

    ``config``: a TOML path or a CompareConfig; ``overrides`` (TOML path only): backend
    ``name``/``workers``/``scheduler`` and ``instances``. Returns the output directory.
    """
    from lossevo.comparison.report import write_outputs

    if isinstance(config, CompareConfig):
        cfg, text = config, None
    else:
        cfg = load_compare_config(config, **overrides)
        text = Path(config).read_text()
    log = None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if log is not None:
        log(f"compare: {len(cfg.contenders)} contenders × {len(cfg.tasks)} tasks, "
            f"{cfg.instances} instances, seed {cfg.seed}, backend {cfg.backend.name}")
    t0 = time.perf_counter()
    results = run_comparison(cfg, device=device, log=log)
    path = write_outputs(cfg, results, out, config_text=text,
                         seconds=time.perf_counter() - t0)
    if log is not None:
        log(f"compare: wrote {path / 'compare.md'} in {time.perf_counter() - t0:.1f} s")
    return path
