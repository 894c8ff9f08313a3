"""Comparison config: TOML → tasks, contenders (plain data) and a backend, validated once.

Contenders travel to workers as plain dicts (see :class:`Contender`) and are rebuilt there:
built-in losses and schemes by name and parameters, evolved losses as expression text, so
nothing unpicklable ever crosses a process boundary. Whether a contender is tuned on
validation (``tune``, ``tune_evolved``) and early-stopped (``early_stop``) is part of that
plain data, hence of the key of every kept unit. Relative paths (evolved run directories,
exported .py files) resolve against the current working directory, the way users run
``experiments/`` configs from the repository root.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from lossevo.evaluation.tasks import Task, load_task
from lossevo.search.backends import BACKENDS
from lossevo.search.config import BackendConfig, read_toml
from lossevo.toml_sections import table_values
from lossevo.validation import not_allowed

__all__ = [
    "CompareConfig",
    "Contender",
    "builtin_names",
    "compare_config_from_mapping",
    "load_compare_config",
]

_TOP = ("seed", "instances", "tasks", "contenders", "baseline", "backend", "tune",
        "tune_evolved")
# Built-in contenders that are a loss with an option rather than a loss of their own.
_VARIANTS = {"ce_early_stop": {"loss": "ce", "early_stop": True}}
_PREFIX = "compare config key"


@dataclass(frozen=True)
class Contender:
    """One contender as plain data. ``loss``: a built-in loss name (the base loss of a scheme,
    ``None`` = cross-entropy, or MSE on regression); ``expression``: an evolved loss;
    ``scheme``: a built-in training scheme; ``evolved`` marks it as not a baseline;
    ``early_stop``: keep each model's best epoch by noisy-validation accuracy; ``tune``: choose
    its declared grid's point on validation first (lossevo.comparison.tuning)."""

    label: str
    loss: str | None = None
    loss_params: dict[str, Any] = field(default_factory=dict)
    scheme: str | None = None
    scheme_params: dict[str, Any] = field(default_factory=dict)
    expression: str | None = None
    evolved: bool = False
    source: str = ""
    early_stop: bool = False
    tune: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CompareConfig:
    tasks: tuple[Task, ...]
    contenders: tuple[Contender, ...]
    seed: int = 0
    instances: int = 8
    baseline: str | None = None
    backend: BackendConfig = field(default_factory=lambda: BackendConfig(chunk=1))
    tune: bool = False
    tune_evolved: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _fail(key: str, value: Any, allowed: str) -> NoReturn:
    raise not_allowed(key, value, allowed, prefix=_PREFIX)


def _builtins() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the built-in losses and schemes (imported on use: they pull in torch)."""
    from lossevo.baselines.losses import LOSSES
    from lossevo.baselines.schemes import SCHEMES

    return tuple(LOSSES), tuple(SCHEMES)


def builtin_names() -> tuple[str, ...]:
    """Every built-in contender name: the losses, their variants (``ce_early_stop``), then
    the training schemes — what ``"all"`` expands to."""
    losses, schemes = _builtins()
    return losses + tuple(_VARIANTS) + schemes


def _builtin(name: str) -> Contender:
    losses, _ = _builtins()
    if name in _VARIANTS:
        return Contender(name, **_VARIANTS[name])
    return Contender(name, loss=name) if name in losses else Contender(name, scheme=name)


def _check_loss(name: Any, where: str) -> str:
    losses, _ = _builtins()
    if name not in losses:
        _fail(where, name, "a built-in loss: " + ", ".join(losses))
    return name


def _params_label(name: str, params: dict[str, Any]) -> str:
    inner = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
    return f"{name}({inner})" if params else name


def _check_buildable(c: Contender, where: str) -> None:
    """Build once with the main process's modules so bad parameters fail before any training."""
    from lossevo.baselines.losses import build_loss
    from lossevo.baselines.schemes import build_scheme

    try:
        if c.loss is not None:
            build_loss(c.loss, **c.loss_params)
        if c.scheme is not None:
            build_scheme(c.scheme, **c.scheme_params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"compare config {where}: {exc}") from None


def _read_export(path: Path, where: str) -> str:
    """EXPRESSION of an exported module, read with ast (no import, no torch)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "EXPRESSION"):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise ValueError(f"compare config {where}: {str(path)!r} has no EXPRESSION string "
                     "(expected a file written by 'lossevo export')")


def _evolved(item: dict[str, Any], where: str, tasks: tuple[Task, ...]) -> list[Contender]:
    path = Path(str(item["evolved"])).expanduser()
    label = item.get("label")
    if path.suffix == ".py":
        if not path.is_file():
            _fail(f"{where}.evolved", str(path), "an existing exported .py file or run directory")
        if "top" in item:
            _fail(f"{where}.top", item["top"], "nothing: 'top' applies to run directories")
        return [Contender(label or path.stem, expression=_read_export(path, where),
                          evolved=True, source=str(path))]
    if not path.is_dir():
        _fail(f"{where}.evolved", str(path), "an existing run directory or exported .py file "
              "(relative paths resolve against the current directory)")
    top = item.get("top", 1)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        _fail(f"{where}.top", top, "an integer >= 1")
    from lossevo.evaluation.optimizers import ignores_loss_scale
    from lossevo.search.report import status
    from lossevo.symbolic.expression import canonical_key

    # the top N losses that train differently on every task compared: a run recorded before a
    # normalization was added can hold two texts of one (e.g. sqrt(a - b), 2·sqrt(b - a) + 1).
    # Binary and regression keys use only the rules every kind shares: any mix of kinds.
    kinds = {t.kind for t in tasks}
    kind = kinds.pop() if len(kinds) == 1 else "regression"
    decay = max(t.budget.weight_decay for t in tasks)
    scale_free = all(ignores_loss_scale(t.budget) for t in tasks)  # Adam, no weight decay
    records, keys = [], set()
    for rec in status(path)["hall_of_fame"]:
        key = canonical_key(rec["expression"], kind, decay, scale_free=scale_free)
        if key not in keys:
            keys.add(key)
            records.append(rec)
    if scale_free:  # and what algebra misses, measured (Adam ignores a positive scale)
        from lossevo.symbolic.equivalence import distinct

        records = [records[i] for i in distinct([r["expression"] for r in records],
                                                sorted({t.kind for t in tasks}))]
    hof = records[:top]
    if not hof:
        _fail(f"{where}.evolved", str(path), "a run directory with a non-empty hall of fame")
    base = label or path.name
    return [Contender(f"{base}#{i}", expression=r["expression"], evolved=True,
                      source=f"{path} rank {i}") for i, r in enumerate(hof, 1)]


def _table(item: dict[str, Any], where: str, n_expr: int,
           tasks: tuple[Task, ...]) -> list[Contender]:
    item = dict(item)
    early = item.pop("early_stop", False)
    if not isinstance(early, bool):
        _fail(f"{where}.early_stop", early, "true or false")
    suffix = "_early_stop" if early and "label" not in item else ""  # as ce_early_stop
    return [dataclasses.replace(c, early_stop=early, label=c.label + suffix)
            for c in _table_kind(item, where, n_expr, tasks)]


def _table_kind(item: dict[str, Any], where: str, n_expr: int,
                tasks: tuple[Task, ...]) -> list[Contender]:
    kinds = [k for k in ("scheme", "evolved", "expression") if k in item]
    if len(kinds) > 1:
        _fail(where, item, "a table with one of 'loss', 'scheme', 'evolved', 'expression'")
    label = item.get("label")
    if label is not None and not isinstance(label, str):
        _fail(f"{where}.label", label, "a string")
    if not kinds and "loss" not in item:
        _fail(where, item, "a table with one of 'loss', 'scheme', 'evolved', 'expression'")
    kind = kinds[0] if kinds else "loss"
    if kind == "evolved":
        extra = set(item) - {"evolved", "top", "label"}
        if extra:
            _fail(f"{where}.{sorted(extra)[0]}", item[sorted(extra)[0]],
                  "evolved, top, label, early_stop")
        return _evolved(item, where, tasks)
    if kind == "expression":
        extra = set(item) - {"expression", "label"}
        if extra:
            _fail(f"{where}.{sorted(extra)[0]}", item[sorted(extra)[0]],
                  "expression, label, early_stop")
        if not isinstance(item["expression"], str):
            _fail(f"{where}.expression", item["expression"], "a string")
        return [Contender(label or f"expression-{n_expr + 1}", expression=item["expression"],
                          evolved=True, source="config")]
    params = {k: v for k, v in item.items() if k not in ("loss", "scheme", "label",
                                                         "loss_params")}
    if kind == "loss":
        if "loss_params" in item:
            _fail(f"{where}.loss_params", item["loss_params"],
                  "parameters as keys of the table itself, e.g. {loss = 'gce', q = 0.5}")
        name = _check_loss(item["loss"], f"{where}.loss")
        c = Contender(label or _params_label(name, params), loss=name, loss_params=params)
    else:
        _, schemes = _builtins()
        if item["scheme"] not in schemes:
            _fail(f"{where}.scheme", item["scheme"], "a built-in scheme: " + ", ".join(schemes))
        loss = item.get("loss")
        if loss is not None:
            _check_loss(loss, f"{where}.loss")
        loss_params = item.get("loss_params", {})
        if not isinstance(loss_params, dict):
            _fail(f"{where}.loss_params", loss_params, "a table of the base loss's parameters")
        text = _params_label(item["scheme"], params)
        if loss is not None:
            text += "+" + _params_label(loss, loss_params)
        c = Contender(label or text, loss=loss, loss_params=dict(loss_params),
                      scheme=item["scheme"], scheme_params=params)
    _check_buildable(c, where)
    return [c]


def _contenders(items: Any, tasks: tuple[Task, ...]) -> tuple[Contender, ...]:
    if not isinstance(items, list) or not items:
        _fail("contenders", items, "a non-empty list of names ('gce', 'sam', 'all') or tables")
    names = builtin_names()
    out: list[Contender] = []
    for i, item in enumerate(items):
        where = f"contenders[{i}]"
        if isinstance(item, str):
            if item == "all":
                out += [_builtin(n) for n in names]
            elif item in names:
                out.append(_builtin(item))
            else:
                _fail(where, item, "all, " + ", ".join(names) + ", or a table")
        elif isinstance(item, dict):
            out += _table(item, where, sum(c.label.startswith("expression-") for c in out),
                          tasks)
        else:
            _fail(where, item, "a name or a table")
    unique: dict[str, Contender] = {}
    for c in out:
        if c.label in unique and unique[c.label] != c:
            _fail("contenders", c.label, "distinct labels (give tables a 'label')")
        unique.setdefault(c.label, c)  # an exact repeat (e.g. 'all' and 'gce') runs once
    return tuple(unique.values())


def _task(item: Any, where: str) -> Task:
    if isinstance(item, str):
        return load_task(item)
    if not isinstance(item, dict) or "preset" not in item:
        _fail(where, item, "a preset name or a table with 'preset' and overrides")
    data = dict(item)
    task = load_task(str(data.pop("preset")))
    return task.with_overrides(**data) if data else task


def _backend(data: Any) -> BackendConfig:
    if data is None:
        return BackendConfig(chunk=1)
    values = table_values("backend", BackendConfig, data, prefix=_PREFIX)
    if values.get("name", "process") not in BACKENDS:
        _fail("backend.name", values["name"], ", ".join(BACKENDS))
    try:
        return BackendConfig(**{"chunk": 1, **values})
    except TypeError as exc:
        raise ValueError(f"compare config table 'backend': {exc}") from None


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        _fail(key, value, "true or false")
    return value


def _int(data: dict[str, Any], key: str, default: int, low: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(key, value, f"an integer >= {low}")
    return value


def compare_config_from_mapping(data: dict[str, Any]) -> CompareConfig:
    """Validate a parsed TOML document (errors name the key, the value and what is allowed)."""
    for key in data:
        if key not in _TOP:
            _fail(key, data[key], "keys " + ", ".join(_TOP))
    for key in ("tasks", "contenders"):
        if key not in data:
            raise ValueError(f"compare config key {key!r} is missing")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        _fail("tasks", data["tasks"], "a non-empty list of preset names or tables")
    tasks = tuple(_task(t, f"tasks[{i}]") for i, t in enumerate(data["tasks"]))
    names = [t.name for t in tasks]
    for name in names:
        if names.count(name) > 1:
            _fail("tasks", name, "distinct task names (give overridden tasks a 'name')")
    tune, tune_evolved = _bool(data, "tune"), _bool(data, "tune_evolved")
    if tune_evolved and not tune:
        _fail("tune_evolved", True, "false unless tune = true (tuning only the evolved "
              "losses would give them a budget the baselines do not get)")
    contenders = tuple(dataclasses.replace(c, tune=tune_evolved if c.evolved else tune)
                       for c in _contenders(data["contenders"], tasks))
    baseline = data.get("baseline")
    if baseline is not None:
        labels = [c.label for c in contenders if not c.evolved]
        if baseline not in labels:
            _fail("baseline", baseline, "a non-evolved contender label: " + ", ".join(labels))
    return CompareConfig(tasks=tasks, contenders=contenders, seed=_int(data, "seed", 0, 0),
                         instances=_int(data, "instances", 8, 1), baseline=baseline,
                         backend=_backend(data.get("backend")), tune=tune,
                         tune_evolved=tune_evolved, raw=data)


def load_compare_config(path: str | Path, **overrides: Any) -> CompareConfig:
    """Read a comparison TOML file. ``overrides``: backend ``name``/``workers``/``scheduler``
    and ``instances`` (None = keep the file's)."""
    data = read_toml(path, "compare config file")
    backend = dict(data.get("backend", {})) if isinstance(data.get("backend"), dict) else None
    for key in ("name", "workers", "scheduler"):
        if overrides.get(key) is not None:
            backend = {**(backend or {}), key: overrides[key]}
    if backend is not None:
        data["backend"] = backend
    if overrides.get("instances") is not None:
        data["instances"] = overrides["instances"]
    return compare_config_from_mapping(data)
