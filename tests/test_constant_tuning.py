"""Constant tuning: settings, constants in text, the seeded CMA-ES, the step, campaigns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from campaign_helpers import kill_after_checkpoint, run_logged

import lossevo.search.campaign as campaign
from lossevo.cli import main
from lossevo.search.config import config_from_mapping, load_config, read_toml
from lossevo.search.constant_tuning import (
    ConstantTuning,
    constants,
    describe,
    pick,
    score,
    search,
    tune_step,
    with_constants,
)
from lossevo.search.records import CandidateRecord, Result
from lossevo.search.report import status
from lossevo.search.store import RunStore
from lossevo.symbolic.parse import parse

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"
BAD = "mul(-0.05, mul(y_true, log(y_pred)))"  # cross-entropy at a twentieth of its scale
# Under SGD a loss's scale is its learning rate: BAD barely trains in 3 epochs (accuracy 0.12
# against 0.41 at scale -10 here), so tuning its one constant has a real, monotone gain. The
# other seeds have no constants, so BAD is the one tuned in generation 0. Proposals of the
# wrong sign are rejected by the probes; seed 1 is one whose first round is not all of them
# (seed 0 draws 3 of 3 there: the step then finds nothing, correctly, and marks BAD tuned).
TINY = """
seed = 1
instances = 2

[task]
preset = "digits-sym-0.4"
model = { widths = [32] }
budget = { epochs = 3, batch_size = 128, lr = 0.01, optimizer = "sgd" }
environments = [{ kind = "clean" }]

[evolution]
population = 3
offspring = 3
generations = 1
hall_of_fame = 5
seed_expressions = ["BAD", "sub(div(y_true, y_pred), y_true)", "exp(sub(y_true, y_pred))"]

[limits]
max_height = 5
max_size = 25

[backend]
name = "serial"
chunk = 4
""".replace("BAD", BAD)
TUNING = "\n[constant_tuning]\ntop_k = 1\nrounds = 2\npopsize = 3\nsigma = 2.0\n"


def _strip(rows):  # timings and worker ids legitimately differ between runs
    return [{k: v for k, v in r.items() if k not in ("seconds", "worker")} for r in rows]


# --- settings and config ----------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"top_k": 0}, r"constant_tuning\.top_k = 0; allowed: an integer in \[1, 1000\]"),
    ({"rounds": 0}, r"constant_tuning\.rounds = 0"),
    ({"popsize": 1}, r"constant_tuning\.popsize = 1; allowed: an integer in \[2, 1024\]"),
    ({"every": 0}, r"constant_tuning\.every = 0; allowed: an integer >= 1"),
    ({"top_k": True}, r"constant_tuning\.top_k = True"),
    ({"sigma": 0.0}, r"constant_tuning\.sigma = 0\.0; allowed: a number in \(0, 100\]"),
    ({"sigma": -1.0}, r"constant_tuning\.sigma = -1\.0"),
    ({"sigma": math.nan}, r"constant_tuning\.sigma = nan"),
])
def test_settings_validation_names_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConstantTuning(**kwargs)


@pytest.mark.parametrize(("table", "match"), [
    ({"top_k": 0}, r"constant_tuning\.top_k = 0"),
    ({"top_k": 1.5}, r"'constant_tuning\.top_k' = 1\.5 is not allowed; allowed: an integer"),
    ({"sigma": "big"}, r"'constant_tuning\.sigma' = 'big'.*a finite number"),
    ({"iterations": 3}, r"unknown config key 'constant_tuning\.iterations'; allowed: every, "
                        r"popsize, rounds, sigma, top_k"),
    ({"enabled": "yes"}, r"'constant_tuning\.enabled' = 'yes'.*true or false"),
])
def test_config_errors_name_the_key(table, match):
    data = read_toml(SMOKE)
    data["constant_tuning"] = table
    with pytest.raises(ValueError, match=match):
        config_from_mapping(data)


def test_off_by_default_and_with_enabled_false():
    plain = config_from_mapping(read_toml(SMOKE))
    assert plain.constant_tuning is None
    off = config_from_mapping({**read_toml(SMOKE), "constant_tuning": {"enabled": False,
                                                                       "top_k": 4}})
    assert off == plain  # the campaign gets the very same configuration
    on = config_from_mapping({**read_toml(SMOKE), "constant_tuning": {}})
    assert on.constant_tuning == ConstantTuning(top_k=2, rounds=3, popsize=4, sigma=0.3,
                                                every=1)
    assert [on.constant_tuning.due(g) for g in range(4)] == [True] * 4
    assert [ConstantTuning(every=3).due(g) for g in range(7)] == [True, False, False] * 2 + [
        True]
    assert ConstantTuning(every=3).proposals(6) == 3 * 2 * 3 * 4


# --- constants in text ------------------------------------------------------------------------
def test_constants_are_listed_and_replaced_in_prefix_order():
    expr = "add(mul(-0.714, y_true), div(y_pred, 2))"
    assert constants(expr) == [-0.714, 2.0]
    out = with_constants(expr, [0.5, -1e-05])
    assert out == "add(mul(0.5, y_true), div(y_pred, -1e-05))"
    assert constants(out) == [0.5, -1e-05]
    assert [n.value for n in parse(out) if n.kind != "constant"] == [
        n.value for n in parse(expr) if n.kind != "constant"]
    assert constants("mul(y_true, log(y_pred))") == []
    with pytest.raises(ValueError, match="has 2 constant"):
        with_constants(expr, [1.0])
    with pytest.raises(ValueError, match="constant value inf"):
        with_constants(expr, [1.0, math.inf])


# --- the search -------------------------------------------------------------------------------
def _quadratic(batch):  # peak at 1.3 (search 0) or (1.3, -2.0) (search 1); no training
    return [(-(x[0] - 1.3) ** 2 - (i and (x[1] + 2.0) ** 2),) for i, x in batch]


def test_search_is_seeded_quiet_and_climbs(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)  # cma must write no files
    settings = ConstantTuning(rounds=6, popsize=6, sigma=0.5)
    before = np.random.get_state()[1].copy()
    calls = []

    def evaluate(batch):
        calls.append(len(batch))
        return _quadratic(batch)

    first = search([[0.0], [0.5, 0.5]], settings, [11, 12], evaluate, 3)
    assert calls == [12] * 6  # every round of both searches in one call
    assert (np.random.get_state()[1] == before).all()  # numpy's global generator untouched
    assert capfd.readouterr() == ("", "") and not list(tmp_path.iterdir())
    again = search([[0.0], [0.5, 0.5]], settings, [11, 12], _quadratic, 3)
    assert again == first
    other = search([[0.0], [0.5, 0.5]], settings, [13, 12], _quadratic, 3)
    assert other[0] != first[0] and other[1] == first[1]  # each search has its own stream
    for i, (start, trace) in enumerate(zip([[0.0], [0.5, 0.5]], first, strict=True)):
        assert len(trace) == 36 and all(v == round(v, 3) for x, _ in trace for v in x)
        assert max(s for _, s in trace)[0] > _quadratic([(i, start)])[0][0] / 4


def test_search_ranks_ties_and_rejections_without_trouble():
    flat = search([[1.0]], ConstantTuning(rounds=3, popsize=4), [0], lambda b: [(0.0,)] * len(b),
                  2)
    assert len(flat[0]) == 12 and all(math.isfinite(x[0]) for x, _ in flat[0])
    worst = (0.0, 1.0, 1.0, -math.inf)
    half = search([[1.0]], ConstantTuning(rounds=3, popsize=4), [0],
                  lambda b: [worst if x[0] < 1 else (1.0, 1.0, 1.0, x[0]) for _, x in b], 2)
    assert max(half[0], key=lambda p: p[1])[0][0] > 1.0


def _rec(i, expr, fit, *, key=None, size=3, rejected=None, fidelity=1.0, raced_out=False):
    return CandidateRecord(id=i, expression=expr, canonical_key=key or expr, fitness=(fit, 0.0),
                           size=size, rejected=rejected, fidelity=fidelity, raced_out=raced_out)


def test_score_orders_like_selection_tiers():
    ranked = [_rec(0, "y_true", -math.inf, rejected="probe"),
              _rec(1, "y_true", 0.9, fidelity=1 / 3), _rec(2, "y_true", 0.9, raced_out=True),
              _rec(3, "y_true", 0.1), _rec(4, "y_true", 0.2)]
    assert sorted(ranked, key=score) == ranked
    assert score(_rec(5, "y_true", math.nan)) < score(ranked[3])


def test_pick_takes_the_best_distinct_untuned_functions_with_constants():
    pool = [_rec(0, "mul(2.0, y_pred)", 0.5), _rec(1, "y_pred", 0.9),
            _rec(2, "mul(3.0, y_pred)", 0.7, key="same"), _rec(3, "mul(4.0, y_pred)", 0.7,
                                                               key="same", size=5),
            _rec(4, "mul(5.0, y_pred)", 0.95, rejected="x"),
            _rec(5, "mul(6.0, y_pred)", 0.99, raced_out=True),
            _rec(6, "mul(7.0, y_pred)", 0.99, fidelity=1 / 3),
            _rec(7, "mul(8.0, y_pred)", 0.6), _rec(8, "mul(9.0, y_pred)", 0.8)]
    assert [r.id for r in pick(pool, 3, [])] == [8, 2, 7]
    assert [r.id for r in pick(pool, 3, ["mul(9.0, y_pred)"])] == [2, 7, 0]
    assert pick(pool, 2, ["mul(9.0, y_pred)", "same", "mul(8.0, y_pred)",
                          "mul(2.0, y_pred)"]) == []


def test_tune_step_children_counts_and_determinism():
    def fake_evaluate(kids):  # fitness peaks at the constant 1.3; 2 trainings per new function
        recs = []
        for kid in kids:
            cached = kid.expression in cache
            cache.setdefault(kid.expression, Result((0.0,), trainings=2, model_epochs=6))
            c = constants(kid.expression)[0]
            recs.append(CandidateRecord.from_result(kid, kid.expression, 3,
                                                    Result((-(c - 1.3) ** 2, 0.0)), cached=cached))
        hits = sum(r.cached for r in recs)
        return recs, {"evaluated": len(recs) - hits, "hits": hits, "rejected": 0}

    pool = [_rec(0, "mul(0.2, y_pred)", -(0.2 - 1.3) ** 2), _rec(1, "y_pred", 1.0),
            _rec(2, "mul(1.3, y_pred)", 0.0)]
    settings = ConstantTuning(top_k=2, rounds=2, popsize=3, sigma=0.5)
    runs = []
    for _ in range(2):
        cache, done = {}, []
        children, counts = tune_step(pool, settings, fake_evaluate, seed=5, generation=2,
                                     decimals=3, done=done, cache=cache)
        runs.append([c.expression for c in children])
        assert done == ["mul(1.3, y_pred)", "mul(0.2, y_pred)"]  # best first; none is skipped
        assert len(children) == 1 and children[0].operator == "tune"
        assert children[0].parents == (0,) and children[0].fitness[0] > pool[0].fitness[0]
        assert counts["candidates"] == 2 and counts["proposals"] == 12
        assert counts["trainings"] == 2 * counts["evaluated"] and counts["children"] == 1
        assert counts["gain"] == children[0].fitness[0] - pool[0].fitness[0]
        assert "tuned 2 candidate(s): 12 proposals" in describe(counts)
    assert runs[0] == runs[1]
    children, counts = tune_step(pool, settings, fake_evaluate, seed=5, generation=3,
                                 decimals=3, done=done, cache=cache)
    assert children == [] and counts["candidates"] == 0
    assert describe(counts) == ", nothing left to tune" and describe(None) == ""


# --- campaigns --------------------------------------------------------------------------------
def _config(tmp_path: Path, tuning: str = TUNING, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(TINY + tuning)
    return path


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    config = _config(tmp)
    out = tmp / "run"
    return config, out, run_logged(config, out)


def test_campaign_with_tuning_records_tuned_children(tuned_run):
    _, out, logs = tuned_run
    rows = RunStore(out).candidates()
    by_id = {r["id"]: r for r in rows}
    tuned = [r for r in rows if r["operator"] == "tune"]
    first = [r for r in tuned if r["generation"] == 0]
    assert len(first) == 1 and by_id[first[0]["parents"][0]]["expression"] == BAD
    for r in tuned:  # a child beats its parent on the first fitness component
        parent = by_id[r["parents"][0]]
        assert r["fitness"][0] > parent["fitness"][0] and r["size"] == parent["size"]
        assert constants(r["expression"]) != constants(parent["expression"])
    assert first[0]["fitness"][0] > by_id[first[0]["parents"][0]]["fitness"][0] + 0.01
    state = RunStore(out).load_checkpoint()
    assert state["tuned"][0] == by_id[first[0]["parents"][0]]["canonical_key"]
    steps = [h["tuning"] for h in state["history"]]
    assert len(steps) == 2 and steps[0]["candidates"] == 1 and steps[0]["proposals"] == 6
    assert 0 < steps[0]["trainings"] <= 2 * steps[0]["evaluated"]  # 2 instances each
    assert state["counters"]["evaluated"] == sum(h["evaluated"] + h["tuning"]["evaluated"]
                                                 for h in state["history"])
    assert len(state["cache"]) >= len({r["canonical_key"] for r in rows})  # proposals cached
    assert "tuned 1 candidate(s): 6 proposals" in logs[1] and "1 improved (best +" in logs[1]
    best = status(out)["hall_of_fame"][0]
    assert constants(best["expression"]) and best["expression"] != BAD


def test_tuning_off_gives_the_same_run(tmp_path):
    plain, off = tmp_path / "plain", tmp_path / "off"
    campaign.run(_config(tmp_path, "", "plain.toml"), plain, quiet=True)
    campaign.run(_config(tmp_path, "\n[constant_tuning]\nenabled = false\ntop_k = 3\n",
                         "off.toml"), off, quiet=True)
    assert _strip(RunStore(off).candidates()) == _strip(RunStore(plain).candidates())
    state = RunStore(off).load_checkpoint()
    assert "tuned" not in state and "tuning" not in state["history"][-1]
    assert _strip(state["population"]) == _strip(RunStore(plain).load_checkpoint()["population"])


def test_crash_in_the_middle_of_tuning_resumes_exactly(tmp_path, monkeypatch, tuned_run):
    config, reference, _ = tuned_run
    out = tmp_path / "run"
    real = campaign.Campaign._evaluate
    calls = []

    def crash_in_second_round_of_gen1(self, records, backend):
        if self.state.generation == 0 and records and records[0].operator == "tune":
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt("simulated kill while tuning")
        return real(self, records, backend)

    monkeypatch.setattr(campaign.Campaign, "_evaluate", crash_in_second_round_of_gen1)
    with pytest.raises(KeyboardInterrupt):
        campaign.run(config, out, quiet=True)
    monkeypatch.setattr(campaign.Campaign, "_evaluate", real)
    assert status(out)["generation"] == 0
    campaign.resume(out, quiet=True)
    assert _strip(RunStore(out).candidates()) == _strip(RunStore(reference).candidates())
    assert RunStore(out).load_checkpoint()["tuned"] == RunStore(reference).load_checkpoint()[
        "tuned"]
    assert status(out)["hall_of_fame"] == status(reference)["hall_of_fame"]


def test_resume_after_kill_9_gives_the_same_run(tmp_path, tuned_run):
    config, reference, _ = tuned_run
    out = tmp_path / "run"
    kill_after_checkpoint(config, out, 0)  # generation 1 is running
    assert main(["resume", str(out), "--quiet"]) == 0
    assert _strip(RunStore(out).candidates()) == _strip(RunStore(reference).candidates())
    assert status(out)["hall_of_fame"] == status(reference)["hall_of_fame"]
    assert load_config(config).constant_tuning == ConstantTuning(top_k=1, rounds=2, popsize=3,
                                                                 sigma=2.0)


def test_tuning_with_fidelity_and_racing(tmp_path):
    """Proposals go through the campaign's own evaluation: rungs and racing included; only a
    complete proposal (full fidelity, all instances) can become a child."""
    config = _config(tmp_path, TUNING + "\n[fidelity]\nrungs = [0.333, 1.0]\nkeep = 0.5\n"
                     "\n[racing]\ninitial = 1\nmin_survivors = 2\n")
    config.write_text(config.read_text().replace("epochs = 3,", "epochs = 6,"))
    out = tmp_path / "run"
    campaign.run(config, out, quiet=True)
    state = RunStore(out).load_checkpoint()
    steps = [h["tuning"] for h in state["history"]]
    assert steps[0]["candidates"] == 1 and steps[0]["proposals"] == 6
    assert sum(s["model_epochs"] for s in steps) < 6 * 2 * sum(s["evaluated"] for s in steps)
    tuned = [r for r in RunStore(out).candidates() if r["operator"] == "tune"]
    assert tuned and all(r["fidelity"] == 1.0 for r in tuned)
    assert not any(state["cache"][r["canonical_key"]].get("raced_out") for r in tuned)
    assert {c.get("fidelity", 1.0) for c in state["cache"].values()} == {0.333, 1.0}
