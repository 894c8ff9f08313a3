"""Statistics across instances and the fitness vector."""

from __future__ import annotations

import numpy as np
import pytest

from lossevo.evaluation.statistics import fitness_vector, summarize, with_worst_env, worst_fitness


def test_worst_env_is_per_instance_minimum_or_mse_maximum():
    per = with_worst_env({
        "accuracy": {"clean": np.array([0.9, 0.8]), "gauss-0.1": np.array([0.7, 0.85])},
        "mse": {"clean": np.array([1.0, 3.0]), "xshift-0.25": np.array([2.0, 1.0])},
    })
    np.testing.assert_array_equal(per["accuracy"]["worst_env"], [0.7, 0.8])
    np.testing.assert_array_equal(per["mse"]["worst_env"], [2.0, 3.0])


def test_summary_statistics():
    values = np.array([0.1, 0.2, 0.3, 0.4, 1.0])
    m = summarize({"accuracy": {"clean": values}})
    assert m["accuracy.clean.mean"] == pytest.approx(0.4)
    assert m["accuracy.clean.std"] == pytest.approx(values.std(ddof=1))  # sample std
    assert m["accuracy.clean.std"] == pytest.approx(np.sqrt(0.5 / 4))  # squares sum to 0.5
    assert m["accuracy.clean.min"] == pytest.approx(0.1)
    q90, q10 = np.quantile(values, [0.9, 0.1])
    assert m["accuracy.clean.q90_q10"] == pytest.approx(q90 - q10)
    assert set(m) == {f"accuracy.clean.{s}" for s in ("mean", "std", "q90_q10", "min")}


def test_fitness_vector_signs_and_errors():
    metrics = {"accuracy.worst_env.mean": 0.8, "accuracy.worst_env.std": 0.05}
    spec = ("accuracy.worst_env.mean", "-accuracy.worst_env.std")
    assert fitness_vector(metrics, spec) == (0.8, -0.05)
    with pytest.raises(ValueError, match=r"r2\.clean\.mean"):
        fitness_vector(metrics, ("r2.clean.mean",))
    assert worst_fitness(spec) == (float("-inf"), float("-inf"))
    # a constant predictor is perfectly stable but its level ranks it last
    assert fitness_vector({"accuracy.worst_env.mean": 0.1, "accuracy.worst_env.std": 0.0},
                          spec) < fitness_vector(metrics, spec)


def test_single_instance_std_is_zero_so_fitness_stays_finite():
    m = summarize(with_worst_env({"accuracy": {"clean": np.array([0.7]),
                                               "gauss-0.1": np.array([0.6])}}))
    assert m["accuracy.clean.std"] == 0.0 and m["accuracy.worst_env.std"] == 0.0
    f = fitness_vector(m, ("accuracy.worst_env.mean", "-accuracy.worst_env.std"))
    assert f == (pytest.approx(0.6), 0.0) and all(np.isfinite(f))
