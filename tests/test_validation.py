"""The shared wording of refused values and the one TOML table mapper (lossevo.validation,
lossevo.toml_sections): each document keeps its prefix, every error names key, value and what
is allowed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from lossevo.comparison.config import compare_config_from_mapping
from lossevo.evaluation.tasks import task_from_mapping
from lossevo.search.config import config_from_mapping
from lossevo.toml_sections import table_values, typed
from lossevo.validation import check, not_allowed


@dataclass(frozen=True)
class _Table:
    count: int = 1
    rate: float = 0.5
    name: str = "a"
    names: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)


def test_not_allowed_names_key_value_and_what_is_allowed():
    err = not_allowed("budget.lr", -1.0, "a float > 0", prefix="task key")
    assert isinstance(err, ValueError)
    assert str(err) == "task key 'budget.lr' = -1.0 is not allowed; allowed: a float > 0"
    assert str(not_allowed("t", 2, "a number in [0, 1]")) == (
        "t = 2 is not allowed; allowed: a number in [0, 1]")
    assert str(not_allowed("sam parameter rho", -1.0, "a number >= 0", sep="=")) == (
        "sam parameter rho=-1.0 is not allowed; allowed: a number >= 0")


def test_check_raises_only_when_not_ok():
    check(True, "x", 1, "anything")
    with pytest.raises(ValueError, match=r"^config key 'x' = 1 is not allowed; allowed: 2$"):
        check(False, "x", 1, "2", prefix="config key")


def test_table_values_converts_by_annotation():
    values = table_values("t", _Table, {"count": 3, "rate": 1, "names": ["a", "b"],
                                        "weights": {"u": 2}}, prefix="config key")
    assert values == {"count": 3, "rate": 1.0, "names": ("a", "b"), "weights": {"u": 2.0}}
    assert isinstance(values["rate"], float)
    assert _Table(**values).names == ("a", "b")


@pytest.mark.parametrize(("data", "message"), [
    (5, "config key 't' = 5 is not allowed; allowed: a table with keys count, rate, name, "
        "names, weights"),
    ({"colour": 1}, "unknown config key 't.colour'; allowed: count, name, names, rate, weights"),
    ({"count": 1.5}, "config key 't.count' = 1.5 is not allowed; allowed: an integer"),
    ({"count": True}, "config key 't.count' = True is not allowed; allowed: an integer"),
    ({"rate": float("inf")}, "config key 't.rate' = inf is not allowed; allowed: a finite"),
    ({"name": 3}, "config key 't.name' = 3 is not allowed; allowed: a string"),
    ({"names": "ab"}, "config key 't.names' = 'ab' is not allowed; allowed: a list of strings"),
    ({"weights": {"u": "x"}}, "config key 't.weights.u' = 'x' is not allowed; allowed: a finite"),
])
def test_table_values_names_what_is_wrong(data, message):
    with pytest.raises(ValueError) as info:
        table_values("t", _Table, data, prefix="config key")
    assert str(info.value).startswith(message)


def test_a_custom_convert_gets_the_field():
    seen = []
    table_values("t", _Table, {"count": 2}, prefix="task key",
                 convert=lambda f, v: seen.append((f.name, v)))
    assert seen == [("count", 2)]


def test_a_document_may_word_its_unknown_keys():
    with pytest.raises(ValueError, match=r"^no 'x' among count, rate, name, names, weights$"):
        table_values("t", _Table, {"x": 1}, prefix="task key",
                     unknown=lambda key, fields: f"no {key!r} among {', '.join(fields)}")


def test_typed_passes_unknown_annotations_through():
    value = object()
    assert typed("k", value, "Task", prefix="config key") is value


@pytest.mark.parametrize(("build", "message"), [
    (lambda: task_from_mapping({"name": "x", "dataset": "wine", "budget": 5}),
     "task key 'budget' = 5 is not allowed; allowed: a table with keys epochs, batch_size"),
    (lambda: task_from_mapping({"name": "x", "dataset": "wine", "budget": {"foo": 1}}),
     "unknown task key budget.'foo'; allowed: epochs, batch_size, lr"),
    (lambda: config_from_mapping({"task": "digits-sym-0.4", "evolution": 5}),
     "config key 'evolution' = 5 is not allowed; allowed: a table with keys population"),
    (lambda: config_from_mapping({"task": "digits-sym-0.4", "evolution": {"foo": 1}}),
     "unknown config key 'evolution.foo'; allowed: constant_probability"),
    (lambda: compare_config_from_mapping({"tasks": ["digits-sym-0.4-quick"],
                                          "contenders": ["ce"], "backend": {"foo": 1}}),
     "unknown compare config key 'backend.foo'; allowed: chunk, name, scheduler, workers"),
    (lambda: compare_config_from_mapping({"tasks": ["digits-sym-0.4-quick"],
                                          "contenders": ["ce"], "backend": {"workers": "x"}}),
     "compare config key 'backend.workers' = 'x' is not allowed; allowed: an integer"),
])
def test_every_document_maps_tables_alike_with_its_prefix(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert str(info.value).startswith(message)


def test_task_tables_still_override_their_base():
    task = task_from_mapping({"base": "digits-sym-0.4", "budget": {"epochs": 3},
                              "noise": {"labels": "asymmetric"}})
    assert task.budget.epochs == 3 and task.budget.lr == 1e-3
    assert task.noise.labels.value == "asymmetric"
    assert dataclasses.replace(task, name="y").budget == task.budget
