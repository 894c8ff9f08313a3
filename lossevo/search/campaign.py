"""A campaign: config → evaluated generations → run directory, resumable exactly.

One generation: make offspring (seeded ``random.Random``), look each one up in the fitness
cache by canonical key, evaluate the misses in chunks on the backend (each chunk trains its
candidates × instances together), select, update the hall of fame and Pareto front, record
every candidate in SQLite, then checkpoint. A candidate is a Child until scored, then a frozen
CandidateRecord; the cache keeps each function's Result (lossevo.search.records), and the whole
state is a CampaignState (lossevo.search.state). Evaluation depends only on (expression, task,
instances, seed), never on the backend or the chunk a candidate landed in, so a resumed run
or another backend retraces the same path. With ``[fidelity]`` the new candidates of a
generation go through successive halving over the epochs (lossevo.evaluation.fidelity): each record
keeps the fidelity it reached, and selection, hall of fame and Pareto front rank by it first.
With ``tasks`` (several tasks) every candidate trains on each of them, and its fitness is the
aggregate of its normalized per-task scores (lossevo.search.multitask), whose chance values and
baseline scores are computed once, before generation 0, and kept in the checkpoint.
With ``[constant_tuning]`` the best few functions of a generation get their constants tuned on
validation before selection (lossevo.search.constant_tuning); tuned children that beat their parent
join the pool, and the proposals' trainings are counted in the generation's ``tuning`` counts.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lossevo.errors import CampaignFailed
from lossevo.evaluation.fidelity import hall_of_fame_by_tier, select_by_tier, successive_halving
from lossevo.evaluation.fitness import MAX_MODELS, evaluate_many
from lossevo.evaluation.sizing import check_campaign
from lossevo.evaluation.tasks import Task
from lossevo.search import multitask
from lossevo.search.backends import make_backend
from lossevo.search.config import CampaignConfig, load_config
from lossevo.search.constant_tuning import describe, tune_step
from lossevo.search.evolution import (
    hall_of_fame,
    initial_expressions,
    novelty_checker,
    offspring,
    pareto_front,
    select,
)
from lossevo.search.records import CandidateRecord, Child, Json, Result
from lossevo.search.run_config import keep_config, load_run_config
from lossevo.search.state import CampaignState
from lossevo.search.store import RunStore, reason_class
from lossevo.symbolic.expression import canonical_key
from lossevo.symbolic.parse import parse

__all__ = ["Campaign", "CampaignFailed", "evaluate_chunk", "load_run_config", "resume", "run"]


def evaluate_chunk(payload: Json) -> list[Result]:
    """Worker entry point: evaluate expressions together; plain data in, frozen results out."""
    threads = torch.get_num_threads()
    torch.set_num_threads(payload["threads"])  # the same arithmetic on every backend
    try:
        evals = evaluate_many(payload["expressions"], payload["task"],
                              instances=payload["instances"], seed=payload["seed"],
                              racing=payload["racing"], device=payload["device"],
                              split="validation")  # a campaign never reads the test split
    finally:
        torch.set_num_threads(threads)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return [Result.from_evaluation(e, worker) for e in evals]


class Campaign:
    """Runs generations on a run directory; use :func:`run` and :func:`resume`."""

    def __init__(self, cfg: CampaignConfig, store: RunStore, *, log: Callable[[str], None],
                 device: str | None = None):
        self.cfg, self.store, self.log = cfg, store, log
        self.device = device
        self.state = CampaignState()

    # --- evaluation -------------------------------------------------------------------------
    def _evaluate(self, children: Sequence[Child], backend
                  ) -> tuple[list[CandidateRecord], dict[str, Any]]:
        """Score each child from the cache or by evaluation: their records (not numbered
        yet) and the counts."""
        cache = self.state.cache
        misses: dict[str, str] = {}
        scale_free = multitask.scale_free(self.cfg.tasks)  # scale-free on every task
        budget = self.cfg.task.budget
        keys = [canonical_key(c.expression, self.cfg.task.kind, budget.weight_decay,
                              scale_free=scale_free)  # losses that train alike share a key
                for c in children]
        for child, key in zip(children, keys, strict=True):
            if key not in cache:
                misses.setdefault(key, child.expression)
        rungs = self._evaluate_misses(list(misses), misses, backend)
        records = []
        for child, key in zip(children, keys, strict=True):
            hit = key not in misses
            misses.pop(key, None)  # later duplicates count as cache hits
            records.append(CandidateRecord.from_result(child, key, len(parse(child.expression)),
                                                       cache[key], cached=hit))
        hits = sum(r.cached for r in records)
        counts: dict[str, Any] = {"evaluated": len(children) - hits, "hits": hits,
                                  "rejected": sum(1 for r in records if r.rejected)}
        if rungs is not None:
            counts["rungs"] = rungs
        return records, counts

    def _evaluate_misses(self, keys: list[str], misses: dict[str, str], backend
                         ) -> list[list[int]] | None:
        """Evaluate `keys` into the cache: at once, or by successive halving over the whole
        generation (lossevo.evaluation.fidelity), so that who goes on never depends on the chunks.
        Returns the (trained, went on) count of each rung, or None without fidelity."""
        cfg, cache = self.cfg, self.state.cache
        fid = cfg.fidelity
        if fid is None:
            cache.update(self._map_all(keys, misses, None, backend))
            return None

        def run_rung(r: int, alive: list[str]) -> list[str]:
            got = self._map_all(alive, misses, r, backend)
            for key, res in got.items():
                cache[key] = res.at_rung(fid.rungs[r], cache.get(key))
            return [k for k in alive if not got[k].rejected]

        def score(key: str) -> tuple[float, ...]:  # raced out inside the rung: after the rest
            return (float(not cache[key].raced_out), *cache[key].fitness)

        outcome = successive_halving(keys, fid, run_rung, score)
        return [list(r) for r in outcome.rungs]

    def _map_all(self, keys: list[str], misses: dict[str, str], rung: int | None, backend
                 ) -> dict[str, Result]:
        """Evaluate `keys` on every task (at fidelity rung `rung`; None: the full budget);
        several tasks' results become one result per key (lossevo.search.multitask.combine)."""
        tasks = multitask.at_rung(self.cfg.tasks, self.cfg.fidelity, rung)
        got = self._map_tasks(keys, misses, tasks, backend)
        if self.cfg.multi_task is None:
            return got[0]
        refs = self.state.multi_task
        assert refs is not None  # computed before generation 0 (_references)
        return {k: multitask.combine(refs, [g[k] for g in got]) for k in keys}

    def _map_tasks(self, keys: list[str], misses: dict[str, str], tasks: list[Task], backend
                   ) -> list[dict[str, Result]]:
        """Evaluate `keys` on each task in chunks, all in one map on the backend; a dead
        chunk's candidates are rejected with the worker's error, the others are unaffected."""
        step = self.cfg.backend.chunk
        starts = range(0, len(keys), step)
        payloads = [{
            "expressions": [misses[k] for k in keys[i:i + step]], "task": task,
            "instances": self.cfg.instances, "seed": self.cfg.seed, "racing": self.cfg.racing,
            "device": self.device, "threads": 1,
        } for task in tasks for i in starts]
        results = backend.map(evaluate_chunk, payloads, return_exceptions=True) if payloads else []
        out: list[dict[str, Result]] = [{} for _ in tasks]
        for n, (payload, result) in enumerate(zip(payloads, results, strict=True)):
            t, start = divmod(n, len(starts))
            for j, _ in enumerate(payload["expressions"]):
                key = keys[starts[start] + j]
                if isinstance(result, BaseException):  # a worker died: only its chunk is lost
                    out[t][key] = Result.worker_error(len(tasks[t].fitness_spec), result)
                else:
                    out[t][key] = result[j]
        return out

    def _number(self, records: list[CandidateRecord], generation: int
                ) -> list[CandidateRecord]:
        first = self.state.next_id
        self.state.next_id += len(records)
        return [r.numbered(first + i, generation) for i, r in enumerate(records)]

    def _commit(self, generation: int, children: list[CandidateRecord], counts: dict[str, Any],
                seconds: float) -> None:
        st = self.state
        size = self.cfg.evolution.hall_of_fame
        if self.cfg.fidelity is None:
            st.hall_of_fame = hall_of_fame(st.hall_of_fame, children, size)
            st.pareto = pareto_front(st.pareto, children)
        else:  # low-rung scores are not comparable with full ones (lossevo.evaluation.fidelity)
            st.hall_of_fame = hall_of_fame_by_tier(st.hall_of_fame, children, size,
                                                   hall_of_fame)
            st.pareto = pareto_front(st.pareto, [
                c for c in children if c.fidelity == 1.0 and not c.raced_out])
        valid = [c.fitness[0] for c in st.population if not c.rejected]
        best = st.hall_of_fame[0].fitness if st.hall_of_fame else None
        st.history.append({
            "generation": generation, **counts, "seconds": seconds,
            "best": best[0] if best else None,
            "median": statistics.median(valid) if valid else None,
        })
        for key in ("evaluated", "hits", "rejected"):  # tuning proposals count too
            st.counters[key] += counts[key] + counts.get("tuning", {}).get(key, 0)
        st.generation = generation
        self.store.record([c.to_row() for c in children])
        version, internal, gauss = self.rng.getstate()
        st.rng = {"version": version, "internal": list(internal), "gauss_next": gauss}
        self.store.save_checkpoint(st.to_json())

    def _progress(self, generation: int, counts: dict[str, Any], seconds: float) -> None:
        h = self.state.hall_of_fame
        best = ("none yet" if not h else f"{tuple(round(v, 4) for v in h[0].fitness)}"
                + multitask.task_scores(h[0]))
        done = [r["seconds"] for r in self.state.history]
        left = (self.cfg.evolution.generations - generation) * statistics.mean(done)
        rungs = ""
        if counts.get("rungs"):  # e.g. "(rungs of 4/13/40 epochs trained 16→6→2)"
            epochs = self.cfg.fidelity.epochs(self.cfg.task.budget.epochs)
            trained = [n for n, _ in counts["rungs"]]
            rungs = (f" (rungs of {'/'.join(map(str, epochs[:len(trained)]))} epochs trained "
                     f"{'→'.join(map(str, trained))})")
        self.log(f"gen {generation:3d}/{self.cfg.evolution.generations}: "
                 f"{counts['evaluated']} evaluated{rungs}, {counts['hits']} cache hits, "
                 f"{counts['rejected']} rejected{describe(counts.get('tuning'))}, best {best}, "
                 f"{seconds:.1f} s, "
                 f"~{left / 60:.1f} min left")

    def _select(self, pool: list[CandidateRecord]) -> list[CandidateRecord]:
        """NSGA-II selection; with fidelity, tier by tier
        (lossevo.evaluation.fidelity.select_by_tier)."""
        cfg = self.cfg
        if cfg.fidelity is None:
            return select(cfg, pool)

        def within(records: list[CandidateRecord], n: int) -> list[CandidateRecord]:
            evo = dataclasses.replace(cfg.evolution, population=max(2, n))
            return select(dataclasses.replace(cfg, evolution=evo), records)

        return select_by_tier(pool, cfg.evolution.population, within)

    # --- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        self.rng = random.Random(self.cfg.seed)
        self.state = CampaignState()

    def restore(self, state: CampaignState) -> None:
        self.state = state
        self.rng = random.Random()
        rng = state.rng or {}
        self.rng.setstate((rng["version"], tuple(rng["internal"]), rng["gauss_next"]))
        self.store.truncate_after(state.generation)

    def run_generations(self) -> None:
        cfg = self.cfg
        if self.state.generation < cfg.evolution.generations:
            self._loop()
        self._check_something_trained()

    def _check_something_trained(self) -> None:
        st = self.state
        if st.hall_of_fame or not st.counters["evaluated"]:
            return
        reasons = Counter(reason_class(r.rejected) for r in st.cache.values())
        top = "; ".join(f"{n}× {why}" for why, n in reasons.most_common(5))
        raise CampaignFailed(f"every candidate was rejected ({st.counters['evaluated']} "
                             f"evaluated): {top}. Check the task (learning rate, budget) "
                             f"with lossevo.evaluate on a known loss first")

    def _loop(self) -> None:
        cfg = self.cfg
        with make_backend(cfg.backend.name, workers=cfg.backend.workers or None,
                          scheduler=cfg.backend.scheduler or None, chunk_size=1) as backend:
            self.log(f"task{'s' * (len(cfg.tasks) > 1)} "
                     f"{', '.join(t.name for t in cfg.tasks)}: population "
                     f"{cfg.evolution.population}, "
                     f"offspring {cfg.evolution.offspring}, {cfg.evolution.generations} "
                     f"generations, {cfg.instances} instances, backend {backend!r}"
                     + self._fidelity_line())
            if cfg.multi_task is not None:
                self._references(backend)
            while self.state.generation < cfg.evolution.generations:
                generation = self.state.generation + 1
                t0 = time.perf_counter()
                if generation == 0:
                    children = [Child(e) for e in initial_expressions(cfg, self.rng)]
                else:
                    children = offspring(cfg, self.state.population, self.rng,
                                         seen=novelty_checker(
                                             self.state.cache, cfg.task.kind,
                                             cfg.task.budget.weight_decay,
                                             scale_free=multitask.scale_free(cfg.tasks)))
                records, counts = self._evaluate(children, backend)
                records = self._number(records, generation)
                pool = records if generation == 0 else self.state.population + records
                if cfg.constant_tuning is not None and cfg.constant_tuning.due(generation):
                    tuned, counts["tuning"] = self._tune(generation, pool, backend)
                    records, pool = records + tuned, pool + tuned
                self.state.population = self._select(pool)
                seconds = time.perf_counter() - t0
                self._commit(generation, records, counts, seconds)
                self._progress(generation, counts, seconds)

    def _tune(self, generation: int, pool: list[CandidateRecord], backend
              ) -> tuple[list[CandidateRecord], dict[str, Any]]:
        """The memetic step (lossevo.search.constant_tuning): the best few functions of `pool`
        with their constants tuned on validation, evaluated like children; those that beat
        their parent come back numbered, with the step's counts."""
        assert self.cfg.constant_tuning is not None
        if self.state.tuned is None:
            self.state.tuned = []
        tuned, counts = tune_step(
            pool, self.cfg.constant_tuning, lambda kids: self._evaluate(kids, backend),
            seed=self.cfg.seed, generation=generation, decimals=self.cfg.constants.decimals,
            done=self.state.tuned, cache=self.state.cache)
        return self._number(tuned, generation), counts

    def _references(self, backend) -> None:
        """Each task's chance value and best baseline (lossevo.search.multitask): computed once,
        before generation 0, then kept in the state so a resumed run reuses them."""
        cfg, st = self.cfg, self.state
        assert cfg.multi_task is not None
        if st.multi_task is None:
            st.multi_task = multitask.compute_references(
                cfg, lambda p: backend.map(evaluate_chunk, p, return_exceptions=True),
                self.device)
        multitask.check_references(cfg, st.multi_task)
        self.log(f"multi-task fitness: {cfg.multi_task.aggregate} of (score − chance) / "
                 f"(best baseline − chance), baselines {', '.join(st.multi_task['baselines'])}")
        for line in multitask.reference_lines(st.multi_task):
            self.log(line)

    def _fidelity_line(self) -> str:
        fid = self.cfg.fidelity
        if fid is None:
            return ""
        epochs = fid.epochs(self.cfg.task.budget.epochs)
        return (f", multi-fidelity rungs of {'/'.join(map(str, epochs))} epochs keeping "
                f"{fid.keep:.2f} of each")


def _printer(quiet: bool) -> Callable[[str], None]:
    return (lambda _msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))


def _estimate(cfg: CampaignConfig) -> None:
    """Refuse sizes that cannot fit or finish, before the run directory is made."""
    evo = cfg.evolution
    workers = 1 if cfg.backend.name == "serial" else (cfg.backend.workers or os.cpu_count() or 1)
    baselines = (0 if cfg.multi_task is None else  # trained once for the normalization
                 len(cfg.multi_task.baseline_names(cfg.task.kind)))
    tuning = 0 if cfg.constant_tuning is None else cfg.constant_tuning.proposals(evo.generations)
    check_campaign(cfg.task if cfg.multi_task is None else cfg.tasks, instances=cfg.instances,
                   candidates=evo.population + evo.generations * evo.offspring + baselines
                   + tuning,
                   workers=workers, models_per_batch=MAX_MODELS["cpu"] * cfg.backend.chunk)


def run(config_path: str | Path, out: str | Path, *, quiet: bool = False,
        device: str | None = None, **overrides: Any) -> RunStore:
    """Start a campaign from a TOML file into a new run directory (see :mod:`lossevo.search.store`).

    ``overrides``: ``name``/``workers``/``scheduler`` of the backend and ``seed``; they are
    stored beside the config so that ``resume`` rebuilds exactly the configuration that ran
    (lossevo.search.run_config, which also keeps copies of the task files). The whole config
    is validated before the directory is made.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_config(config_path, **overrides)
    _estimate(cfg)
    store = RunStore(out)
    with store.lock("run"):
        keep_config(store, config_path, {**overrides, "device": device})
        campaign = Campaign(cfg, store, log=_printer(quiet), device=device)
        campaign.start()
        campaign.run_generations()
    return store


def resume(out: str | Path, *, quiet: bool = False, use_previous: bool = False) -> RunStore:
    """Continue a run from its last complete generation (or the one before, if asked).

    A run stopped before its first checkpoint starts again from generation 0 with the
    stored config: the same seed gives the same run."""
    store = RunStore(out)
    cfg, extra = load_run_config(store)
    with store.lock("resume"):
        log = _printer(quiet)
        campaign = Campaign(cfg, store, log=log, device=extra["device"])
        if store.has_checkpoint() or use_previous:
            campaign.restore(store.load_state(previous=use_previous))
        else:
            log(f"{store.root}: no complete generation yet; starting from generation 0")
            store.truncate_after(-1)
            campaign.start()
        campaign.run_generations()
    return store
