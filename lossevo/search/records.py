"""What a campaign records about a candidate, from evaluation to the run store and the reports.

A function trains once: the fitness cache keeps what evaluating it gave, a :class:`Result`,
under its canonical key. Every candidate that carries the function (a new child, a later copy
served from the cache, a tuned proposal) becomes a :class:`CandidateRecord`: its text and
origin (a :class:`Child`), its key and size, the scores of the result, and, once numbered, its
id and generation. Both are frozen: the population, the hall of fame and the Pareto front share
records, so the campaign makes new ones instead of editing one in place.

On disk a record has two forms, converted here and nowhere else (lossevo.search.store moves
the bytes): a row of the SQLite ``candidates`` table (:meth:`CandidateRecord.to_row`) and an
entry of the checkpoint JSON (:meth:`CandidateRecord.to_json`, :meth:`Result.to_json` for the
cache). Both are what earlier versions wrote, key order included, so a run directory written
by either opens, resumes and reports with the other, and a campaign writes the same bytes
(timings aside); only a chunk lost to a dead worker now also records ``raced_out`` false and
``model_epochs`` 0 in its cache entries. Reading is lenient where earlier versions wrote less
(no ``fidelity``: the full budget; no ``raced_out``: completed; no ``tasks``: one task), and
rewrites such an entry complete.

A row keeps less than a checkpoint entry: no ``raced_out``, and ``status`` folds ``rejected``
and ``cached`` into one word (a copy of a rejected function is "rejected"), so
:meth:`CandidateRecord.from_row` reads such a copy as not cached and every row as completed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lossevo.evaluation.fitness import Evaluation

__all__ = ["CandidateRecord", "Child", "Json", "Result"]

Json = dict[str, Any]  # plain JSON data: a checkpoint entry, a database row, a task's results


@dataclass(frozen=True)
class Child:
    """A candidate before evaluation: its text and where it came from (``operator`` "init",
    "crossover", a mutation's name, "reproduction" or "tune"; ``parents``: their ids)."""

    expression: str
    parents: tuple[int, ...] = ()
    operator: str = "init"


@dataclass(frozen=True)
class Result:
    """What evaluating one function gave: the fitness cache's value, keyed by canonical key.

    ``seconds``, ``trainings`` and ``model_epochs`` add up over the rungs of multi-fidelity
    evaluation (lossevo.evaluation.fidelity), which also sets ``fidelity`` (the share of the
    epochs the scores come from) and ``rung_fitness`` (each rung's fitness; None without
    rungs). ``tasks``: each task's own results in a multi-task campaign
    (lossevo.search.multitask), None with one task."""

    fitness: tuple[float, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    rejected: str | None = None
    seconds: float = 0.0
    trainings: int = 0
    worker: str = "?"
    raced_out: bool = False
    model_epochs: int = 0
    fidelity: float = 1.0
    rung_fitness: tuple[tuple[float, ...], ...] | None = None
    tasks: Mapping[str, Json] | None = None

    @classmethod
    def from_evaluation(cls, evaluation: Evaluation, worker: str) -> Result:
        """A worker's evaluation of one candidate (``worker``: host:pid, for the record)."""
        return cls(fitness=tuple(evaluation.fitness), metrics=evaluation.metrics,
                   rejected=evaluation.rejected, seconds=evaluation.seconds,
                   trainings=evaluation.trainings, worker=worker,
                   raced_out=evaluation.raced_out, model_epochs=evaluation.model_epochs)

    @classmethod
    def worker_error(cls, width: int, error: BaseException) -> Result:
        """A candidate whose chunk died with `error`: rejected, `width` fitness values -inf."""
        return cls(fitness=(float("-inf"),) * width, rejected=f"worker error: {error}")

    def at_rung(self, fidelity: float, before: Result | None) -> Result:
        """This rung's result as the cache keeps it: a rung retrains from scratch, so the
        costs of the rungs `before` it add up, and their fitness values are kept in order."""
        if before is None:
            before = Result((), seconds=0, trainings=0, model_epochs=0)
        return dataclasses.replace(
            self, fidelity=fidelity, rung_fitness=(*(before.rung_fitness or ()), self.fitness),
            seconds=before.seconds + self.seconds, trainings=before.trainings + self.trainings,
            model_epochs=before.model_epochs + self.model_epochs)

    def to_json(self) -> Json:
        """The cache entry of a checkpoint."""
        out: Json = {"fitness": list(self.fitness), "metrics": self.metrics,
                     "rejected": self.rejected, "seconds": self.seconds,
                     "trainings": self.trainings}
        if self.tasks is None:
            out.update(worker=self.worker, raced_out=self.raced_out,
                       model_epochs=self.model_epochs)
        else:  # the order multi-task entries have always been written in
            out.update(model_epochs=self.model_epochs, worker=self.worker,
                       raced_out=self.raced_out, tasks=self.tasks)
        if self.rung_fitness is not None:
            out.update(fidelity=self.fidelity,
                       rung_fitness=[list(f) for f in self.rung_fitness])
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        rungs = data.get("rung_fitness")
        return cls(fitness=tuple(data["fitness"]), metrics=data.get("metrics", {}),
                   rejected=data.get("rejected"), seconds=data.get("seconds", 0.0),
                   trainings=data.get("trainings", 0), worker=data.get("worker", "?"),
                   raced_out=bool(data.get("raced_out", False)),
                   model_epochs=data.get("model_epochs", 0),
                   fidelity=data.get("fidelity", 1.0),
                   rung_fitness=None if rungs is None else tuple(tuple(f) for f in rungs),
                   tasks=data.get("tasks"))


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate of a campaign: a :class:`Child` with its canonical key, expression
    size and its function's scores (``cached``: served from the cache, at no cost), and its
    ``id`` and ``generation`` once numbered (None before: e.g. a tuning proposal that did not
    beat its parent is never numbered)."""

    expression: str
    canonical_key: str
    size: int
    fitness: tuple[float, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    rejected: str | None = None
    parents: tuple[int, ...] = ()
    operator: str = "init"
    seconds: float = 0.0
    worker: str = "?"
    cached: bool = False
    fidelity: float = 1.0
    raced_out: bool = False
    tasks: Mapping[str, Json] | None = None
    id: int | None = None
    generation: int | None = None

    @classmethod
    def from_result(cls, child: Child, canonical_key: str, size: int, result: Result, *,
                    cached: bool) -> CandidateRecord:
        """`child` scored by its function's `result`; a cache hit took no time."""
        return cls(expression=child.expression, canonical_key=canonical_key, size=size,
                   fitness=result.fitness, metrics=result.metrics, rejected=result.rejected,
                   parents=child.parents, operator=child.operator,
                   seconds=0.0 if cached else result.seconds, worker=result.worker,
                   cached=cached, fidelity=result.fidelity, raced_out=result.raced_out,
                   tasks=result.tasks)

    def numbered(self, id: int, generation: int) -> CandidateRecord:
        return dataclasses.replace(self, id=id, generation=generation)

    @property
    def status(self) -> str:
        """The row's word for it: "rejected", "cached" (trained before) or "ok"."""
        return "rejected" if self.rejected else ("cached" if self.cached else "ok")

    # --- the candidates table -----------------------------------------------------------
    def to_row(self) -> Json:
        """The record as a row of the ``candidates`` table (JSON columns still decoded)."""
        return {"id": self.id, "generation": self.generation, "expression": self.expression,
                "canonical_key": self.canonical_key, "size": self.size,
                "parents": list(self.parents), "operator": self.operator,
                "fitness": list(self.fitness), "metrics": self.metrics,
                "status": self.status, "reason": self.rejected, "seconds": self.seconds,
                "worker": self.worker, "fidelity": self.fidelity, "tasks": self.tasks or {}}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CandidateRecord:
        """A row as lossevo.search.store.RunStore.candidates reads it (see the module's
        note on what a row does not keep)."""
        return cls(expression=row["expression"], canonical_key=row["canonical_key"],
                   size=row["size"], fitness=tuple(row["fitness"]), metrics=row["metrics"],
                   rejected=row["reason"] if row["status"] == "rejected" else None,
                   parents=tuple(row["parents"]), operator=row["operator"],
                   seconds=row["seconds"], worker=row["worker"],
                   cached=row["status"] == "cached", fidelity=row.get("fidelity", 1.0),
                   tasks=row.get("tasks") or None, id=row["id"], generation=row["generation"])

    # --- the checkpoint ---------------------------------------------------------------------
    def to_json(self) -> Json:
        """The record as the checkpoint's population, hall of fame and Pareto front hold it."""
        out: Json = {"expression": self.expression, "parents": list(self.parents),
                     "operator": self.operator, "canonical_key": self.canonical_key,
                     "size": self.size, "fitness": list(self.fitness), "metrics": self.metrics,
                     "rejected": self.rejected, "seconds": self.seconds, "worker": self.worker,
                     "cached": self.cached, "fidelity": self.fidelity,
                     "raced_out": self.raced_out}
        if self.tasks is not None:
            out["tasks"] = self.tasks
        out.update(id=self.id, generation=self.generation)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidateRecord:
        return cls(expression=data["expression"], canonical_key=data["canonical_key"],
                   size=data["size"], fitness=tuple(data["fitness"]),
                   metrics=data.get("metrics", {}), rejected=data.get("rejected"),
                   parents=tuple(data.get("parents", ())), operator=data.get("operator", "init"),
                   seconds=data.get("seconds", 0.0), worker=data.get("worker", "?"),
                   cached=bool(data.get("cached", False)),
                   fidelity=data.get("fidelity", 1.0),
                   raced_out=bool(data.get("raced_out", False)), tasks=data.get("tasks"),
                   id=data.get("id"), generation=data.get("generation"))
