"""The chance row (a constant predictor on the same test environments, by hand) and the
per-score ranks that leave out tasks where no contender is clearly above it."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest

import lossevo.evaluation.fitness as fitness
from lossevo.comparison.report import _csv, _rank_tables
from lossevo.comparison.rows import build_rows
from lossevo.evaluation.chance import chance_scores, environment_labels
from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.statistics import summarize, with_worst_env
from lossevo.evaluation.tasks import load_task


@pytest.mark.parametrize("preset", ["breast_cancer-sym-0.3", "digits-sym-0.4",
                                    "poly3-outliers"])
def test_environments_are_the_ones_fitness_scores(preset):
    task = load_task(preset)
    ours = environment_labels(task, 5)
    theirs = fitness.environment_sets(task, 5, "test")
    assert list(ours) == [e.name for e in task.environments]
    for (name, y), (_, y_fit) in zip(ours.items(), theirs, strict=True):
        np.testing.assert_array_equal(y, y_fit, err_msg=name)


def test_chance_by_hand_on_classification():
    task = load_task("breast_cancer-sym-0.3")  # clean, gauss, rescale, subgroup-0.8, fgsm
    data = load_dataset(task)
    majority = int(np.argmax(np.bincount(data.y_train)))
    got = chance_scores(task, 0)
    assert got["predicts"] == majority and got["metric"] == "accuracy"
    clean = float(np.mean(data.y_test == majority))
    for env in ("clean", "gauss-0.3", "rescale-1.5", "fgsm-0.1"):  # inputs move, labels not
        assert got["envs"][env] == clean
    # subgroup resampling changes the label shares: 80 % from x[:, 0] > 0, drawn with
    # replacement; its exact value is that of the drawn set, its expectation by hand
    inside = data.x_test[:, 0] > 0
    expected = (0.8 * np.mean(data.y_test[inside] == majority)
                + 0.2 * np.mean(data.y_test[~inside] == majority))
    assert got["envs"]["subgroup-0.8"] == pytest.approx(expected, abs=0.06)
    assert got["envs"]["subgroup-0.8"] != clean
    assert got["clean"] == clean and got["worst_env"] == min(got["envs"].values())


def test_chance_by_hand_on_regression():
    task = load_task("poly3-outliers")
    data = load_dataset(task)
    mean = float(data.y_train.astype(np.float64).mean())
    got = chance_scores(task, 0)
    y = data.y_test.astype(np.float64)
    assert got["predicts"] == pytest.approx(mean) and got["metric"] == "r2"
    assert got["clean"] == pytest.approx(1 - np.mean((y - mean) ** 2) / np.var(y))
    assert got["clean"] <= 0 and got["envs"]["gauss-0.2"] == got["clean"]
    ys = fitness.environment_sets(task, 0, "test")[2][1].astype(np.float64)  # xshift
    assert got["envs"]["xshift-0.25"] == pytest.approx(
        1 - np.mean((ys - mean) ** 2) / np.var(ys))


# --- per-score ranks and the floor ------------------------------------------------------


def _result(label: str, task: str, clean: list[float], noisy: list[float]) -> dict:
    per = with_worst_env({"accuracy": {"clean": np.array(clean), "gauss-0.1": np.array(noisy)}})
    return {"contender": label, "task": task, "metric": "accuracy", "status": "ok",
            "reason": None, "seconds": 1.0, "metrics": summarize(per),
            "per_instance": {"accuracy": {e: v.tolist() for e, v in per["accuracy"].items()}}}


def _chance(clean: float, worst: float) -> dict:
    return {"metric": "accuracy", "predicts": 0, "clean": clean, "worst_env": worst,
            "envs": {"clean": clean, "gauss-0.1": worst}}


def test_ranks_per_score_leave_out_tasks_at_chance():
    cfg = SimpleNamespace(seed=1, baseline=None,
                          tasks=[SimpleNamespace(name="easy"), SimpleNamespace(name="hard")],
                          contenders=[SimpleNamespace(label=k, evolved=False)
                                      for k in ("a", "b")])
    results = [
        # easy: both far above chance; a better on clean, b better on worst-env
        _result("a", "easy", [0.90, 0.92, 0.91], [0.50, 0.52, 0.51]),
        _result("b", "easy", [0.80, 0.82, 0.81], [0.60, 0.62, 0.61]),
        # hard: clean clearly above chance 0.5; worst-env at chance 0.3: b's mean is above
        # (0.313) but its interval is not (it reaches 0.28), a is below
        _result("a", "hard", [0.70, 0.72, 0.71], [0.29, 0.30, 0.28]),
        _result("b", "hard", [0.60, 0.62, 0.61], [0.28, 0.33, 0.33]),
    ]
    chance = {"easy": _chance(0.1, 0.1), "hard": _chance(0.5, 0.3)}
    rows = build_rows(cfg, results, chance)
    by = {(r["task"], r["contender"]): r for r in rows}
    assert [r["contender"] for r in rows] == ["chance", "a", "b", "chance", "a", "b"]
    assert by["easy", "a"]["clean_rank"] == 1.0 and by["easy", "a"]["worst_env_rank"] == 2.0
    assert by["hard", "b"]["worst_env"] > 0.3 and not by["hard", "b"]["worst_env_above_chance"]
    assert by["hard", "chance"]["clean_ranked"] and not by["hard", "chance"]["worst_env_ranked"]
    # clean: both tasks count, a is first on both; worst-env: only "easy" counts
    assert by["easy", "a"]["clean_average_rank"] == 1.0
    assert by["easy", "a"]["clean_ranked_tasks"] == 2
    assert by["easy", "b"]["worst_env_average_rank"] == 1.0
    assert by["easy", "b"]["worst_env_ranked_tasks"] == 1
    assert by["hard", "a"]["worst_env_rank"] == 2.0  # still ranked within its task
    # each score has its own reference: a on clean, b on worst-env
    assert by["easy", "b"]["clean_vs"] == "a" and by["easy", "a"]["worst_env_vs"] == "b"
    # the chance row: paired against the reference, outside the Holm family, never ranked
    assert by["easy", "chance"]["clean_mean_diff"] == pytest.approx(0.1 - 0.91)
    assert by["easy", "chance"].get("clean_holm_p") is None
    assert "clean_average_rank" not in by["easy", "chance"]
    md = "\n".join(_rank_tables(cfg, rows))
    assert ("Left out of the worst-env average ranks (no contender clearly above chance): "
            "hard.") in md
    assert "Left out of the clean average ranks (no contender clearly above chance): none." in md
    assert "| b | 1.0 | (1.0) | 1.00 |" in md  # worst-env table: hard's rank in parentheses
    table = list(csv.DictReader(io.StringIO(_csv(rows))))
    assert table[0]["status"] == "chance" and table[0]["clean"] == "0.1"
    assert table[0]["clean_rank"] == "" and table[1]["clean_above_chance"] == "True"


def test_one_instance_compares_its_single_score():
    cfg = SimpleNamespace(seed=1, baseline=None, tasks=[SimpleNamespace(name="t")],
                          contenders=[SimpleNamespace(label="a", evolved=False)])
    rows = build_rows(cfg, [_result("a", "t", [0.6], [0.31])], {"t": _chance(0.5, 0.3)})
    a = rows[1]
    assert a["clean_ci_low"] is None
    assert a["clean_above_chance"] and a["worst_env_above_chance"]
