"""Multi-task campaigns: config checks, the normalization, per-task records, resume."""

import math
import sqlite3
from pathlib import Path

import pytest
from campaign_helpers import crash_before_checkpoint, run_logged

import lossevo.search.campaign as campaign
import lossevo.search.multitask as multitask
from lossevo.evaluation.chance import chance_scores
from lossevo.evaluation.sizing import check_campaign
from lossevo.evaluation.tasks import load_task
from lossevo.search.config import CampaignConfig, config_from_mapping, load_config
from lossevo.search.multitask import MultiTask, combine, normalize, reference
from lossevo.search.records import Result
from lossevo.search.report import status
from lossevo.search.store import RunStore

TINY = {"model": {"widths": [16]}, "budget": {"epochs": 2, "batch_size": 128, "lr": 0.01}}
SGD = {"model": {"widths": [16]},
       "budget": {"epochs": 2, "batch_size": 128, "lr": 0.1, "optimizer": "sgd"}}

# The same task under Adam and under SGD, the worse of the two: "trains under both".
CONFIG = """seed = 0
instances = 2

[[tasks]]
preset = "digits-sym-0.4"
model = { widths = [16] }
budget = { epochs = 2, batch_size = 128, lr = 0.01 }

[[tasks]]
preset = "digits-sym-0.4"
name = "digits-sgd"
model = { widths = [16] }
budget = { epochs = 2, batch_size = 128, lr = 0.1, optimizer = "sgd", momentum = 0.9 }

[multi_task]
aggregate = "worst"
baselines = ["ce", "mae", "gce"]

[evolution]
population = 4
offspring = 4
generations = 2
seed_expressions = ["mul(-1.0, mul(y_true, log(y_pred)))", "mul(y_true, sub(1.0, y_pred))"]

[backend]
name = "serial"
"""


def _entry(name=None, preset="digits-sym-0.4", **extra):
    out = {"preset": preset, **TINY, **extra}
    if name:
        out["name"] = name
    return out


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "message"), [
    ({"task": "digits-sym-0.4", "tasks": [_entry()]}, "'task' and 'tasks' are both given"),
    ({"tasks": [_entry(), _entry()]}, "distinct task names .*digits-sym-0.4.*'name'"),
    ({"tasks": [_entry(), _entry("b")], "multi_task": {"aggregate": "median"}},
     "'multi_task.aggregate' = 'median'.*normalized_mean, worst"),
    ({"tasks": [_entry(), {"preset": "poly3-outliers", "budget": {"epochs": 2}}]},
     "tasks of one kind"),
    ({"task": "digits-sym-0.4", "multi_task": {"aggregate": "worst"}},
     "'multi_task' applies only with 'tasks'"),
    ({"tasks": [_entry()], "multi_task": {"baselines": ["ce", "hinge"]}},
     "'multi_task.baselines' = 'hinge'.*built-in classification losses"),
    ({"tasks": [_entry()], "multi_task": {"baselines": "ce"}},
     "'multi_task.baselines' = 'ce'.*a list of strings"),
    ({"tasks": [_entry()], "multi_task": {"colour": 1}}, "unknown config key 'multi_task.colour'"),
    ({"tasks": []}, "'tasks' = \\[\\].*non-empty list"),
    ({"tasks": [_entry(), {"preset": "digits-sym-0.4", "budget": {"lr": -1.0}}]},
     "'tasks\\[1\\]'.*budget.lr"),
    ({"tasks": [_entry(fitness=["-accuracy.clean.std"])]}, "'tasks\\[0\\].fitness'.*a level"),
    ({"tasks": [{"preset": "poly3-outliers", "fitness": ["-mse.clean.mean"]}]},
     "'tasks\\[0\\].fitness'.*use r2, not -mse"),
    ({"tasks": [_entry(fitness=["accuracy.rotate-5.mean"])]}, "environment: clean"),
    ({"tasks": [{"preset": "digits-sym-0.4"}, _entry("b")],
      "fidelity": {"rungs": [0.1, 0.3, 1.0]}}, "config table 'fidelity'.*budget.epochs = 2"),
])
def test_config_errors_name_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        config_from_mapping(data)


def test_tasks_and_task_agree_and_single_task_is_unchanged():
    cfg = config_from_mapping({"tasks": [_entry(), _entry("sgd-copy", budget=SGD["budget"])]})
    assert [t.name for t in cfg.tasks] == ["digits-sym-0.4", "sgd-copy"]
    assert cfg.task is cfg.tasks[0] and cfg.multi_task == MultiTask()
    assert cfg.multi_task.baseline_names("classification") == (
        "ce", "mae", "gce", "sce", "nce_rce", "anl_ce")
    assert cfg.multi_task.baseline_names("regression") == ("mse", "mae", "huber")
    assert not multitask.scale_free(cfg.tasks)  # SGD follows a loss's scale: keys keep it
    single = config_from_mapping({"task": _entry()})
    assert single.tasks == (single.task,) and single.multi_task is None
    assert multitask.scale_free(single.tasks)
    two = (load_task("digits-sym-0.4"), load_task("digits-sym-0.8"))
    assert CampaignConfig(task=two[0], tasks=two).multi_task == MultiTask()  # implied
    with pytest.raises(ValueError, match="first task is 'task'"):
        CampaignConfig(task=two[1], tasks=two)


def test_the_example_requires_adam_and_sgd():
    cfg = load_config(Path(__file__).resolve().parents[1] / "experiments"
                      / "multitask-smoke.toml")
    adam, sgd = cfg.tasks
    assert (adam.budget.optimizer, sgd.budget.optimizer) == ("adam", "sgd")
    assert adam.with_overrides(budget={"optimizer": "sgd", "lr": sgd.budget.lr},
                               name=sgd.name) == sgd  # the same task otherwise
    assert cfg.multi_task.aggregate == "worst"


def test_sizing_adds_the_tasks_compute_and_names_the_task():
    small = load_task("digits-sym-0.4").with_overrides(**TINY)
    big = load_task("digits-sym-0.4").with_overrides(model={"widths": [256]},
                                                     budget={"epochs": 100_000})
    one = check_campaign(small, instances=2, candidates=10, workers=1)
    assert check_campaign([small, small], instances=2, candidates=10, workers=1) == one
    with pytest.raises(ValueError, match=r"'tasks\[1\]\.budget\.epochs'"):
        check_campaign([small, big], instances=64, candidates=10**6, workers=1)


# --- the normalization -------------------------------------------------------------------------


def test_normalization_by_hand():
    task = load_task("digits-sym-0.4")
    ref = reference(task, 0.1, {"ce": 0.5, "mae": None, "gce": 0.3})
    assert ref["best_name"] == "ce" and ref["best_baseline"] == 0.5 and ref["note"] is None
    assert ref["scale"] == pytest.approx(0.4) and ref["level"] == "accuracy.clean.mean"
    assert normalize(0.3, ref) == pytest.approx(0.5)  # halfway from chance to the best
    assert normalize(0.1, ref) == 0.0 and normalize(0.5, ref) == pytest.approx(1.0)
    assert normalize(-math.inf, ref) == -math.inf
    other = reference(task, 0.2, {"ce": 0.6})  # scale 0.4
    refs = {"aggregate": "normalized_mean", "tasks": {"a": ref, "b": other}}

    def res(score, rejected=None):
        return Result(fitness=(score, -0.01), metrics={"accuracy.clean.mean": score},
                      rejected=rejected, seconds=1.0, trainings=2, worker="w",
                      raced_out=False, model_epochs=4)

    mean = combine(refs, [res(0.3), res(0.6)])  # normalized 0.5 and 1.0
    assert mean.fitness == (pytest.approx(0.75),) and mean.rejected is None
    assert mean.metrics["normalized/a"] == pytest.approx(0.5)
    assert mean.tasks["b"]["fitness"] == [0.6, -0.01]
    assert (mean.seconds, mean.trainings, mean.model_epochs) == (2.0, 4, 8)
    worst = combine({**refs, "aggregate": "worst"}, [res(0.3), res(0.6)])
    assert worst.fitness == (pytest.approx(0.5),)
    one_bad = combine(refs, [res(0.3), res(-math.inf, "nan loss")])
    assert one_bad.fitness == (-math.inf,) and one_bad.rejected == "task b: nan loss"
    assert one_bad.tasks["a"]["normalized"] == pytest.approx(0.5)
    both = combine(refs, [res(-math.inf, "probe: x"), res(-math.inf, "probe: x")])
    assert both.rejected == "probe: x"  # one reason for all tasks: said once


def test_a_baseline_at_chance_falls_back_to_the_perfect_score():
    task = load_task("digits-sym-0.4")
    low = reference(task, 0.3, {"ce": 0.25, "mae": 0.3})
    assert low["scale"] == pytest.approx(0.7) and "not above chance" in low["note"]
    none = reference(task, 0.3, {"ce": None})
    assert none["scale"] == pytest.approx(0.7) and "no baseline trained" in none["note"]
    assert reference(task, 1.0, {"ce": 1.0})["scale"] == 1.0  # never divides by zero
    lines = multitask.reference_lines({"tasks": {"t": low}})
    assert "not above chance" in lines[0] and "chance 0.3000" in lines[0]


def test_chance_is_the_validation_score_of_the_level():
    task = load_task("digits-sym-0.4").with_overrides(
        fitness=["accuracy.worst_env.min", "-accuracy.worst_env.std"])
    val = chance_scores(task, 3, split="validation")
    assert multitask._chance(task, 3) == val["worst_env"]
    assert val["envs"] != chance_scores(task, 3)["envs"]  # not the test split's
    clean = load_task("digits-sym-0.4")
    assert multitask._chance(clean, 3) == val["envs"]["clean"]


# --- campaigns ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory):
    """The Adam + SGD campaign, run once; its log lines kept."""
    tmp = tmp_path_factory.mktemp("mt")
    config = tmp / "c.toml"
    config.write_text(CONFIG)
    return config, tmp / "run", run_logged(config, tmp / "run")


def test_two_task_campaign_records_each_tasks_metrics(two_tasks):
    config, out, logs = two_tasks
    cfg = load_config(config)
    rows = RunStore(out).candidates()
    assert len(rows) == 4 + 2 * 4
    state = RunStore(out).load_checkpoint()
    refs = state["multi_task"]
    assert list(refs["tasks"]) == ["digits-sym-0.4", "digits-sgd"]
    assert refs["aggregate"] == "worst" and refs["baselines"] == ["ce", "mae", "gce"]
    for name, ref in refs["tasks"].items():
        assert ref["chance"] == pytest.approx(0.0952, abs=1e-3)  # majority class on validation
        assert ref["best_baseline"] > ref["chance"] and ref["note"] is None
        assert f"{name}: accuracy.clean.mean on validation" in "\n".join(logs)
    ok = [r for r in rows if r["status"] != "rejected"]
    assert ok
    with sqlite3.connect(RunStore(out).db_path) as db:  # stored as JSON in its own column
        stored = dict(db.execute("SELECT id, tasks FROM candidates"))
    db.close()
    assert all(stored[r["id"]] != "{}" for r in rows)
    for r in ok:
        per = r["tasks"]
        assert list(per) == ["digits-sym-0.4", "digits-sgd"]
        for name, p in per.items():
            assert p["metrics"]["accuracy.clean.mean"] == p["fitness"][0]
            assert p["normalized"] == pytest.approx(normalize(p["fitness"][0],
                                                              refs["tasks"][name]))
        assert r["fitness"] == [min(p["normalized"] for p in per.values())]  # the worse one
        assert r["metrics"]["aggregate"] == r["fitness"][0]
    # the task under SGD trains differently: its scores are its own
    assert any(r["tasks"]["digits-sym-0.4"]["fitness"] != r["tasks"]["digits-sgd"]["fitness"]
               for r in ok)
    # cross-entropy, written as an expression, is the 'ce' baseline: 1.0 where ce is best
    ce = next(r for r in ok if r["expression"] == cfg.evolution.seed_expressions[0])
    for name, p in ce["tasks"].items():
        if refs["tasks"][name]["best_name"] == "ce":
            assert p["normalized"] == pytest.approx(1.0, abs=1e-6)
    hof = status(out)["hall_of_fame"]
    assert [h["fitness"] for h in hof] == sorted((h["fitness"] for h in hof), reverse=True)
    assert "tasks digits-sym-0.4, digits-sgd" in logs[0]
    assert any("best (" in line and "digits-sgd " in line for line in logs)


def test_references_are_kept_on_resume_and_never_recomputed(tmp_path, monkeypatch, two_tasks):
    config, reference_run, _ = two_tasks
    out = tmp_path / "run"
    crash_before_checkpoint(config, out, monkeypatch)

    def no_baselines(*args, **kwargs):
        raise AssertionError("a resumed run must reuse the stored references")

    monkeypatch.setattr(multitask, "compute_references", no_baselines)
    campaign.resume(out, quiet=True)
    got, want = RunStore(out).load_checkpoint(), RunStore(reference_run).load_checkpoint()
    assert got["multi_task"] == want["multi_task"]
    assert status(out)["hall_of_fame"] == status(reference_run)["hall_of_fame"]

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "worker")} for r in rows]

    assert strip(RunStore(out).candidates()) == strip(RunStore(reference_run).candidates())


def test_multi_task_with_fidelity_and_racing(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.replace("generations = 2", "generations = 1")
                      + "\n[fidelity]\nrungs = [0.5, 1.0]\nkeep = 0.5\n"
                      + "\n[racing]\ninitial = 1\n")
    campaign.run(config, tmp_path / "run", quiet=True)
    rows = RunStore(tmp_path / "run").candidates()
    assert {r["fidelity"] for r in rows} == {0.5, 1.0}
    assert all(set(r["tasks"]) == {"digits-sym-0.4", "digits-sgd"} for r in rows)
    state = RunStore(tmp_path / "run").load_checkpoint()
    low = [c for c in state["cache"].values() if c["fidelity"] == 0.5 and not c["rejected"]]
    assert low and all(len(c["rung_fitness"]) == 1 for c in low)
    tiers = [r["fidelity"] for r in state["hall_of_fame"]]  # full fidelity ranks first
    assert tiers[0] == 1.0 and tiers == sorted(tiers, reverse=True)


def test_task_files_in_tasks_are_copied_into_the_run(tmp_path):
    task_file = tmp_path / "mine.toml"
    task_file.write_text('base = "digits-sym-0.4"\nname = "mine"\n'
                         'model = { widths = [8] }\nbudget = { epochs = 1, batch_size = 256 }\n')
    config = tmp_path / "c.toml"
    config.write_text(f'instances = 1\n[[tasks]]\npreset = "digits-sym-0.4"\n'
                      f'model = {{ widths = [8] }}\nbudget = {{ epochs = 1, batch_size = 256 }}\n'
                      f'[[tasks]]\npreset = "{task_file}"\n'
                      f'[multi_task]\nbaselines = ["ce"]\n'
                      f'[evolution]\npopulation = 2\noffspring = 2\ngenerations = 0\n'
                      f'[backend]\nname = "serial"\n')
    out = tmp_path / "run"
    campaign.run(config, out, quiet=True)
    assert (out / "task-1.toml").read_text() == task_file.read_text()
    task_file.write_text('base = "digits-sym-0.4"\nname = "edited"\n')
    cfg, _ = campaign.load_run_config(RunStore(out))
    assert [t.name for t in cfg.tasks] == ["digits-sym-0.4", "mine"]


def test_single_task_rows_have_no_tasks_and_old_databases_read(tmp_path):
    store = RunStore(tmp_path)
    with sqlite3.connect(store.db_path) as db:  # the schema before the tasks column
        db.execute("CREATE TABLE candidates (id INTEGER PRIMARY KEY, generation INTEGER NOT "
                   "NULL, expression TEXT NOT NULL, canonical_key TEXT NOT NULL, size INTEGER "
                   "NOT NULL, parents TEXT NOT NULL, operator TEXT NOT NULL, fitness TEXT NOT "
                   "NULL, metrics TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, seconds "
                   "REAL NOT NULL, worker TEXT NOT NULL, fidelity REAL NOT NULL DEFAULT 1.0)")
        db.execute("INSERT INTO candidates VALUES (0, 0, 'y_pred', 'k', 1, '[]', 'init', "
                   "'[0.5]', '{}', 'ok', NULL, 1.0, 'w', 1.0)")
    db.close()
    assert store.candidates()[0]["tasks"] == {}
    row = {"id": 1, "generation": 1, "expression": "y_true", "canonical_key": "k2", "size": 1,
           "parents": [], "operator": "init", "fitness": [0.1], "metrics": {}, "status": "ok",
           "reason": None, "seconds": 0.0, "worker": "w", "tasks": {"a": {"normalized": 0.5}}}
    store.record([row])
    assert [r["tasks"] for r in store.candidates()] == [{}, {"a": {"normalized": 0.5}}]
