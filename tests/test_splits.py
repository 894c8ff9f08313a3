"""Train / validation / test: choices read validation only, reports read test."""

import dataclasses

import numpy as np
import pytest

import lossevo.evaluation.data as data_module
import lossevo.evaluation.fitness as fitness
import lossevo.search.campaign as campaign
from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.fitness import evaluate
from lossevo.evaluation.tasks import load_task
from lossevo.search.report import status
from lossevo.search.store import RunStore

CONFIG = """seed = 0
instances = 2

[task]
preset = "digits-sym-0.4"
model = { widths = [16] }
budget = { epochs = 2, batch_size = 128, lr = 0.01 }

[evolution]
population = 4
offspring = 4
generations = 2
seed_expressions = ["mul(-1.0, mul(y_true, log(y_pred)))", "mul(y_true, sub(1.0, y_pred))"]

[backend]
name = "serial"
"""

# Every listed task, its chance value and its baselines read validation only too.
MULTI_CONFIG = """seed = 0
instances = 2

[[tasks]]
preset = "digits-sym-0.4"
model = { widths = [16] }
budget = { epochs = 2, batch_size = 128, lr = 0.01 }

[[tasks]]
preset = "breast_cancer-sym-0.3"
model = { widths = [16] }
budget = { epochs = 2, batch_size = 64, lr = 0.01 }

[multi_task]
baselines = ["ce", "gce"]

[evolution]
population = 4
offspring = 4
generations = 1
seed_expressions = ["mul(-1.0, mul(y_true, log(y_pred)))", "mul(y_true, sub(1.0, y_pred))"]

[backend]
name = "serial"
"""

_CACHED_LOAD = data_module._load


def _clear_caches():
    for fn in (_CACHED_LOAD, fitness._instance_data, fitness._split_arrays,
               fitness.environment_sets):
        fn.cache_clear()


def _hof(run_dir):
    state = RunStore(run_dir).load_checkpoint()  # multi-task: per-task results, references
    return ([(r["expression"], r["fitness"], r["metrics"])
             for r in status(run_dir)["hall_of_fame"]],
            [r.get("tasks") for r in state["hall_of_fame"]], state.get("multi_task"))


@pytest.mark.parametrize("config", [CONFIG, MULTI_CONFIG], ids=["one-task", "multi-task"])
def test_campaign_never_reads_the_test_split(tmp_path, monkeypatch, config):
    """The hall of fame (fitness and every metric) is identical when the test arrays are
    garbage: nothing a campaign calls looks at them (with several tasks: on none of them,
    nor for their chance values and baselines)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    _clear_caches()
    campaign.run(cfg, tmp_path / "clean", quiet=True)
    real = _CACHED_LOAD.__wrapped__

    def garbage_test(*args):
        d = real(*args)
        rng = np.random.default_rng(1)
        return dataclasses.replace(
            d, x_test=rng.normal(size=d.x_test.shape).astype(np.float32) * 1e6,
            y_test=rng.integers(0, d.n_classes, size=d.y_test.shape))

    monkeypatch.setattr(data_module, "_load", garbage_test)
    _clear_caches()
    try:
        assert not np.array_equal(load_dataset(load_task("digits-sym-0.4")).x_test,
                                  real(*_args(load_task("digits-sym-0.4"))).x_test)
        campaign.run(cfg, tmp_path / "garbage", quiet=True)
        # and the garbage does reach a test-split evaluation: the check can fail
        task = load_task("digits-sym-0.4").with_overrides(model={"widths": [16]},
                                                          budget={"epochs": 1})
        on_test = evaluate("mul(-1.0, mul(y_true, log(y_pred)))", task, instances=1,
                           split="test")
    finally:
        monkeypatch.undo()
        _clear_caches()
    assert _hof(tmp_path / "garbage") == _hof(tmp_path / "clean")
    assert on_test.metrics["accuracy.clean.mean"] < 0.3  # chance-level on garbage labels


def _args(task):
    return (task.dataset, task.test_fraction, task.validation.fraction, task.split_seed,
            task.n_samples)


def test_validation_is_corrupted_like_training_and_trusted_share_is_clean():
    task = load_task("digits-sym-0.4")
    d = load_dataset(task)
    _, y = fitness._split_arrays(task, 0, "validation")
    flipped = (y != d.y_val).mean()
    assert 0.3 < flipped < 0.5  # rate 0.4
    trusted = task.with_overrides(validation={"trusted_fraction": 0.5})
    _, yt = fitness._split_arrays(trusted, 0, "validation")
    half = round(0.5 * len(yt))
    assert np.array_equal(yt[:half], d.y_val[:half])
    assert (yt[half:] != d.y_val[half:]).mean() > 0.3
    x_test, y_test = fitness._split_arrays(task, 0, "test")
    assert x_test is d.x_test and y_test is d.y_test  # test labels are clean


def test_validation_and_test_scores_differ_and_are_labelled():
    task = load_task("digits-sym-0.4").with_overrides(model={"widths": [16]},
                                                      budget={"epochs": 3, "lr": 0.01})
    val = evaluate("mul(y_true, sub(1.0, y_pred))", task, instances=2)
    test = evaluate("mul(y_true, sub(1.0, y_pred))", task, instances=2, split="test")
    assert (val.split, test.split) == ("validation", "test")
    # noisy validation labels cap its clean accuracy near 1 - 0.4; clean test labels do not
    assert val.metrics["accuracy.clean.mean"] < test.metrics["accuracy.clean.mean"]


@pytest.mark.parametrize("bad", [{"fraction": 0.0}, {"fraction": 1.0},
                                 {"trusted_fraction": 1.5}])
def test_validation_settings_are_checked(bad):
    with pytest.raises(ValueError, match="validation"):
        load_task("digits-sym-0.4").with_overrides(validation=bad)
