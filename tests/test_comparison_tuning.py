"""Fair tuning in `lossevo compare`: declared grids (≤ 4 points, the default among them), the
choice read from validation only (a fake evaluator whose test scores would choose otherwise),
racing, ties keeping the default, early stopping, the unit key, the config keys, and one tiny
real run with every new column."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import lossevo.comparison.protocol as cmp
import lossevo.evaluation.fitness as fitness
from lossevo.baselines.schemes import SCHEME_TUNING_GRIDS, SCHEMES, scheme_grid_points
from lossevo.comparison import Contender, compare_config_from_mapping
from lossevo.comparison.tuning import (
    _default_index,
    apply_point,
    grid,
    scale_constants,
)
from lossevo.comparison.units import unit_key
from lossevo.evaluation.statistics import summarize, with_worst_env
from lossevo.evaluation.tasks import load_task

TINY = {"preset": "digits-sym-0.4", "name": "tiny", "model": {"widths": [16]},
        "budget": {"epochs": 2, "batch_size": 128, "lr": 0.01}}
EVO = "mul(y_true, sub(1.0, mul(0.5, y_pred)))"


def _cfg(contenders, **extra):
    return compare_config_from_mapping({"seed": 3, "instances": 2, "tasks": [TINY],
                                        "contenders": contenders,
                                        "backend": {"name": "serial"}, **extra})


# --- grids ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["digits-sym-0.4", "breast_cancer-sym-0.3"])
@pytest.mark.parametrize("name", SCHEMES)
def test_every_scheme_grid_is_small_buildable_and_holds_the_default(name, preset):
    task = load_task(preset)
    c = Contender(name, scheme=name)
    points = scheme_grid_points(name, task)
    assert 1 <= len(points) <= 4 and len(SCHEME_TUNING_GRIDS[name]) <= 1
    assert grid(c, task) == points
    for p in points:
        apply_point(c, p)  # builds: bad values would raise in build_scheme
        from lossevo.baselines.schemes import build_scheme

        build_scheme(name, **p)
    if points != [{}]:
        assert _default_index(c, task, points) is not None


def test_attack_grids_are_relative_to_the_task_epsilon():
    digits, bc = load_task("digits-sym-0.4"), load_task("breast_cancer-sym-0.3")
    assert scheme_grid_points("adv_pgd", digits) == [
        {"epsilon": e} for e in (0.0125, 0.025, 0.05, 0.1)]  # digits attacks at 0.05
    assert scheme_grid_points("adv_fgsm", bc)[2] == {"epsilon": 0.1}  # default ×1


def test_grid_drops_what_the_table_fixes_and_scales_evolved_constants():
    task = load_task("digits-sym-0.4")
    assert grid(Contender("bt", loss="bi_tempered", loss_params={"t1": 0.8}), task) == [
        {"t2": 1.2}, {"t2": 2.0}]
    assert grid(Contender("g", loss="gce", loss_params={"q": 0.5}), task) == [{}]
    assert grid(Contender("s", scheme="sam", scheme_params={"rho": 0.1}), task) == [{}]
    assert grid(Contender("ce", loss="ce"), task) == [{}]
    assert grid(Contender("g", loss="gce"), load_task("poly3-outliers")) == []  # n/a there
    evo = Contender("e", expression=EVO, evolved=True)
    assert grid(evo, task) == [{"scale": s} for s in (0.5, 1.0, 1.5, 2.0)]
    assert grid(Contender("q", expression="mul(y_true, log(y_pred))"), task) == [{}]
    assert scale_constants(EVO, 1.5) == "mul(y_true, sub(1.5, mul(0.75, y_pred)))"
    assert apply_point(evo, {"scale": 1.0}) is evo  # ×1 keeps the evolved text exactly
    assert apply_point(evo, {"scale": 2.0}).expression == "mul(y_true, sub(2.0, mul(1.0, y_pred)))"


# --- the choice reads validation only ---------------------------------------------------


def _evaluation(loss, score: float, n: int, split: str, task):
    per = with_worst_env({"accuracy": {"clean": np.full(n, score),
                                       "gauss-0.1": np.full(n, score - 0.1)}})
    metrics = summarize(per)
    return fitness.Evaluation(
        repr(loss), metrics, fitness.fitness_vector(metrics, task.fitness_spec),
        {m: {e: v.tolist() for e, v in envs.items()} for m, envs in per.items()},
        0.0, n, None, False, n, {}, split)


@pytest.fixture
def fake_evaluator(monkeypatch):
    """evaluate_many stand-in: on validation the first grid point is best, on test the last
    one would be; records every call."""
    calls = []

    def fake(losses, task, *, instances, seed, racing=None, device=None, scheme=None,
             split="validation", early_stopping=False):
        calls.append({"losses": [repr(x) for x in losses], "scheme": repr(scheme),
                      "split": split, "racing": racing, "instances": instances,
                      "early_stopping": early_stopping})
        out = []
        for x in losses:
            text = repr(x) + repr(scheme)
            rank = next((i for i, v in enumerate(("0.3", "0.5", "0.7", "0.9", "0.02", "0.05",
                                                  "0.1)", "0.2)")) if v in text), 0) % 4
            score = 0.8 - 0.1 * rank if split == "validation" else 0.4 + 0.1 * rank
            out.append(_evaluation(x, score, instances, split, task))
        return out

    monkeypatch.setattr(fitness, "evaluate_many", fake)
    return calls


def test_loss_tuning_picks_by_validation_and_never_reads_test(fake_evaluator):
    cfg = _cfg(["gce"], tune=True)
    (unit,) = cmp.make_units(cfg)
    assert unit["tuning"]["grids"] == {"gce": [{"q": v} for v in (0.3, 0.5, 0.7, 0.9)]}
    (res,) = cmp.run_unit(unit)
    tune_call, test_call = fake_evaluator
    assert tune_call["split"] == "validation" and tune_call["racing"] is not None
    assert len(tune_call["losses"]) == 4
    # test would have preferred q = 0.9 (0.7 > 0.4); only the validation choice is tested
    assert test_call == {"losses": ["gce(q=0.3)"], "scheme": "None", "split": "test",
                         "racing": None, "instances": 2, "early_stopping": False}
    assert res["tuning"]["chosen"] == {"q": 0.3} and res["tuning"]["chosen_index"] == 0
    assert res["loss"] == "gce(q=0.3)"
    assert [v[0] for v in res["tuning"]["validation"]] == pytest.approx([0.8, 0.7, 0.6, 0.5])


def test_scheme_tuning_races_on_validation(fake_evaluator):
    cfg = compare_config_from_mapping({"seed": 3, "instances": 4, "tasks": [TINY],
                                       "contenders": ["sam"], "tune": True})
    (res,) = cmp.run_unit(cmp.make_units(cfg)[0])
    *tuning, test_call = fake_evaluator
    # round 1: four points on 2 instances; round 2: the better half on all 4 (re-trained)
    assert [c["instances"] for c in tuning] == [2, 2, 2, 2, 4, 4]
    assert all(c["split"] == "validation" for c in tuning)
    assert test_call["split"] == "test" and test_call["scheme"] == "sam(rho=0.02)"
    assert res["tuning"]["raced_out"] == [False, False, True, True]
    assert res["tuning"]["instances"] == [4, 4, 2, 2]
    assert res["tuning"]["trainings"] == 4 * 2 + 2 * 4


def test_ties_keep_the_default_and_early_stop_reaches_every_call(monkeypatch):
    calls = []

    def flat(losses, task, *, instances, split="validation", early_stopping=False, **kw):
        calls.append((split, early_stopping))
        return [_evaluation(x, 0.5, instances, split, task) for x in losses]

    monkeypatch.setattr(fitness, "evaluate_many", flat)
    cfg = _cfg([{"loss": "gce", "early_stop": True}], tune=True)
    (res,) = cmp.run_unit(cmp.make_units(cfg)[0])
    assert res["tuning"]["chosen"] == {"q": 0.7}  # gce's default
    assert calls == [("validation", True), ("test", True)]


# --- units, config ----------------------------------------------------------------------


def test_tuning_is_part_of_the_unit_key():
    plain = cmp.make_units(_cfg(["gce", "ce"]))
    tuned = cmp.make_units(_cfg(["gce", "ce"], tune=True))
    assert "tuning" not in plain[0] and "tuning" in tuned[0] and "tuning" not in tuned[1]
    assert unit_key(plain[0]) != unit_key(tuned[0])
    other = dict(tuned[0], tuning={**tuned[0]["tuning"], "grids": {"gce": [{"q": 0.3}]}})
    assert unit_key(other) != unit_key(tuned[0])
    # early-stopped contenders never share a batch with the others
    units = cmp.make_units(_cfg(["ce", "ce_early_stop", "mae"],
                                backend={"name": "serial", "chunk": 4}))
    assert [[c["label"] for c in u["contenders"]] for u in units] == [
        ["ce", "mae"], ["ce_early_stop"]]


@pytest.mark.parametrize(("extra", "message"), [
    ({"tune": "yes"}, "'tune' = 'yes' is not allowed; allowed: true or false"),
    ({"tune_evolved": True}, "'tune_evolved' = True is not allowed; allowed: false unless "
                             "tune = true"),
    ({"tune_evolved": 1, "tune": True}, "'tune_evolved' = 1 is not allowed"),
    ({"contenders": [{"loss": "gce", "early_stop": "yes"}]},
     "'contenders[0].early_stop' = 'yes' is not allowed; allowed: true or false"),
    ({"contenders": [{"expression": EVO, "tune": True}]},
     "allowed: expression, label, early_stop"),
])
def test_config_errors_for_the_new_keys(extra, message):
    data = {"tasks": [TINY], "contenders": ["ce"], **extra}
    with pytest.raises(ValueError) as err:
        compare_config_from_mapping(data)
    assert message in str(err.value)


def test_config_flags_reach_the_contenders():
    cfg = _cfg(["gce", "ce_early_stop", {"expression": EVO, "label": "e", "early_stop": True},
                {"scheme": "sam", "early_stop": True, "label": "sam-es"}], tune=True)
    flags = {c.label: (c.tune, c.early_stop) for c in cfg.contenders}
    assert flags == {"gce": (True, False), "ce_early_stop": (True, True),
                     "e": (False, True), "sam-es": (True, True)}
    assert cfg.tune and not cfg.tune_evolved
    both = _cfg([{"expression": EVO, "label": "e"}], tune=True, tune_evolved=True)
    assert both.contenders[0].tune
    # without a label, an early-stopped table is named like ce_early_stop (and is it for ce)
    named = _cfg(["ce_early_stop", {"loss": "ce", "early_stop": True},
                  {"loss": "gce", "q": 0.5, "early_stop": True}])
    assert [c.label for c in named.contenders] == ["ce_early_stop", "gce(q=0.5)_early_stop"]


# --- a tiny real run --------------------------------------------------------------------


def test_tiny_tuned_compare_reports_choices_and_epochs(tmp_path, monkeypatch):
    splits = []
    real = fitness.evaluate_many

    def spy(losses, task, **kw):
        splits.append((kw.get("split"), [repr(x) for x in losses]))
        return real(losses, task, **kw)

    monkeypatch.setattr(fitness, "evaluate_many", spy)
    cfg = _cfg(["gce", "ce_early_stop", {"expression": EVO, "label": "evo"}],
               tune=True, tune_evolved=True)
    out = cmp.compare(cfg, tmp_path / "out", quiet=True)
    tests = [losses for split, losses in splits if split == "test"]
    assert len(tests) == 3 and all(len(x) == 1 for x in tests)  # only the chosen points
    with (out / "compare.csv").open() as fh:
        by = {r["contender"]: r for r in csv.DictReader(fh)}
    assert by["gce"]["tuned"].startswith("q=") and by["evo"]["tuned"].startswith("×")
    assert by["ce_early_stop"]["early_stop"] == "True"
    assert 0 <= float(by["ce_early_stop"]["stopped_epoch"]) <= 2
    assert by["gce"]["stopped_epoch"] == "" and float(by["gce"]["tuning_seconds"]) > 0
    doc = json.loads((out / "compare.json").read_text())
    assert doc["tuning"]["tune"] and doc["tuning"]["split"] == "validation"
    gce = next(r for r in doc["results"] if r["contender"] == "gce")
    assert len(gce["tuning"]["points"]) == 4 and gce["tuning"]["chosen"] is not None
    md = (out / "compare.md").read_text()
    assert "## Tuning on validation" in md and "| tuned (validation) |" in md
    assert "| stopped epoch |" in md and "## Early stopping" in md


def test_smoke_config_lists_every_builtin_and_runs_tuned_reduced():
    """experiments/compare-smoke.toml names every built-in; reduced (its digits task, one
    instance, serial) and tuned, every grid of every built-in trains for real."""
    from pathlib import Path

    from lossevo.comparison import builtin_names
    from lossevo.search.config import read_toml

    data = read_toml(Path(__file__).resolve().parents[1] / "experiments"
                     / "compare-smoke.toml", "compare config file")
    assert set(builtin_names()) <= {c for c in data["contenders"] if isinstance(c, str)}
    data.update(instances=1, tune=True, tune_evolved=True, backend={"name": "serial"},
                tasks=data["tasks"][:1])
    res = cmp.run_comparison(compare_config_from_mapping(data))
    assert {r["status"] for r in res} == {"ok"}, [r["reason"] for r in res]
    tuned = {r["contender"] for r in res if r["tuning"]}
    assert {"gce", "sam", "adv_pgd", "mixup", "cutout"} <= tuned
    assert all(r["tuning"]["chosen"] is not None for r in res if r["tuning"])
    assert all(r["stopped_epoch"] for r in res if r["contender"].endswith(("_es", "early_stop")))
