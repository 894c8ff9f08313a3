"""Tasks: what a candidate loss is scored on, as frozen dataclasses with a preset registry.

A Task bundles a dataset, a model, a training budget, train-time corruption, the test
environments and the fitness vector. Strings become enums only here (TOML and overrides), with
errors that name the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from lossevo.symbolic.kinds import TaskKind
from lossevo.toml_sections import table_values
from lossevo.validation import not_allowed

__all__ = [
    "TASK_PRESETS",
    "Budget",
    "DatasetName",
    "EnvKind",
    "Environment",
    "LabelNoise",
    "ModelKind",
    "ModelSpec",
    "Noise",
    "OptimizerName",
    "TargetNoise",
    "Task",
    "Validation",
    "budget_text",
    "list_tasks",
    "load_task",
    "presets_markdown",
    "task_from_mapping",
]


class DatasetName(enum.StrEnum):
    DIGITS = "digits"
    BREAST_CANCER = "breast_cancer"
    WINE = "wine"
    MNIST1D = "mnist1d"
    POLY3 = "poly3"


class ModelKind(enum.StrEnum):
    MLP = "mlp"
    CNN = "cnn"


class OptimizerName(enum.StrEnum):
    ADAM = "adam"
    SGD = "sgd"  # torch.optim.SGD with (heavy-ball) momentum `budget.momentum`


class LabelNoise(enum.StrEnum):
    NONE = "none"
    SYMMETRIC = "symmetric"
    ASYMMETRIC = "asymmetric"
    INSTANCE = "instance"


class TargetNoise(enum.StrEnum):
    NONE = "none"
    GAUSSIAN = "gaussian"
    STUDENT_T = "student_t"


class EnvKind(enum.StrEnum):
    CLEAN = "clean"
    GAUSS = "gauss"  # additive gaussian input noise, level = sigma
    ROTATE = "rotate"  # image rotation, level = degrees (images only)
    TRANSLATE = "translate"  # image shift, level = pixels (images only)
    RESCALE = "rescale"  # covariate shift: half of the features multiplied by level (tabular)
    SUBGROUP = "subgroup"  # covariate shift: test resampled so a subgroup has share = level
    XSHIFT = "xshift"  # regression: inputs drawn from a range widened by level
    FGSM = "fgsm"  # adversarial, level = epsilon, against each trained model
    PGD = "pgd"


_IMAGE_ONLY = {EnvKind.ROTATE, EnvKind.TRANSLATE}
_TABULAR_ONLY = {EnvKind.RESCALE, EnvKind.SUBGROUP}


@dataclass(frozen=True)
class ModelSpec:
    """Architecture: an MLP with these hidden widths, or a small CNN (digits only)."""

    kind: ModelKind = ModelKind.MLP
    widths: tuple[int, ...] = (256, 256)


@dataclass(frozen=True)
class Budget:
    """Training budget. Adam is the reference protocol's optimizer; SGD with momentum is the
    one that does not forgive a loss's scale, so a campaign can ask that a loss train under
    both (lossevo.evaluation.optimizers builds them). `momentum` is SGD's; Adam ignores it."""

    epochs: int = 150
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: OptimizerName = OptimizerName.ADAM
    momentum: float = 0.9

    def __post_init__(self) -> None:
        # Checked here, not only in Task: training takes a Budget on its own.
        if self.optimizer not in tuple(OptimizerName):
            _fail("budget.optimizer", self.optimizer, ", ".join(OptimizerName))
        object.__setattr__(self, "optimizer", OptimizerName(self.optimizer))
        if not 0.0 <= self.momentum < 1.0:
            _fail("budget.momentum", self.momentum, "a float in [0, 1)")


@dataclass(frozen=True)
class Noise:
    """Train-time corruption: labels (classification), inputs, targets (regression)."""

    labels: LabelNoise = LabelNoise.NONE
    rate: float = 0.0
    input_sigma: float = 0.0
    target: TargetNoise = TargetNoise.NONE
    target_mean: float = 0.0
    target_sigma: float = 0.0
    target_df: float = 3.0
    outlier_fraction: float = 0.0
    outlier_scale: float = 20.0


@dataclass(frozen=True)
class Validation:
    """The validation split: every choice (fitness, racing, tuning, early stopping, model
    selection) reads it, never the test split. It is carved from the non-test data
    (`fraction` of it) and carries the same corruption as training, since a user has only
    noisy labels; `trusted_fraction` of it keeps clean labels, for users who have a small
    trusted set."""

    fraction: float = 0.2
    trusted_fraction: float = 0.0


@dataclass(frozen=True)
class Environment:
    """One test environment, scored separately. `name` is what metric names use."""

    kind: EnvKind = EnvKind.CLEAN
    level: float = 0.0

    @property
    def name(self) -> str:
        return "clean" if self.kind is EnvKind.CLEAN else f"{self.kind.value}-{self.level:g}"



@dataclass(frozen=True)
class Task:
    """Everything `evaluate` needs besides the loss. Build presets with `load_task`."""

    name: str
    dataset: DatasetName
    model: ModelSpec = field(default_factory=ModelSpec)
    budget: Budget = field(default_factory=Budget)
    noise: Noise = field(default_factory=Noise)
    environments: tuple[Environment, ...] = (Environment(),)
    fitness: tuple[str, ...] = ()
    test_fraction: float = 0.3
    validation: Validation = field(default_factory=Validation)
    split_seed: int = 0
    n_samples: int = 0  # poly3 and mnist1d only: 0 means the documented default
    sharpness: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def kind(self) -> TaskKind:
        """Loss kind for SymbolicLoss, from the dataset (not a field, so that the keys of
        kept comparison units, which hash the fields, do not change): classification or
        regression."""
        return TaskKind.REGRESSION if self.dataset is DatasetName.POLY3 else TaskKind.CLASSIFICATION

    @property
    def metric(self) -> str:
        return "r2" if self.kind is TaskKind.REGRESSION else "accuracy"

    @property
    def fitness_spec(self) -> tuple[str, ...]:
        """Metric names making up the fitness vector; a leading '-' negates. Default: under
        label noise, accuracy on the clean environment of the (noisy) validation split and
        its spread over instances — what a noisy-label user can measure; otherwise the
        worst environment's level and spread."""
        if self.fitness:
            return self.fitness
        env = "clean" if self.noise.labels is not LabelNoise.NONE else "worst_env"
        return (f"{self.metric}.{env}.mean", f"-{self.metric}.{env}.std")

    def with_overrides(self, **sections: Any) -> Task:
        """Copy with overrides in TOML shape, e.g. `with_overrides(budget={"epochs": 40})`."""
        return task_from_mapping(dict(sections), base=self)


_PREFIX = "task key"


def _fail(key: str, value: Any, allowed: str) -> NoReturn:
    raise not_allowed(key, value, allowed, prefix=_PREFIX)


# Upper bounds far above any task that trains in reasonable time; a typo beyond them gets a
# message, not an exhausted machine (lossevo.evaluation.sizing also estimates memory and compute).
MAX_EPOCHS = 100_000
MAX_BATCH = 1_000_000
MAX_WIDTH = 65_536
MAX_LAYERS = 16
MAX_SAMPLES = 1_000_000


def _validate(t: Task) -> None:
    b, n = t.budget, t.noise
    if not 1 <= b.epochs <= MAX_EPOCHS:
        _fail("budget.epochs", b.epochs, f"an integer in [1, {MAX_EPOCHS}]")
    if not 1 <= b.batch_size <= MAX_BATCH:
        _fail("budget.batch_size", b.batch_size, f"an integer in [1, {MAX_BATCH}]")
    if not 0 < b.lr < math.inf:
        _fail("budget.lr", b.lr, "a finite float > 0")
    if b.weight_decay < 0:
        _fail("budget.weight_decay", b.weight_decay, "a float >= 0")
    if not 0.0 <= n.rate < 1.0:
        _fail("noise.rate", n.rate, "a float in [0, 1)")
    for key in ("input_sigma", "target_sigma", "outlier_scale"):
        if getattr(n, key) < 0:
            _fail(f"noise.{key}", getattr(n, key), "a float >= 0")
    if not 0.0 <= n.outlier_fraction < 1.0:
        _fail("noise.outlier_fraction", n.outlier_fraction, "a float in [0, 1)")
    if n.target_df <= 0:
        _fail("noise.target_df", n.target_df, "a float > 0")
    if not 0.0 < t.test_fraction < 1.0:
        _fail("test_fraction", t.test_fraction, "a float in (0, 1)")
    if not 0.0 < t.validation.fraction < 1.0:
        _fail("validation.fraction", t.validation.fraction, "a float in (0, 1)")
    if not 0.0 <= t.validation.trusted_fraction <= 1.0:
        _fail("validation.trusted_fraction", t.validation.trusted_fraction, "a float in [0, 1]")
    if t.model.kind is ModelKind.CNN and t.dataset is not DatasetName.DIGITS:
        _fail("model.kind", "cnn", f"'cnn' only with 'digits' (dataset: {t.dataset.value!r})")
    widths = t.model.widths
    if len(widths) > MAX_LAYERS or any(
        isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH
        for w in widths
    ):
        _fail("model.widths", list(widths),
              f"a list of at most {MAX_LAYERS} integers in [1, {MAX_WIDTH}]")
    if not 0 <= t.n_samples <= MAX_SAMPLES:
        _fail("n_samples", t.n_samples, f"an integer in [0, {MAX_SAMPLES}] (0: the default)")
    if t.split_seed < 0:
        _fail("split_seed", t.split_seed, "an integer >= 0")
    regression = t.kind is TaskKind.REGRESSION
    if regression and n.labels is not LabelNoise.NONE:
        _fail("noise.labels", n.labels.value, "'none' for the regression dataset poly3")
    if not regression and (n.target is not TargetNoise.NONE or n.outlier_fraction > 0):
        _fail("noise.target", n.target.value, "'none' (target noise is for poly3 only)")
    if n.labels is LabelNoise.NONE and n.rate > 0:
        _fail("noise.rate", n.rate, "0 when noise.labels is 'none'")
    if not t.environments:
        _fail("environments", [], "at least one environment")
    names = [e.name for e in t.environments]
    if len(set(names)) != len(names):
        _fail("environments", names, "distinct environments")
    for e in t.environments:
        if e.kind in _IMAGE_ONLY and t.dataset is not DatasetName.DIGITS:
            _fail("environments.kind", e.kind.value, "rotate/translate only for 'digits'")
        if e.kind in _TABULAR_ONLY and t.dataset not in (
            DatasetName.BREAST_CANCER,
            DatasetName.WINE,
        ):
            _fail("environments.kind", e.kind.value, "rescale/subgroup only for tabular data")
        if e.kind is EnvKind.XSHIFT and not regression:
            _fail("environments.kind", e.kind.value, "xshift only for poly3")
        if regression and e.kind in (EnvKind.FGSM, EnvKind.PGD):
            _fail("environments.kind", e.kind.value, "clean, gauss, xshift for poly3")
        if e.kind is EnvKind.SUBGROUP and not 0.0 < e.level < 1.0:
            _fail("environments.level", e.level, "a share in (0, 1) for subgroup")
        if e.level < 0:
            _fail("environments.level", e.level, "a float >= 0")
    for spec in t.fitness:
        parts = spec.lstrip("-").split(".")
        if len(parts) < 3 or parts[0] not in ("accuracy", "r2", "mse", "sharpness"):
            _fail("fitness", spec, "names like 'accuracy.worst_env.mean' or '-accuracy.clean.std'")


# --------------------------------------------------------------------------- presets

_DIGITS_BUDGET = Budget(epochs=150, batch_size=64, lr=1e-3)
_QUICK_BUDGET = Budget(epochs=40, batch_size=64, lr=3e-3)
_DIGITS_ENVS = (
    Environment(),
    Environment(EnvKind.GAUSS, 0.1),
    Environment(EnvKind.GAUSS, 0.3),
    Environment(EnvKind.FGSM, 0.05),
    Environment(EnvKind.PGD, 0.05),
)
_DIGITS_SHIFT_ENVS = (
    Environment(),
    Environment(EnvKind.GAUSS, 0.2),
    Environment(EnvKind.ROTATE, 10.0),
    Environment(EnvKind.ROTATE, 20.0),
    Environment(EnvKind.TRANSLATE, 1.0),
    Environment(EnvKind.FGSM, 0.03),
    Environment(EnvKind.FGSM, 0.1),
)
_TAB_ENVS = (
    Environment(),
    Environment(EnvKind.GAUSS, 0.3),
    Environment(EnvKind.RESCALE, 1.5),
    Environment(EnvKind.SUBGROUP, 0.8),
    Environment(EnvKind.FGSM, 0.1),
)


def _sym(rate: float) -> Noise:
    return Noise(labels=LabelNoise.SYMMETRIC, rate=rate)


TASK_PRESETS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("digits-sym-0.4", DatasetName.DIGITS, budget=_DIGITS_BUDGET, noise=_sym(0.4),
             environments=_DIGITS_ENVS),
        Task("digits-sym-0.4-quick", DatasetName.DIGITS, budget=_QUICK_BUDGET, noise=_sym(0.4),
             environments=_DIGITS_ENVS),
        Task("digits-sym-0.8", DatasetName.DIGITS, budget=_DIGITS_BUDGET, noise=_sym(0.8),
             environments=_DIGITS_ENVS),
        Task("digits-asym-0.4", DatasetName.DIGITS, budget=_DIGITS_BUDGET,
             noise=Noise(labels=LabelNoise.ASYMMETRIC, rate=0.4), environments=_DIGITS_ENVS),
        Task("digits-shift", DatasetName.DIGITS, model=ModelSpec(ModelKind.CNN, (128,)),
             budget=Budget(epochs=60, batch_size=64, lr=1e-3),
             environments=_DIGITS_SHIFT_ENVS),
        Task("mnist1d-sym-0.4", DatasetName.MNIST1D, budget=Budget(epochs=100, batch_size=128),
             noise=_sym(0.4), test_fraction=0.2,
             environments=(Environment(), Environment(EnvKind.GAUSS, 0.3),
                           Environment(EnvKind.FGSM, 0.05))),
        Task("breast_cancer-sym-0.3", DatasetName.BREAST_CANCER, model=ModelSpec(widths=(64, 64)),
             budget=Budget(epochs=100, batch_size=32), noise=_sym(0.3), environments=_TAB_ENVS),
        Task("poly3-outliers", DatasetName.POLY3, model=ModelSpec(widths=(64, 64)),
             budget=Budget(epochs=200, batch_size=32, lr=3e-3),
             noise=Noise(target=TargetNoise.GAUSSIAN, target_sigma=1.0, outlier_fraction=0.1,
                         outlier_scale=20.0),
             environments=(Environment(), Environment(EnvKind.GAUSS, 0.2),
                           Environment(EnvKind.XSHIFT, 0.25))),
    )
}


def list_tasks() -> list[str]:
    """Names of the presets, sorted."""
    return sorted(TASK_PRESETS)


def budget_text(b: Budget) -> str:
    """The budget in a few words, optimizer included: '40 ep, batch 64, Adam lr 0.003'."""
    opt = "Adam" if b.optimizer is OptimizerName.ADAM else f"SGD (momentum {b.momentum:g})"
    decay = f", weight decay {b.weight_decay:g}" if b.weight_decay else ""
    return f"{b.epochs} ep, batch {b.batch_size}, {opt} lr {b.lr:g}{decay}"


def presets_markdown() -> str:
    """The preset registry as a markdown table (docs/tasks.md embeds it; a test compares)."""
    rows = ["| preset | data (train/validation/test) | model | budget | train noise | "
            "environments |",
            "|---|---|---|---|---|---|"]
    for name in list_tasks():
        t = TASK_PRESETS[name]
        n = t.noise
        if t.kind is TaskKind.REGRESSION:
            noise = f"{n.target.value} σ={n.target_sigma:g}, outliers {n.outlier_fraction:g}"
        else:
            noise = "clean" if n.labels is LabelNoise.NONE else f"{n.labels.value} {n.rate:g}"
        if n.input_sigma:
            noise += f", input σ={n.input_sigma:g}"
        model = ("CNN 2×conv3 + " if t.model.kind is ModelKind.CNN else "MLP ") + "-".join(
            str(w) for w in t.model.widths)
        val = (1 - t.test_fraction) * t.validation.fraction
        train = 1 - t.test_fraction - val
        rows.append(
            f"| `{name}` | {t.dataset.value} ({train:.0%}/{val:.0%}/{t.test_fraction:.0%},"
            f" seed {t.split_seed}) | {model} | {budget_text(t.budget)} | {noise} | "
            f"{', '.join(e.name for e in t.environments)} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- TOML / mappings

_SECTIONS: dict[str, type] = {"model": ModelSpec, "budget": Budget, "noise": Noise,
                              "validation": Validation}
_ENUM_FIELDS: dict[tuple[str, str], type[enum.Enum]] = {
    ("model", "kind"): ModelKind,
    ("budget", "optimizer"): OptimizerName,
    ("noise", "labels"): LabelNoise,
    ("noise", "target"): TargetNoise,
    ("environments", "kind"): EnvKind,
    ("", "dataset"): DatasetName,
}
_TOP_KEYS = (
    "base", "name", "dataset", "model", "budget", "noise", "environments", "fitness",
    "test_fraction", "validation", "split_seed", "n_samples", "sharpness",
)


def _coerce(section: str, key: str, value: Any, target: Any) -> Any:
    where = f"{section}.{key}" if section else key
    enum_type = _ENUM_FIELDS.get((section, key))
    if enum_type is not None:
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum_type)
            raise not_allowed(where, value, allowed, prefix=_PREFIX) from None
    if isinstance(target, bool):
        if not isinstance(value, bool):
            _fail(where, value, "true or false")
        return value
    if isinstance(target, int):
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, value, "an integer")
        return value
    if isinstance(target, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            _fail(where, value, "a finite number")
        return float(value)
    if isinstance(target, tuple):
        if not isinstance(value, (list, tuple)):
            _fail(where, value, "a list")
        return tuple(value)
    if isinstance(target, str) and not isinstance(value, str):
        _fail(where, value, "a string")
    return value


def _section(name: str, cls: type, data: Any, base: Any) -> Any:
    """``base`` with the table's values; types come from ``base``'s, strings become enums.
    An unknown key keeps the task files' wording: ``unknown task key budget.'epoch'; allowed:``
    the fields in declaration order."""
    changes = table_values(
        name, cls, data, prefix=_PREFIX,
        convert=lambda f, v: _coerce(name, f.name, v, getattr(base, f.name)),
        unknown=lambda key, fields: f"unknown task key {name}.{key!r}; allowed: "
                                    f"{', '.join(fields)}")
    return dataclasses.replace(base, **changes)


def _environment(data: Any) -> Environment:
    if isinstance(data, Environment):
        return data
    return _section("environments", Environment, data, Environment())


def task_from_mapping(data: Mapping[str, Any], base: Task | None = None) -> Task:
    """Build a Task from a TOML-shaped mapping; `base` (or data['base'], a preset) fills gaps."""
    for key in data:
        if key not in _TOP_KEYS:
            raise ValueError(f"unknown task key {key!r}; allowed: {', '.join(_TOP_KEYS)}")
    if "base" in data:
        base = load_task(str(data["base"]))
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "base":
            continue
        if key in _SECTIONS:
            current = getattr(base, key) if base is not None else _SECTIONS[key]()
            changes[key] = _section(key, _SECTIONS[key], value, current)
        elif key == "environments":
            if not isinstance(value, (list, tuple)):
                _fail("environments", value, "a list of tables with keys kind, level")
            changes[key] = tuple(_environment(v) for v in value)
        else:
            default = {"name": "", "dataset": "", "fitness": (), "test_fraction": 0.0,
                       "split_seed": 0, "n_samples": 0, "sharpness": False}[key]
            changes[key] = _coerce("", key, value, default)
    if base is None:
        for required in ("name", "dataset"):
            if required not in changes:
                raise ValueError(f"task key {required!r} is missing (or give 'base' = a preset)")
        return Task(**changes)
    return dataclasses.replace(base, **changes)


def load_task(name_or_path: str | Path) -> Task:
    """A preset by name (see `list_tasks()`) or a TOML file describing a Task."""
    text = str(name_or_path)
    if text in TASK_PRESETS:
        return TASK_PRESETS[text]
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ValueError(f"task file {text!r} does not exist")
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        if "task" in data and isinstance(data["task"], Mapping):
            data = data["task"]
        return task_from_mapping(data)
    raise ValueError(f"unknown task {text!r}; allowed: {', '.join(list_tasks())} or a .toml path")
