"""Tasks: presets, TOML loading, validation errors that name the key and allowed values."""

from __future__ import annotations

import dataclasses

import pytest

from lossevo.evaluation.tasks import (
    TASK_PRESETS,
    Budget,
    DatasetName,
    Environment,
    EnvKind,
    LabelNoise,
    OptimizerName,
    Task,
    budget_text,
    list_tasks,
    load_task,
)

REQUIRED = {"digits-sym-0.4", "digits-sym-0.8", "digits-asym-0.4", "digits-shift",
            "mnist1d-sym-0.4", "breast_cancer-sym-0.3", "poly3-outliers"}


def test_presets_load_by_name():
    assert set(list_tasks()) >= REQUIRED
    for name in list_tasks():
        task = load_task(name)
        assert task.name == name and task is TASK_PRESETS[name]


def test_reference_protocol_preset():
    t = load_task("digits-sym-0.4")
    assert t.budget == Budget(epochs=150, batch_size=64, lr=1e-3)
    assert t.model.widths == (256, 256) and t.test_fraction == 0.3 and t.split_seed == 0
    assert t.noise.labels is LabelNoise.SYMMETRIC and t.noise.rate == 0.4
    assert t.fitness_spec == ("accuracy.clean.mean", "-accuracy.clean.std")
    assert load_task("digits-shift").fitness_spec == ("accuracy.worst_env.mean",
                                                      "-accuracy.worst_env.std")


def test_regression_preset_metric():
    t = load_task("poly3-outliers")
    assert t.kind == "regression" and t.fitness_spec[0] == "r2.worst_env.mean"


def test_with_overrides_and_replace():
    t = load_task("digits-sym-0.4").with_overrides(budget={"epochs": 40}, noise={"rate": 0.2})
    assert t.budget.epochs == 40 and t.budget.lr == 1e-3 and t.noise.rate == 0.2
    assert dataclasses.replace(t, split_seed=3).split_seed == 3


def test_optimizer_defaults_to_adam_and_is_overridable(tmp_path):
    assert all(t.budget.optimizer is OptimizerName.ADAM for t in TASK_PRESETS.values())
    t = load_task("digits-sym-0.4").with_overrides(budget={"optimizer": "sgd", "lr": 0.05})
    assert t.budget.optimizer is OptimizerName.SGD and t.budget.momentum == 0.9
    assert t.budget.epochs == 150 and t.budget.lr == 0.05
    assert budget_text(t.budget) == "150 ep, batch 64, SGD (momentum 0.9) lr 0.05"
    assert budget_text(TASK_PRESETS["digits-sym-0.4"].budget) == "150 ep, batch 64, Adam lr 0.001"
    path = tmp_path / "t.toml"
    path.write_text('base = "digits-sym-0.4"\n[budget]\noptimizer = "sgd"\nmomentum = 0.5\n')
    t = load_task(path)
    assert t.budget.optimizer is OptimizerName.SGD and t.budget.momentum == 0.5
    # Direct construction takes the plain string too and stores the enum.
    assert Budget(optimizer="sgd").optimizer is OptimizerName.SGD
    with pytest.raises(ValueError, match=r"budget.optimizer.*'SGD'.*allowed: adam, sgd"):
        Budget(optimizer="SGD")


def test_toml_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        'name = "mine"\ndataset = "wine"\nfitness = ["accuracy.clean.mean"]\n'
        '[noise]\nlabels = "asymmetric"\nrate = 0.2\n'
        '[[environments]]\nkind = "clean"\n[[environments]]\nkind = "rescale"\nlevel = 2.0\n'
    )
    t = load_task(path)
    assert t.dataset is DatasetName.WINE and t.noise.labels is LabelNoise.ASYMMETRIC
    assert t.environments == (Environment(), Environment(EnvKind.RESCALE, 2.0))
    assert [e.name for e in t.environments] == ["clean", "rescale-2"]


def test_toml_base_preset(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[task]\nbase = "digits-sym-0.4"\nname = "short"\n[task.budget]\nepochs = 5\n')
    t = load_task(str(path))
    assert t.name == "short" and t.budget.epochs == 5 and t.noise.rate == 0.4


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('name = "x"\ndataset = "cifar"', r"'dataset' = 'cifar'.*digits, breast_cancer"),
        ('name = "x"\ndataset = "wine"\n[noise]\nlabels = "symetric"',
         r"noise.labels.*allowed: none, symmetric, asymmetric, instance"),
        ('name = "x"\ndataset = "wine"\n[budget]\nepoch = 3', r"budget.'epoch'.*allowed: epochs"),
        ('name = "x"\ndataset = "wine"\ncolour = 1', r"unknown task key 'colour'"),
        ('name = "x"\ndataset = "wine"\n[budget]\nepochs = 0', r"budget.epochs.*\[1, 100000\]"),
        ('name = "x"\ndataset = "wine"\n[budget]\nepochs = 1e9', r"budget.epochs.*an integer"),
        ('name = "x"\ndataset = "wine"\n[budget]\nepochs = 1000000000',
         r"budget.epochs.*\[1, 100000\]"),
        ('name = "x"\ndataset = "wine"\n[budget]\nlr = "fast"', r"budget.lr.*a finite number"),
        ('name = "x"\ndataset = "wine"\n[budget]\nlr = inf', r"budget.lr.*a finite number"),
        ('name = "x"\ndataset = "wine"\n[budget]\noptimizer = "rmsprop"',
         r"budget.optimizer.*'rmsprop'.*allowed: adam, sgd"),
        ('name = "x"\ndataset = "wine"\n[budget]\noptimizer = 1', r"budget.optimizer.*adam, sgd"),
        ('name = "x"\ndataset = "wine"\n[budget]\nmomentum = 1.0', r"budget.momentum.*\[0, 1\)"),
        ('name = "x"\ndataset = "wine"\n[budget]\nmomentum = "high"',
         r"budget.momentum.*a finite number"),
        ('name = "x"\ndataset = "wine"\n[model]\nwidths = [1e9]', r"model.widths.*integers"),
        ('name = "x"\ndataset = "wine"\n[model]\nwidths = [1000000000]',
         r"model.widths.*\[1, 65536\]"),
        ('name = "x"\ndataset = "wine"\nsplit_seed = -1', r"split_seed.*>= 0"),
        ('name = "x"\ndataset = "wine"\n[noise]\nlabels = "symmetric"\nrate = 1.5',
         r"noise.rate.*\[0, 1\)"),
        ('name = "x"\ndataset = "wine"\n[model]\nkind = "cnn"', r"model.kind.*'digits'"),
        ('name = "x"\ndataset = "wine"\n[[environments]]\nkind = "rotate"\nlevel = 5.0',
         r"rotate/translate only"),
        ('name = "x"\ndataset = "wine"\n[[environments]]\nkind = "warp"',
         r"environments.kind.*allowed: clean, gauss"),
        ('dataset = "wine"', r"'name' is missing"),
        ('name = "x"\ndataset = "poly3"\n[noise]\nlabels = "symmetric"\nrate = 0.1',
         r"noise.labels.*poly3"),
    ],
)
def test_toml_validation_names_key_and_allowed(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_task(path)


def test_unknown_preset_lists_allowed():
    with pytest.raises(ValueError, match=r"digits-sym-0\.4"):
        load_task("digits-sym-0.5")


def test_direct_construction_validates():
    with pytest.raises(ValueError, match="environments"):
        Task("x", DatasetName.DIGITS, environments=(Environment(), Environment()))
    with pytest.raises(ValueError, match="fitness"):
        Task("x", DatasetName.DIGITS, fitness=("accuracy",))


def test_docs_table_is_current():
    from pathlib import Path

    from lossevo.evaluation.tasks import presets_markdown

    docs = Path(__file__).resolve().parents[1] / "docs" / "tasks.md"
    assert presets_markdown() in docs.read_text()
