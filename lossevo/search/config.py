"""Campaign configuration: frozen dataclasses, loaded from TOML with errors naming the key.

A campaign file looks like ``experiments/quickstart.toml``; every table and key is optional
except ``task`` (or ``tasks`` with ``[multi_task]``, several tasks: lossevo.search.multitask).
Strings become enums and paths here, once, at the edge.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossevo.evaluation.fidelity import Fidelity
from lossevo.evaluation.racing import Racing
from lossevo.evaluation.tasks import Task, load_task, task_from_mapping
from lossevo.search.backends import BACKENDS
from lossevo.search.constant_tuning import ConstantTuning
from lossevo.search.multitask import MultiTask, check_tasks
from lossevo.search.variation import MUTATIONS, Limits
from lossevo.symbolic.grammar import ConstantSpec
from lossevo.symbolic.primitives import PRIMITIVE_SETS
from lossevo.toml_sections import table_values, typed
from lossevo.validation import check, not_allowed

__all__ = [
    "BackendConfig",
    "CampaignConfig",
    "Evolution",
    "apply_overrides",
    "config_from_mapping",
    "load_config",
]

# Upper bounds: far above any campaign that finishes, low enough that a typo (an extra
# three zeros) gets a message instead of filling the machine's memory. lossevo.evaluation.sizing
# refuses combinations that are each allowed but together too large.
MAX_POPULATION = 100_000
MAX_GENERATIONS = 100_000
MAX_INSTANCES = 4096
MAX_CHUNK = 1024


@dataclass(frozen=True)
class Evolution:
    """(μ+λ) with NSGA-II selection on the fitness vector and expression size."""

    population: int = 16
    offspring: int = 16
    generations: int = 10
    crossover_rate: float = 0.5
    mutation_rate: float = 0.45
    mutation_weights: dict[str, float] = field(
        default_factory=lambda: {"uniform": 1.0, "node_replacement": 1.0, "shrink": 0.5,
                                 "ephemeral": 1.0}
    )
    primitive_set: str = "ganetic"
    hall_of_fame: int = 10
    seed_expressions: tuple[str, ...] = ()
    constant_probability: float = 0.3

    def __post_init__(self):
        _check(2 <= self.population <= MAX_POPULATION, "evolution.population", self.population,
               f"an integer in [2, {MAX_POPULATION}]")
        _check(1 <= self.offspring <= MAX_POPULATION, "evolution.offspring", self.offspring,
               f"an integer in [1, {MAX_POPULATION}]")
        _check(0 <= self.generations <= MAX_GENERATIONS, "evolution.generations",
               self.generations, f"an integer in [0, {MAX_GENERATIONS}]")
        _check(0 <= self.crossover_rate <= 1, "evolution.crossover_rate", self.crossover_rate,
               "a float in [0, 1]")
        _check(0 <= self.mutation_rate <= 1 - self.crossover_rate, "evolution.mutation_rate",
               self.mutation_rate, "a float in [0, 1 - crossover_rate]")
        _check(self.primitive_set in PRIMITIVE_SETS, "evolution.primitive_set", self.primitive_set,
               ", ".join(PRIMITIVE_SETS))
        _check(1 <= self.hall_of_fame <= MAX_POPULATION, "evolution.hall_of_fame",
               self.hall_of_fame, f"an integer in [1, {MAX_POPULATION}]")
        _check(0 <= self.constant_probability <= 1, "evolution.constant_probability",
               self.constant_probability, "a float in [0, 1]")
        for name, w in self.mutation_weights.items():
            _check(name in MUTATIONS, "evolution.mutation_weights", name, ", ".join(MUTATIONS))
            _check(w >= 0, f"evolution.mutation_weights.{name}", w, "a float >= 0")
        _check(sum(self.mutation_weights.values()) > 0, "evolution.mutation_weights",
               self.mutation_weights, "at least one positive weight")


@dataclass(frozen=True)
class BackendConfig:
    """Where candidates are evaluated; ``chunk`` candidates share one training batch."""

    name: str = "process"
    workers: int = 0  # 0: one per CPU core
    scheduler: str = ""
    chunk: int = 8

    def __post_init__(self):
        _check(self.name in BACKENDS, "backend.name", self.name, ", ".join(BACKENDS))
        _check(0 <= self.workers <= MAX_CHUNK, "backend.workers", self.workers,
               f"an integer in [0, {MAX_CHUNK}] (0: one per core)")
        _check(1 <= self.chunk <= MAX_CHUNK, "backend.chunk", self.chunk,
               f"an integer in [1, {MAX_CHUNK}]")


@dataclass(frozen=True)
class CampaignConfig:
    task: Task
    evolution: Evolution = field(default_factory=Evolution)
    limits: Limits = field(default_factory=Limits)
    constants: ConstantSpec = field(default_factory=ConstantSpec)
    instances: int = 4
    racing: Racing | None = None
    backend: BackendConfig = field(default_factory=BackendConfig)
    seed: int = 0
    fidelity: Fidelity | None = None  # multi-fidelity evaluation (lossevo.evaluation.fidelity); off
    # several tasks (lossevo.search.multitask): `tasks` lists them all, `task` is the first; a
    # single-task config has tasks == (task,) and multi_task None
    tasks: tuple[Task, ...] = ()
    multi_task: MultiTask | None = None
    # the memetic step (lossevo.search.constant_tuning); off
    constant_tuning: ConstantTuning | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        _check(1 <= self.instances <= MAX_INSTANCES, "instances", self.instances,
               f"an integer in [1, {MAX_INSTANCES}]")
        if not self.tasks:
            object.__setattr__(self, "tasks", (self.task,))
        _check(self.tasks[0] == self.task, "tasks", [t.name for t in self.tasks],
               f"a list whose first task is 'task' ({self.task.name!r})")
        if self.multi_task is None and len(self.tasks) > 1:
            object.__setattr__(self, "multi_task", MultiTask())
        if self.multi_task is not None:
            check_tasks(self.tasks, self.multi_task)
        if self.fidelity is not None:
            try:
                for task in self.tasks:
                    self.fidelity.epochs(task.budget.epochs)
            except ValueError as exc:
                raise ValueError(f"config table 'fidelity': {exc}") from None
        _check(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        for i, expr in enumerate(self.evolution.seed_expressions):
            _check_seed_expression(f"evolution.seed_expressions[{i}]", expr, self)


_PREFIX = "config key"


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    check(ok, key, value, allowed, prefix=_PREFIX)


def _check_seed_expression(key: str, expr: str, cfg: CampaignConfig) -> None:
    """A seed expression parses, uses the primitive set and fits the bloat limits."""
    from lossevo.symbolic.grammar import build_pset, from_text

    try:
        tree = from_text(expr, build_pset(cfg.evolution.primitive_set))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"config key {key!r} = {expr!r} is not a valid expression: "
                         f"{exc}") from None
    lim = cfg.limits
    _check(len(tree) <= lim.max_size and tree.height <= lim.max_height, key, expr,
           f"an expression within limits.max_size = {lim.max_size} and limits.max_height = "
           f"{lim.max_height} (this one has size {len(tree)}, height {tree.height}); raise "
           f"the limits or shorten it")


def _typed(key: str, value: Any, annotation: str) -> Any:
    return typed(key, value, annotation, prefix=_PREFIX)


def _section(name: str, cls: type, data: Any) -> Any:
    if data is None:
        return cls()
    values = table_values(name, cls, data, prefix=_PREFIX)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"config table {name!r}: {exc}") from None
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith("config key") else
                         f"config table {name!r}: {msg}") from None


def _task(data: Any) -> Task:
    if isinstance(data, str):
        return load_task(data)
    if not isinstance(data, dict):
        raise ValueError("config key 'task' must be a preset name or a table")
    data = dict(data)
    preset = data.pop("preset", None)
    if preset is None:
        return task_from_mapping(data)
    return load_task(preset).with_overrides(**data) if data else load_task(preset)


def _tasks(data: Any) -> tuple[Task, ...]:
    """``tasks``: a list of what ``task`` takes (preset names or tables); errors name the entry."""
    if not isinstance(data, list) or not data:
        raise not_allowed("tasks", data, "a non-empty list of preset names or tables "
                          "([[tasks]]), each like [task]", prefix=_PREFIX)
    out = []
    for i, entry in enumerate(data):
        try:
            out.append(_task(entry))
        except ValueError as exc:
            raise ValueError(f"config key 'tasks[{i}]': {exc}") from None
    return tuple(out)


_TOP = {"task", "evolution", "limits", "constants", "instances", "racing", "backend", "seed",
        "fidelity", "tasks", "multi_task", "constant_tuning"}


def _optional(name: str, cls: type, data: Any) -> Any:
    """An opt-in table (racing, fidelity): absent or ``enabled = false`` is None."""
    if isinstance(data, dict):
        data = dict(data)
        enabled = data.pop("enabled", True)
        _typed(f"{name}.enabled", enabled, "bool")
        if not enabled:
            return None
    return None if data is None else _section(name, cls, data)


def config_from_mapping(data: dict[str, Any]) -> CampaignConfig:
    """Validate a parsed TOML document into a CampaignConfig."""
    unknown = set(data) - _TOP
    if unknown:
        raise ValueError(f"unknown config key {sorted(unknown)[0]!r}; allowed: "
                         f"{', '.join(sorted(_TOP))}")
    if "task" in data and "tasks" in data:
        raise ValueError("config keys 'task' and 'tasks' are both given; allowed: one of them "
                         "('task' for one task, 'tasks' for a multi-task campaign)")
    if "task" not in data and "tasks" not in data:
        raise ValueError("config key 'task' is missing: a preset name or a [task] table "
                         "(or [[tasks]] tables for a multi-task campaign)")
    if "multi_task" in data and "tasks" not in data:
        raise ValueError("config table 'multi_task' applies only with 'tasks' (a list of "
                         "tasks); with one [task] there is nothing to aggregate")
    tasks = _tasks(data["tasks"]) if "tasks" in data else ()
    return CampaignConfig(
        task=tasks[0] if tasks else _task(data["task"]),
        tasks=tasks,
        multi_task=_section("multi_task", MultiTask, data.get("multi_task")) if tasks else None,
        evolution=_section("evolution", Evolution, data.get("evolution")),
        limits=_section("limits", Limits, data.get("limits")),
        constants=_section("constants", ConstantSpec, data.get("constants")),
        instances=_typed("instances", data.get("instances", 4), "int"),
        racing=_optional("racing", Racing, data.get("racing")),
        backend=_section("backend", BackendConfig, data.get("backend")),
        seed=_typed("seed", data.get("seed", 0), "int"),
        fidelity=_optional("fidelity", Fidelity, data.get("fidelity")),
        constant_tuning=_optional("constant_tuning", ConstantTuning,
                                  data.get("constant_tuning")),
        raw=data,
    )


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Put CLI overrides (backend ``name``/``workers``/``scheduler``, ``seed``) into a document."""
    backend = dict(data.get("backend", {}))
    for key in ("name", "workers", "scheduler"):
        if overrides.get(key) is not None:
            backend[key] = overrides[key]
    if backend:
        data["backend"] = backend
    if overrides.get("seed") is not None:
        data["seed"] = overrides["seed"]
    return data


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; a missing file or bad TOML is a ValueError naming `what` and
    the path."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None


def load_config(path: str | Path, **overrides: Any) -> CampaignConfig:
    """Read a campaign TOML file; ``overrides`` replace backend fields or the seed."""
    return config_from_mapping(apply_overrides(read_toml(path), overrides))
