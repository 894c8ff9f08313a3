"""Multi-fidelity evaluation: the rung schedule, tiered selection, evaluate_many, campaigns."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path

import pytest
from campaign_helpers import crash_before_checkpoint, run_logged

import lossevo.search.campaign as campaign
from lossevo.evaluation.fidelity import (
    Fidelity,
    hall_of_fame_by_tier,
    ranking,
    select_by_tier,
    successive_halving,
)
from lossevo.evaluation.fitness import evaluate_many
from lossevo.evaluation.racing import Racing
from lossevo.evaluation.tasks import load_task
from lossevo.search.config import config_from_mapping, load_config, read_toml
from lossevo.search.evolution import hall_of_fame, select
from lossevo.search.records import CandidateRecord
from lossevo.search.report import status
from lossevo.search.store import RunStore

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"
CE = "mul(-1.0, mul(y_true, log(y_pred)))"
LOSSES = [CE, "mul(y_true, sub(1.0, y_pred))", "exp(sub(y_true, y_pred))",
          "sub(div(y_true, y_pred), y_true)", "y_true", "mul(y_true, sub(0.5, y_pred))"]


# --- the schedule ---------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rungs": (0.5, 0.2, 1.0)}, "fidelity.rungs"),
    ({"rungs": (1.0,)}, "at least two"),
    ({"rungs": (0.1, 0.5)}, "the last 1.0"),
    ({"rungs": (0.0, 1.0)}, r"\(0, 1\]"),
    ({"rungs": (0.5, 0.5, 1.0)}, "increasing"),
    ({"keep": 1.0}, "fidelity.keep"),
    ({"keep": 0.0}, "fidelity.keep"),
    ({"min_survivors": 0}, "fidelity.min_survivors"),
])
def test_schedule_validation_names_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Fidelity(**kwargs)


def test_rung_epochs_and_survivors():
    fid = Fidelity()
    assert fid.epochs(40) == [4, 13, 40]
    assert [fid.survivors(n) for n in (0, 1, 2, 3, 9, 16)] == [0, 1, 1, 1, 3, 6]
    assert Fidelity(min_survivors=2).survivors(3) == 2
    with pytest.raises(ValueError, match=r"give epochs \[1, 1, 3\] for budget.epochs = 3"):
        fid.epochs(3)


@pytest.mark.parametrize(("fidelity", "match"), [
    ({"rungs": [0.5, 0.2, 1.0]}, "config table 'fidelity': fidelity.rungs"),
    ({"rungs": "fast"}, "config key 'fidelity.rungs' = 'fast'"),
    ({"keep": 2}, "fidelity.keep = 2.0"),
    ({"eta": 3}, "unknown config key 'fidelity.eta'"),
    ({"enabled": "yes"}, "config key 'fidelity.enabled' = 'yes'"),
    ({}, r"give epochs \[1, 1, 3\]"),  # smoke's 3 epochs are too few for three rungs
])
def test_config_errors_name_the_key(fidelity, match):
    data = read_toml(SMOKE)
    data["fidelity"] = fidelity
    with pytest.raises(ValueError, match=match):
        config_from_mapping(data)


def test_config_is_off_by_default_and_with_enabled_false():
    data = read_toml(SMOKE)
    assert config_from_mapping(data).fidelity is None
    data["fidelity"] = {"enabled": False, "rungs": [0.5, 1.0]}
    assert config_from_mapping(data).fidelity is None
    data["fidelity"] = {"rungs": [0.34, 1], "keep": 0.5}
    assert config_from_mapping(data).fidelity == Fidelity((0.34, 1.0), 0.5)


def test_successive_halving_keeps_the_best_share_of_the_valid():
    scores = {c: (float(c % 7), -float(c)) for c in range(20)}
    bad = {3, 13}  # rejected at rung 0: never go on, never count towards the share
    seen: list[tuple[int, list[int]]] = []

    def run_rung(r, alive):
        seen.append((r, alive))
        return [c for c in alive if c not in bad]

    out = successive_halving(range(20), Fidelity(), run_rung, scores.__getitem__)
    assert out.rungs == [(20, 6), (6, 2), (2, 2)]
    ranked = sorted(set(range(20)) - bad, key=lambda c: (-scores[c][0], c))
    assert seen[1][1] == sorted(ranked[:6])  # the order of the population is kept
    assert set(seen[2][1]) == set(sorted(seen[1][1], key=lambda c: (-scores[c][0], c))[:2])
    assert {c for c, r in out.reached.items() if r == 2} == set(seen[2][1])
    assert all(out.reached[c] == 0 for c in bad)


def test_successive_halving_ties_and_nan_and_nothing_valid():
    out = successive_halving(["a", "b", "c"], Fidelity((0.5, 1.0), keep=0.3),
                             lambda r, alive: alive,
                             {"a": (math.nan,), "b": (1.0,), "c": (1.0,)}.__getitem__)
    assert out.reached == {"a": 0, "b": 1, "c": 0}  # tie: the earlier; nan: last
    none = successive_halving([1, 2], Fidelity(), lambda r, alive: [], lambda c: (0.0,))
    assert none.rungs == [(2, 0)] and none.reached == {1: 0, 2: 0}


# --- ranking: an eliminated candidate never outranks a full-fidelity one ---------------------
def _rec(i, fit, fidelity=1.0, rejected=None, size=5):
    return CandidateRecord(id=i, expression=f"e{i}", canonical_key=f"k{i}", fitness=(fit, 0.0),
                           size=size, rejected=rejected, fidelity=fidelity)


@pytest.fixture(scope="module")
def cfg():
    return load_config(SMOKE)  # population 6, hall of fame 5


def test_eliminated_candidates_rank_below_survivors(cfg):
    full = [_rec(i, 0.3 + 0.01 * i, 1.0, size=9) for i in range(3)]
    old = [_rec(9, 0.2)]  # from a checkpoint written before fidelity: full budget
    low = [_rec(10 + i, 0.9, 1 / 9, size=1) for i in range(4)]  # better scores, smaller trees
    mid = [_rec(20, 0.8, 1 / 3)]
    rejected = [_rec(30, -math.inf, 1.0, rejected="probe")]
    pool = [*low, *rejected, *mid, *full, *old]
    mu = cfg.evolution.population

    def within(records, n):
        return select(cfg, records)[:n]

    chosen = select_by_tier(pool, mu, within)
    assert len(chosen) == mu
    assert {r.id for r in chosen[:5]} == {0, 1, 2, 9, 20}  # whole tiers first
    assert chosen[5].fidelity == 1 / 9 and all(not r.rejected for r in chosen)
    hof = hall_of_fame_by_tier([], pool, 5, hall_of_fame)
    assert [r.id for r in hof] == [2, 1, 0, 9, 20]
    assert [r.id for r in hall_of_fame_by_tier(hof[:2], low, 3, hall_of_fame)] == [2, 1, 10]
    # copies of one function fill in only when there are too few distinct functions
    copy = dataclasses.replace(full[0])
    assert select_by_tier([full[0], copy], 4, within) == [full[0], full[0]]


def test_ranking_of_evaluations():
    class Ev:
        def __init__(self, fit, fidelity, rejected=None, raced_out=False):
            self.fitness, self.fidelity, self.rejected = (fit,), fidelity, rejected
            self.raced_out = raced_out

    evs = [Ev(0.9, 1 / 9), Ev(0.5, 1.0), Ev(-math.inf, 1.0, "nan"), Ev(0.6, 1.0), Ev(0.7, 1 / 3),
           Ev(0.95, 1.0, raced_out=True)]  # raced out inside the last rung: fewer instances
    assert ranking(evs) == [3, 1, 5, 4, 0, 2]


def test_racing_inside_a_rung_never_outranks_completed(cfg):
    done = _rec(0, 0.4, 1.0)
    raced = dataclasses.replace(_rec(1, 0.9, 1.0, size=1), raced_out=True)
    assert [r.id for r in hall_of_fame_by_tier([], [raced, done], 5, hall_of_fame)] == [0, 1]
    assert select_by_tier([raced, done], 1, lambda recs, n: recs[:n]) == [done]


# --- evaluate_many ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    return load_task("digits-sym-0.4").with_overrides(
        model={"widths": [32]}, budget={"epochs": 9, "batch_size": 128, "lr": 0.01},
        environments=[{"kind": "clean"}])


@pytest.fixture(scope="module")
def full_evals(tiny):
    return evaluate_many(LOSSES, tiny, instances=2, seed=0, device="cpu")


def test_evaluate_many_by_rungs(tiny, full_evals):
    evals = evaluate_many(LOSSES, tiny, instances=2, seed=0, device="cpu", fidelity=Fidelity())
    assert [e.fidelity for e in full_evals] == [1.0] * len(LOSSES)
    assert all(e.model_epochs == 2 * 9 for e in full_evals if e.rejected is None)
    reached = [e.fidelity for e in evals]
    assert sorted(reached) == [1 / 9] * 4 + [1 / 3, 1.0]  # 5 valid → 2 → 1
    assert evals[4].rejected and evals[4].fidelity == 1 / 9 and evals[4].trainings == 0
    for e, f in zip(evals, full_evals, strict=True):
        rungs = e.extra.get("rung_fitness", [])
        if e.rejected is None:
            assert len(rungs) == [1 / 9, 1 / 3, 1.0].index(e.fidelity) + 1
            assert e.model_epochs == 2 * sum([1, 3, 9][:len(rungs)])
            assert e.trainings == 2 * len(rungs) and list(e.fitness) == rungs[-1]
        if e.fidelity == 1.0:  # the last rung is the full evaluation
            assert e.metrics == f.metrics and e.fitness == f.fitness
    rung0 = sorted((e.extra["rung_fitness"][0] for e in evals if e.rejected is None),
                   reverse=True)
    went_on = [e.extra["rung_fitness"][0] for e in evals if e.fidelity > 1 / 9]
    assert sorted(went_on, reverse=True) == rung0[:2]  # the best two of rung 0 went on
    assert ranking(evals)[0] == reached.index(1.0)


def test_racing_inside_rungs_saves_trainings_not_survivors(tiny):
    plain = evaluate_many(LOSSES, tiny, instances=2, seed=0, fidelity=Fidelity())
    raced = evaluate_many(LOSSES, tiny, instances=2, seed=0, fidelity=Fidelity(),
                          racing=Racing(initial=1))
    assert sorted(e.fidelity for e in raced) == sorted(e.fidelity for e in plain)
    assert sum(e.model_epochs for e in raced) < sum(e.model_epochs for e in plain)
    assert any(e.raced_out for e in raced)
    best = ranking(raced)[0]
    assert raced[best].fidelity == 1.0 and not raced[best].raced_out


def test_evaluate_many_rejects_a_schedule_the_budget_cannot_hold(tiny):
    with pytest.raises(ValueError, match=r"fidelity\.rungs"):
        evaluate_many([CE], tiny.with_overrides(budget={"epochs": 2}), fidelity=Fidelity())


# --- campaigns --------------------------------------------------------------------------------
def _fidelity_config(tmp_path: Path, table: str) -> Path:
    text = SMOKE.read_text().replace("epochs = 3,", "epochs = 9,")
    path = tmp_path / "fidelity.toml"
    path.write_text(text + "\n[fidelity]\n" + table)
    return path


def _strip(rows):  # timings and worker ids legitimately differ between runs
    return [{k: v for k, v in r.items() if k not in ("seconds", "worker")} for r in rows]


@pytest.fixture(scope="module")
def fidelity_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fid")
    config = _fidelity_config(tmp, "rungs = [0.111, 0.333, 1.0]\nkeep = 0.34\n")
    out = tmp / "run"
    return config, out, run_logged(config, out)


def test_campaign_with_fidelity_end_to_end(fidelity_run):
    config, out, logs = fidelity_run
    cfg = load_config(config)
    rows = RunStore(out).candidates()
    assert len(rows) == cfg.evolution.population + cfg.evolution.generations * 6
    assert {r["fidelity"] for r in rows} == {0.111, 0.333, 1.0}
    state = RunStore(out).load_checkpoint()
    for h in state["history"]:  # every new function starts at rung 0; each rung's
        assert sum(h["rungs"][0][:1]) == h["evaluated"]  # kept are the next one's trained
        assert [n for n, _ in h["rungs"][1:]] == [kept for _, kept in h["rungs"][:-1]]
    assert "rungs of 1/3/9 epochs trained 6→3→2" in "\n".join(logs)
    # the hall of fame and the Pareto front hold full-fidelity candidates only (enough exist)
    assert all(r["fidelity"] == 1.0 for r in state["hall_of_fame"] + state["pareto"])
    assert [tuple(r["fitness"]) for r in status(out)["hall_of_fame"]] == sorted(
        (tuple(r["fitness"]) for r in state["hall_of_fame"]), reverse=True)
    # a lower tier is in the population only if every full-fidelity function is
    full = {r["canonical_key"] for r in rows if r["fidelity"] == 1.0 and not r["reason"]}
    pop = {r["canonical_key"]: r.get("fidelity", 1.0) for r in state["population"]}
    if min(pop.values()) < 1.0:
        assert full <= set(pop)
    cached = [r for r in rows if r["status"] == "cached"]
    first = {r["canonical_key"]: r["fidelity"] for r in reversed(rows)}
    assert all(r["fidelity"] == first[r["canonical_key"]] for r in cached)


def test_campaign_with_fidelity_resumes_exactly(tmp_path, monkeypatch, fidelity_run):
    config, reference, _ = fidelity_run
    out = tmp_path / "run"
    crash_before_checkpoint(config, out, monkeypatch)
    campaign.resume(out, quiet=True)
    assert _strip(RunStore(out).candidates()) == _strip(RunStore(reference).candidates())
    assert status(out)["hall_of_fame"] == status(reference)["hall_of_fame"]


def test_campaign_with_fidelity_and_racing(tmp_path):
    config = _fidelity_config(tmp_path, "rungs = [0.333, 1.0]\nkeep = 0.5\n")
    config.write_text(config.read_text() + "\n[racing]\ninitial = 1\n")
    campaign.run(config, tmp_path / "run", quiet=True)
    state = RunStore(tmp_path / "run").load_checkpoint()
    assert any(r.get("raced_out") for r in state["cache"].values())
    assert all(r["fidelity"] == 1.0 and not r["raced_out"] for r in state["hall_of_fame"])
    for h in state["history"]:
        assert [n for n, _ in h["rungs"][1:]] == [kept for _, kept in h["rungs"][:-1]]


def test_fidelity_off_gives_the_same_run(tmp_path):
    plain = tmp_path / "plain"
    campaign.run(SMOKE, plain, quiet=True)
    config = tmp_path / "off.toml"
    config.write_text(SMOKE.read_text() + "\n[fidelity]\nenabled = false\n")
    off = tmp_path / "off"
    campaign.run(config, off, quiet=True)
    assert _strip(RunStore(off).candidates()) == _strip(RunStore(plain).candidates())
    assert status(off)["hall_of_fame"] == status(plain)["hall_of_fame"]
    assert {r["fidelity"] for r in RunStore(plain).candidates()} == {1.0}
    assert "rungs" not in RunStore(plain).load_checkpoint()["history"][-1]


def test_old_candidate_database_reads_and_gains_the_column(tmp_path):
    store = RunStore(tmp_path)
    with sqlite3.connect(store.db_path) as db:  # the schema before the fidelity column
        db.execute("CREATE TABLE candidates (id INTEGER PRIMARY KEY, generation INTEGER NOT "
                   "NULL, expression TEXT NOT NULL, canonical_key TEXT NOT NULL, size INTEGER "
                   "NOT NULL, parents TEXT NOT NULL, operator TEXT NOT NULL, fitness TEXT NOT "
                   "NULL, metrics TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, seconds "
                   "REAL NOT NULL, worker TEXT NOT NULL)")
        db.execute("INSERT INTO candidates VALUES (0, 0, 'y_pred', 'k', 1, '[]', 'init', "
                   "'[0.5]', '{}', 'ok', NULL, 1.0, 'w')")
    db.close()
    assert store.candidates()[0]["fidelity"] == 1.0
    with sqlite3.connect(store.db_path) as db:  # reading did not change the file
        assert "fidelity" not in {row[1] for row in db.execute("PRAGMA table_info(candidates)")}
    db.close()
    row = {"id": 1, "generation": 1, "expression": "y_true", "canonical_key": "k2", "size": 1,
           "parents": [], "operator": "init", "fitness": [0.1], "metrics": {}, "status": "ok",
           "reason": None, "seconds": 0.0, "worker": "w", "fidelity": 1 / 3}
    store.record([row])
    assert [r["fidelity"] for r in store.candidates()] == [1.0, 1 / 3]
