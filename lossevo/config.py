"""Campaign configuration: frozen dataclasses, loaded from TOML with errors naming the key.

A campaign file looks like ``experiments/quickstart.toml``; every table and key is optional
except ``task``. Strings become enums and paths here, once, at the edge.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossevo.grammar import ConstantSpec
from lossevo.primitives import PRESETS
from lossevo.racing import Racing
from lossevo.tasks import Task, load_task, task_from_mapping
from lossevo.variation import MUTATIONS, Limits

__all__ = [
    "BACKENDS",
    "Backend",
    "CampaignConfig",
    "Evolution",
    "apply_overrides",
    "config_from_mapping",
    "load_config",
]

BACKENDS = ("serial", "process", "dask")


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
        _check(self.population >= 2, "evolution.population", self.population, "an integer >= 2")
        _check(self.offspring >= 1, "evolution.offspring", self.offspring, "an integer >= 1")
        _check(self.generations >= 0, "evolution.generations", self.generations,
               "an integer >= 0")
        _check(0 <= self.crossover_rate <= 1, "evolution.crossover_rate", self.crossover_rate,
               "a float in [0, 1]")
        _check(0 <= self.mutation_rate <= 1 - self.crossover_rate, "evolution.mutation_rate",
               self.mutation_rate, "a float in [0, 1 - crossover_rate]")
        _check(self.primitive_set in PRESETS, "evolution.primitive_set", self.primitive_set,
               ", ".join(PRESETS))
        _check(self.hall_of_fame >= 1, "evolution.hall_of_fame", self.hall_of_fame,
               "an integer >= 1")
        for name, w in self.mutation_weights.items():
            _check(name in MUTATIONS, "evolution.mutation_weights", name, ", ".join(MUTATIONS))
            _check(w >= 0, f"evolution.mutation_weights.{name}", w, "a float >= 0")
        _check(sum(self.mutation_weights.values()) > 0, "evolution.mutation_weights",
               self.mutation_weights, "at least one positive weight")


@dataclass(frozen=True)
class Backend:
    """Where candidates are evaluated; ``chunk`` candidates share one training batch."""

    name: str = "process"
    workers: int = 0  # 0: one per CPU core
    scheduler: str = ""
    chunk: int = 8

    def __post_init__(self):
        _check(self.name in BACKENDS, "backend.name", self.name, ", ".join(BACKENDS))
        _check(self.workers >= 0, "backend.workers", self.workers, "an integer >= 0")
        _check(self.chunk >= 1, "backend.chunk", self.chunk, "an integer >= 1")


@dataclass(frozen=True)
class CampaignConfig:
    task: Task
    evolution: Evolution = field(default_factory=Evolution)
    limits: Limits = field(default_factory=Limits)
    constants: ConstantSpec = field(default_factory=ConstantSpec)
    instances: int = 4
    racing: Racing | None = None
    backend: Backend = field(default_factory=Backend)
    seed: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        _check(self.instances >= 1, "instances", self.instances, "an integer >= 1")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"config key {key!r} = {value!r} is not allowed; allowed: {allowed}")


def _section(name: str, cls: type, data: Any) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"config key {name!r} must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ValueError(
                f"unknown config key '{name}.{key}'; allowed: {', '.join(sorted(fields))}"
            )
    values = dict(data)
    if "seed_expressions" in values:
        values["seed_expressions"] = tuple(values["seed_expressions"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"config table {name!r}: {exc}") from None


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


_TOP = {"task", "evolution", "limits", "constants", "instances", "racing", "backend", "seed"}


def config_from_mapping(data: dict[str, Any]) -> CampaignConfig:
    """Validate a parsed TOML document into a CampaignConfig."""
    unknown = set(data) - _TOP
    if unknown:
        raise ValueError(f"unknown config key {sorted(unknown)[0]!r}; allowed: "
                         f"{', '.join(sorted(_TOP))}")
    if "task" not in data:
        raise ValueError("config key 'task' is missing: a preset name or a [task] table")
    racing = data.get("racing")
    if isinstance(racing, dict):
        racing = dict(racing)
        if not racing.pop("enabled", True):
            racing = None
    return CampaignConfig(
        task=_task(data["task"]),
        evolution=_section("evolution", Evolution, data.get("evolution")),
        limits=_section("limits", Limits, data.get("limits")),
        constants=_section("constants", ConstantSpec, data.get("constants")),
        instances=int(data.get("instances", 4)),
        racing=None if racing is None else _section("racing", Racing, racing),
        backend=_section("backend", Backend, data.get("backend")),
        seed=int(data.get("seed", 0)),
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
