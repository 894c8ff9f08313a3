"""A candidate's record: Evaluation → Result → CandidateRecord → row / checkpoint and back,
in the on-disk formats earlier versions wrote (key order included)."""

from __future__ import annotations

import dataclasses
import json
import math

from lossevo.evaluation.fitness import Evaluation
from lossevo.search.records import CandidateRecord, Child, Result
from lossevo.search.state import CampaignState
from lossevo.search.store import RunStore

METRICS = {"accuracy.clean.mean": 0.61, "accuracy.clean.min": 0.58}
# checkpoint entries exactly as lossevo wrote them before records were typed
ENTRY = {"expression": "mul(y_true, y_pred)", "parents": [3, 4], "operator": "crossover",
         "canonical_key": "k", "size": 3, "fitness": [0.61, -0.02], "metrics": METRICS,
         "rejected": None, "seconds": 1.5, "worker": "host:1", "cached": False,
         "fidelity": 1.0, "raced_out": False, "id": 7, "generation": 2}
CACHED = {"fitness": [0.61, -0.02], "metrics": METRICS, "rejected": None, "seconds": 1.5,
          "trainings": 2, "worker": "host:1", "raced_out": False, "model_epochs": 6}
RUNGS = {**CACHED, "fidelity": 1.0, "rung_fitness": [[0.4, -0.03], [0.61, -0.02]]}
PER_TASK = {"a": {"fitness": [0.61], "metrics": {}, "normalized": 0.5, "rejected": None,
                  "raced_out": False, "trainings": 2}}
# a multi-task candidate: its tasks' results before its id
ENTRY_MULTI = {**{k: v for k, v in ENTRY.items() if k not in ("id", "generation")},
               "tasks": PER_TASK, "id": 8, "generation": 2}
MULTI = {"fitness": [0.5], "metrics": {"aggregate": 0.5}, "rejected": None, "seconds": 1.5,
         "trainings": 2, "model_epochs": 6, "worker": "host:1", "raced_out": False,
         "tasks": PER_TASK}


def _ordered(data) -> str:
    return json.dumps(data)  # key order counts: checkpoints stay byte-identical


def _evaluation(rejected=None) -> Evaluation:
    return Evaluation(loss="mul(y_true, y_pred)", metrics=METRICS, fitness=(0.61, -0.02),
                      per_instance={}, seconds=1.5, trainings=2, rejected=rejected,
                      model_epochs=6)


def test_evaluation_to_record_to_row_and_back():
    result = Result.from_evaluation(_evaluation(), "host:1")
    assert _ordered(result.to_json()) == _ordered(CACHED)
    child = Child("mul(y_true, y_pred)", (3, 4), "crossover")
    rec = CandidateRecord.from_result(child, "k", 3, result, cached=False).numbered(7, 2)
    assert _ordered(rec.to_json()) == _ordered(ENTRY)
    row = rec.to_row()
    assert row["status"] == "ok" and row["reason"] is None and row["tasks"] == {}
    assert CandidateRecord.from_row(row) == rec
    hit = CandidateRecord.from_result(child, "k", 3, result, cached=True)
    assert hit.seconds == 0.0 and hit.status == "cached" and hit.id is None


def test_rejected_and_raced_out_rows_keep_what_a_row_can():
    result = Result.from_evaluation(_evaluation(rejected="probe: nan"), "w")
    rec = CandidateRecord.from_result(Child("y_pred"), "k", 1, result, cached=True)
    rec = dataclasses.replace(rec, raced_out=True).numbered(0, 0)
    row = rec.to_row()
    assert (row["status"], row["reason"]) == ("rejected", "probe: nan")
    back = CandidateRecord.from_row(row)  # a row keeps neither "cached" beside "rejected"
    assert back == dataclasses.replace(rec, cached=False, raced_out=False)  # nor raced_out


def test_checkpoint_entries_round_trip_in_order():
    for entry in (ENTRY, ENTRY_MULTI):
        rec = CandidateRecord.from_json(entry)
        assert _ordered(rec.to_json()) == _ordered(entry)
    assert CandidateRecord.from_json(ENTRY_MULTI).tasks == PER_TASK
    for cached in (CACHED, RUNGS, MULTI, {**MULTI, "fidelity": 0.5, "rung_fitness": [[0.5]]}):
        assert _ordered(Result.from_json(cached).to_json()) == _ordered(cached)


def test_older_entries_read_with_defaults():
    old = {k: v for k, v in ENTRY.items() if k not in ("fidelity", "raced_out", "cached")}
    rec = CandidateRecord.from_json(old)
    assert (rec.fidelity, rec.raced_out, rec.cached, rec.tasks) == (1.0, False, False, None)
    res = Result.from_json({k: v for k, v in CACHED.items() if k != "model_epochs"})
    assert (res.model_epochs, res.fidelity, res.rung_fitness) == (0, 1.0, None)


def test_rungs_add_costs_and_keep_each_fitness():
    low = Result((0.4,), seconds=1.0, trainings=2, model_epochs=2)
    first = low.at_rung(1 / 3, None)
    full = Result((0.6,), seconds=3.0, trainings=2, model_epochs=6).at_rung(1.0, first)
    assert (full.fitness, full.fidelity, full.rung_fitness) == ((0.6,), 1.0, ((0.4,), (0.6,)))
    assert (full.seconds, full.trainings, full.model_epochs) == (4.0, 4, 8)
    dead = Result.worker_error(2, RuntimeError("boom"))
    assert dead.fitness == (-math.inf, -math.inf) and dead.rejected == "worker error: boom"


def test_state_round_trips_through_the_store_byte_for_byte(tmp_path):
    raw = {"generation": 2, "population": [ENTRY], "hall_of_fame": [ENTRY], "pareto": [ENTRY],
           "cache": {"k": RUNGS}, "next_id": 8,
           "history": [{"generation": 2, "evaluated": 1, "hits": 0, "rejected": 0,
                        "rungs": [[1, 1], [1, 1]], "seconds": 2.0, "best": 0.61,
                        "median": 0.61}],
           "counters": {"evaluated": 8, "hits": 0, "rejected": 0},
           "tuned": ["k"], "rng": {"version": 3, "internal": [1, 2], "gauss_next": None}}
    store = RunStore(tmp_path)
    store.save_checkpoint(raw)
    written = store.checkpoint_path.read_bytes()
    state = store.load_state()
    assert state.hall_of_fame[0].fitness == (0.61, -0.02) and state.multi_task is None
    store.save_checkpoint(state.to_json())
    assert store.checkpoint_path.read_bytes() == written
    assert list(CampaignState().to_json()) == ["generation", "population", "hall_of_fame",
                                               "pareto", "cache", "next_id", "history",
                                               "counters"]


def test_store_rows_round_trip(tmp_path):
    store = RunStore(tmp_path)
    store.create('task = "digits-sym-0.4"\n')
    rec = CandidateRecord.from_json({**ENTRY_MULTI, "fidelity": 1 / 3})
    store.record([rec.to_row()])
    assert store.records() == [rec]
    assert store.candidates() == [rec.to_row()]
