"""The comparison protocol: every contender on the same tasks, instances (seeds) and budget.

Work units are (task, group of contenders) as plain dicts, mapped on a backend by the
module-level :func:`run_unit`, which rebuilds the contenders from names and parameters. By
default each contender is its own unit (``backend.chunk = 1``): its batch then holds exactly
its ``instances`` models whatever else is listed, so adding a contender never moves another's
numbers, not even in the last bits (batch shape changes float rounding; docs/tasks.md). Loss
and expression contenders may share a batch with ``chunk > 1``; a training scheme is always a
unit of its own, and contenders with ``early_stop`` never share a batch with those without
(``evaluate_many`` takes one ``early_stopping`` per call). With ``tune``, a contender first
chooses its grid point on validation (:mod:`lossevo.comparison.tuning`); the unit carries the
grids and the race, so they are part of its key. A failing contender is recorded with its
reason and never stops the run; a scheme or loss that does not apply to a task is recorded as
``n/a`` with the reason.

Units run as they come (``backend.as_completed``); each finished one is kept in the output
directory (:mod:`lossevo.comparison.units`), so Ctrl-C raises :class:`CompareInterrupted`
saying what was kept, and a rerun with the same ``--out`` trains only the rest.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossevo.comparison.config import CompareConfig, Contender, load_compare_config
from lossevo.comparison.units import UnitStore, check_out_dir
from lossevo.evaluation.tasks import Task
from lossevo.search.backends import make_backend
from lossevo.symbolic.kinds import TaskKind

__all__ = ["CompareInterrupted", "compare", "make_units", "run_comparison", "run_unit"]

Result = dict[str, Any]


class CompareInterrupted(KeyboardInterrupt):
    """Ctrl-C during a comparison; the message says which units were kept and how to go on."""


class _NotApplicable(Exception):
    """A contender that does not apply to a task (reason in the message)."""


def _build(c: Contender, task: Task) -> tuple[Any, Any]:
    """(loss for evaluate_many, scheme or None), rebuilt from plain data in the worker."""
    if c.expression is not None:
        return c.expression, None
    from lossevo.baselines.losses import REGRESSION_LOSSES, build_loss

    kind = task.kind
    base = c.loss or ("mse" if kind is TaskKind.REGRESSION else "ce")
    if kind is TaskKind.REGRESSION and base not in REGRESSION_LOSSES:
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
            evaluation: Any = None, tuning: dict[str, Any] | None = None) -> Result:
    rec: Result = {"contender": label, "task": task.name, "metric": task.metric,
                   "status": status, "reason": reason, "metrics": {}, "per_instance": {},
                   "seconds": 0.0, "loss": None, "stopped_epoch": None, "tuning": tuning}
    if evaluation is not None:
        rec.update(metrics=evaluation.metrics, per_instance=evaluation.per_instance,
                   seconds=evaluation.seconds, loss=evaluation.loss,
                   stopped_epoch=(evaluation.extra or {}).get("stopped_epoch"))
    return rec


def run_unit(payload: dict[str, Any]) -> list[Result]:
    """Worker entry point: train one unit's contenders on its task; plain data in and out."""
    import torch

    from lossevo.evaluation.fitness import evaluate_many

    task: Task = payload["task"]
    contenders = [Contender(**d) for d in payload["contenders"]]
    grids = payload.get("tuning", {}).get("grids", {})
    if len({c.early_stop for c in contenders}) > 1:
        raise ValueError("contenders with and without early_stop must be separate units")
    out: list[Result | None] = [None] * len(contenders)
    tuned: dict[int, dict[str, Any]] = {}
    built: list[tuple[int, Any, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(payload["threads"])  # the same arithmetic on every backend
    try:
        for i, c in enumerate(contenders):
            try:
                loss, scheme = _build(c, task)  # n/a before any tuning
                if c.label in grids:
                    from lossevo.comparison.tuning import tune

                    chosen, tuned[i] = tune(c, task, grids[c.label], _build,
                                            instances=payload["instances"],
                                            seed=payload["seed"], device=payload["device"])
                    loss, scheme = _build(chosen, task)
                built.append((i, loss, scheme))
            except _NotApplicable as exc:
                out[i] = _record(c.label, task, "n/a", str(exc))
            except Exception as exc:
                out[i] = _record(c.label, task, "failed", f"{type(exc).__name__}: {exc}",
                                 tuning=tuned.get(i))
        schemes = {id(s) for _, _, s in built if s is not None}
        if schemes and len(built) > 1:
            raise ValueError("a training scheme must be a unit of its own")
        if built:
            kwargs: dict[str, Any] = {}
            if built[0][2] is not None:
                kwargs["scheme"] = built[0][2]
            try:
                evals = evaluate_many([b[1] for b in built], task,
                                      instances=payload["instances"], seed=payload["seed"],
                                      device=payload["device"], split="test",
                                      early_stopping=contenders[0].early_stop, **kwargs)
            except Exception as exc:
                evals = [None] * len(built)
                reason = f"{type(exc).__name__}: {exc}"
            for (i, _, _), ev in zip(built, evals, strict=True):
                label = contenders[i].label
                if ev is None:
                    out[i] = _record(label, task, "failed", reason, tuning=tuned.get(i))
                elif ev.rejected is not None:
                    out[i] = _record(label, task, "failed", ev.rejected, ev, tuned.get(i))
                else:
                    out[i] = _record(label, task, "ok", None, ev, tuned.get(i))
    finally:
        torch.set_num_threads(threads)
    return [r for r in out if r is not None]


def make_units(cfg: CompareConfig, device: str | None = None) -> list[dict[str, Any]]:
    """Work units in task order: schemes alone, other contenders in groups of backend.chunk
    (early-stopped ones apart). A unit with tuned contenders carries their grids and the
    race (``"tuning"``), computed here once."""
    from lossevo.comparison.tuning import grids_for_unit, racing_settings

    units = []
    chunk = cfg.backend.chunk
    for task in cfg.tasks:
        groups = []
        for early in (False, True):
            plain = [c for c in cfg.contenders if c.scheme is None and c.early_stop == early]
            groups += [plain[i:i + chunk] for i in range(0, len(plain), chunk)]
        groups += [[c] for c in cfg.contenders if c.scheme is not None]
        for g in groups:
            unit = {"task": task, "contenders": [c.to_dict() for c in g],
                    "instances": cfg.instances, "seed": cfg.seed, "device": device,
                    "threads": 1}
            grids = grids_for_unit(g, task)
            if grids:
                unit["tuning"] = {"grids": grids, "racing": racing_settings()}
            units.append(unit)
    return units


def _progress_line(unit_results: list[Result], done: int, total: int, elapsed: float,
                   trained: int) -> str:
    parts = []
    for r in unit_results:
        if r["status"] == "ok":
            clean = r["metrics"].get(f"{r['metric']}.clean.mean", float("nan"))
            worst = r["metrics"].get(f"{r['metric']}.worst_env.mean", float("nan"))
            tuned = (f" + tuning {r['tuning']['seconds']:.1f} s" if r.get("tuning")
                     else "")
            parts.append(f"{r['contender']} on {r['task']}: {r['seconds']:.1f} s{tuned}, "
                         f"clean {r['metric']} {clean:.3f}, worst-env {worst:.3f}")
        else:
            parts.append(f"{r['contender']} on {r['task']}: {r['status']} ({r['reason']})")
    left = elapsed / trained * (total - done)
    return f"[{done}/{total}] " + "; ".join(parts) + f" — ~{left / 60:.1f} min left"


def _interrupted(done: int, kept: int, total: int, store: UnitStore | None) -> str:
    if store is None:
        return f"{done} of {total} units had finished; nothing is kept (no output directory)"
    return (f"{kept} of {total} units are finished and kept in {store.root}; rerun the same "
            "compare with the same --out to train only the rest (a unit is reused while its "
            "task, contenders, instances, seed, tuning and device are unchanged)")


def run_comparison(cfg: CompareConfig, *, device: str | None = None,
                   log: Callable[[str], None] | None = None,
                   store: UnitStore | None = None) -> list[Result]:
    """Train every contender on every task; one result dict per (contender, task), in
    config order. Progress lines go to ``log`` (unit by unit, with a time-left estimate).

    ``store``: units found there are reused, units finished here are kept there as they
    complete. Ctrl-C stops the workers at once and raises :class:`CompareInterrupted`.
    """
    units = make_units(cfg, device)
    order = {(t.name, c.label): i for i, (t, c) in enumerate(
        (t, c) for t in cfg.tasks for c in cfg.contenders)}
    done: dict[int, list[Result]] = {}
    kept = 0
    b = cfg.backend
    try:
        if store is not None:
            for i, unit in enumerate(units):
                found = store.load(unit)
                if found is not None:
                    done[i] = found
            kept = len(done)
            if done and log is not None:
                log(f"compare: reusing {len(done)} of {len(units)} finished units from "
                    f"{store.root}")
        todo = [i for i in range(len(units)) if i not in done]
        started = time.perf_counter()
        if todo:
            with make_backend(b.name, workers=b.workers or None, scheduler=b.scheduler or None,
                              chunk_size=1) as backend:
                for trained, (j, res) in enumerate(backend.as_completed(
                        run_unit, [units[i] for i in todo], return_exceptions=True), 1):
                    unit = units[todo[j]]
                    if isinstance(res, BaseException):  # a worker error: only its unit is lost
                        res = [_record(c["label"], unit["task"], "failed",
                                       f"worker error: {res}") for c in unit["contenders"]]
                    elif store is not None:
                        kept += store.save(unit, res)
                    done[todo[j]] = res
                    if log is not None:
                        log(_progress_line(res, len(done), len(units),
                                           time.perf_counter() - started, trained))
    except KeyboardInterrupt:
        raise CompareInterrupted(_interrupted(len(done), kept, len(units), store)) from None
    results = [r for i in sorted(done) for r in done[i]]
    return sorted(results, key=lambda r: order[(r["task"], r["contender"])])


def compare(config: str | Path | CompareConfig, out: str | Path, *, quiet: bool = False,
            device: str | None = None, reuse: bool = True, **overrides: Any) -> Path:
    """Run a comparison and write compare.csv/.json/.md and plots into ``out``.

    ``config``: a TOML path or a CompareConfig; ``overrides`` (TOML path only): backend
    ``name``/``workers``/``scheduler`` and ``instances``. ``out`` is checked (created,
    writable) before any training; finished units are kept in ``out/units`` and, with
    ``reuse``, units kept by an earlier run of the same units are not trained again.
    Returns the output directory.
    """
    from lossevo.comparison.report import write_outputs

    if isinstance(config, CompareConfig):
        cfg, text = config, None
    else:
        cfg = load_compare_config(config, **overrides)
        text = Path(config).read_text()
    out = check_out_dir(out)
    store = UnitStore(out, reuse=reuse)
    log = None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if log is not None:
        tuning = ("tuned on validation" + (" (evolved too)" if cfg.tune_evolved else "")
                  if cfg.tune else "defaults, untuned")
        log(f"compare: {len(cfg.contenders)} contenders × {len(cfg.tasks)} tasks, "
            f"{cfg.instances} instances, seed {cfg.seed}, backend {cfg.backend.name}, "
            f"{tuning}")
    t0 = time.perf_counter()
    results = run_comparison(cfg, device=device, log=log, store=store)
    path = write_outputs(cfg, results, out, config_text=text,
                         seconds=time.perf_counter() - t0)
    if log is not None:
        log(f"compare: wrote {path / 'compare.md'} in {time.perf_counter() - t0:.1f} s")
    return path
