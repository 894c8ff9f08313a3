"""A campaign's state after its last complete generation: what a checkpoint holds.

Typed in memory, plain JSON on disk (lossevo.search.store writes it atomically with a
checksum); the conversion is :meth:`CampaignState.to_json` / :meth:`CampaignState.from_json`,
with each candidate converted by lossevo.search.records. The JSON is what earlier versions
wrote, key order included; keys a campaign adds only when configured (``multi_task``,
``tuned``) are absent otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lossevo.search.records import CandidateRecord, Json, Result

__all__ = ["CampaignState"]


def _counters() -> dict[str, int]:
    return {"evaluated": 0, "hits": 0, "rejected": 0}


@dataclass
class CampaignState:
    """generation: the last complete one (-1 before the first); population, hall_of_fame and
    pareto: records; cache: each evaluated function's result by canonical key; next_id: the
    next candidate id; history: one plain entry per generation (its counts, ``seconds``,
    ``best``, ``median``; ``rungs`` and ``tuning`` where configured); counters: evaluated,
    hits and rejected candidates so far; multi_task: the tasks' reference scores
    (lossevo.search.multitask); tuned: canonical keys whose constants were tuned
    (lossevo.search.constant_tuning); rng: the state of the variation generator."""

    generation: int = -1
    population: list[CandidateRecord] = field(default_factory=list)
    hall_of_fame: list[CandidateRecord] = field(default_factory=list)
    pareto: list[CandidateRecord] = field(default_factory=list)
    cache: dict[str, Result] = field(default_factory=dict)
    next_id: int = 0
    history: list[Json] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=_counters)
    multi_task: Json | None = None
    tuned: list[str] | None = None
    rng: Json | None = None

    def to_json(self) -> Json:
        out: Json = {
            "generation": self.generation,
            "population": [r.to_json() for r in self.population],
            "hall_of_fame": [r.to_json() for r in self.hall_of_fame],
            "pareto": [r.to_json() for r in self.pareto],
            "cache": {k: r.to_json() for k, r in self.cache.items()},
            "next_id": self.next_id, "history": self.history, "counters": self.counters,
        }
        for key, value in (("multi_task", self.multi_task), ("tuned", self.tuned),
                           ("rng", self.rng)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CampaignState:
        """A checkpoint's state (lossevo.search.store has checked its keys and types)."""
        return cls(
            generation=data["generation"],
            population=[CandidateRecord.from_json(r) for r in data["population"]],
            hall_of_fame=[CandidateRecord.from_json(r) for r in data["hall_of_fame"]],
            pareto=[CandidateRecord.from_json(r) for r in data["pareto"]],
            cache={k: Result.from_json(r) for k, r in data["cache"].items()},
            next_id=data["next_id"], history=list(data["history"]),
            counters=dict(data["counters"]), multi_task=data.get("multi_task"),
            tuned=data.get("tuned"), rng=data.get("rng"))
