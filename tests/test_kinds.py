"""Task kinds (lossevo.symbolic.kinds): one enum whose members read and write as the plain
strings users, records and exported files have always used."""

from __future__ import annotations

import json
import pickle

import pytest

import lossevo
from lossevo.evaluation.tasks import TASK_PRESETS, load_task
from lossevo.symbolic.export import render_module
from lossevo.symbolic.expression import KEY_KINDS, canonical_key
from lossevo.symbolic.kinds import KINDS, TaskKind, task_kind
from lossevo.symbolic.loss import SymbolicLoss

CE = "mul(-1.0, mul(y_true, log(y_pred)))"


def test_members_are_their_strings():
    assert KINDS == KEY_KINDS == ("classification", "binary", "regression")
    assert all(type(k) is str for k in KINDS)
    assert TaskKind.REGRESSION == "regression" and f"{TaskKind.BINARY}" == "binary"
    assert {"classification": 1}[TaskKind.CLASSIFICATION] == 1
    assert json.dumps({"kind": TaskKind.REGRESSION}) == '{"kind": "regression"}'
    assert lossevo.TaskKind is TaskKind


def test_task_kind_parses_and_names_the_allowed_kinds():
    assert task_kind("binary") is TaskKind.BINARY
    assert task_kind(TaskKind.REGRESSION) is TaskKind.REGRESSION
    with pytest.raises(ValueError, match=r"^unknown kind 'ranking'; allowed: classification, "
                                         r"binary, regression$"):
        task_kind("ranking")


def test_tasks_have_an_enum_kind_from_their_dataset():
    kinds = {name: t.kind for name, t in TASK_PRESETS.items()}
    assert all(isinstance(k, TaskKind) for k in kinds.values())
    assert load_task("poly3-outliers").kind is TaskKind.REGRESSION
    assert load_task("digits-sym-0.4").kind is TaskKind.CLASSIFICATION
    assert load_task("poly3-outliers").metric == "r2"


def test_plain_strings_and_members_give_the_same_results():
    assert canonical_key(CE, "classification") == canonical_key(CE, TaskKind.CLASSIFICATION)
    assert render_module(CE, kind="binary") == render_module(CE, kind=TaskKind.BINARY)
    assert "KIND = 'binary'" in render_module(CE, kind=TaskKind.BINARY)
    scale = lossevo.measure_scale(CE, TaskKind.REGRESSION)
    assert scale.kind is TaskKind.REGRESSION and scale.as_dict()["kind"] == "regression"
    assert type(scale.as_dict()["kind"]) is str


def test_symbolic_loss_keeps_its_repr_and_pickles():
    loss = SymbolicLoss(CE, kind="classification")
    assert loss.kind is TaskKind.CLASSIFICATION
    assert "kind='classification'" in repr(loss)
    assert pickle.loads(pickle.dumps(loss)).kind == "classification"
