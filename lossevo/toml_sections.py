"""TOML tables onto frozen dataclasses: one mapper for task files, campaign and compare configs.

A table becomes the keyword arguments of one dataclass: it must be a table, each key must name
a field, and each value is converted by the caller's ``convert`` — task files turn strings
into their enums and take types from the preset being overridden; configs check a value
against its field's annotation (:func:`typed`), so that ``population = 6.5`` or a string where
a list belongs is named here rather than failing later as a TypeError. Errors name the table,
the key and what is allowed, after the document's prefix ("task key", "config key", ...).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from lossevo.validation import check, not_allowed

__all__ = ["table_values", "typed"]


def table_values(name: str, cls: type, data: Any, *, prefix: str,
                 convert: Callable[[dataclasses.Field, Any], Any] | None = None,
                 unknown: Callable[[str, list[str]], str] | None = None) -> dict[str, Any]:
    """The converted values of table ``name`` for dataclass ``cls``, by field name.

    ``convert(field, value)`` defaults to :func:`typed` on the field's annotation;
    ``unknown(key, fields)`` words the error for a key that names no field (default:
    ``unknown <prefix> '<name>.<key>'; allowed: <fields, sorted>``), for a document whose
    wording users already match on. The caller builds the object (``cls(**values)``, or
    ``dataclasses.replace`` of a base it overrides).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(data, Mapping):
        raise not_allowed(name, data, f"a table with keys {', '.join(fields)}", prefix=prefix)
    for key in data:
        if key not in fields:
            raise ValueError(unknown(key, list(fields)) if unknown is not None else
                             f"unknown {prefix} '{name}.{key}'; allowed: "
                             f"{', '.join(sorted(fields))}")
    if convert is None:
        return {k: typed(f"{name}.{k}", v, str(fields[k].type), prefix=prefix)
                for k, v in data.items()}
    return {k: convert(fields[k], v) for k, v in data.items()}


def typed(key: str, value: Any, annotation: str, *, prefix: str) -> Any:
    """``value`` checked against a field's annotation (as text: the modules that declare
    these dataclasses postpone annotations). TOML gives ints, floats, strings, booleans, lists
    and tables; an int stands for a float; other annotations pass the value through."""
    if annotation == "int":
        check(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer",
              prefix=prefix)
    elif annotation == "float":
        check(isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value), key, value, "a finite number", prefix=prefix)
        return float(value)
    elif annotation == "str":
        check(isinstance(value, str), key, value, "a string", prefix=prefix)
    elif annotation == "bool":
        check(isinstance(value, bool), key, value, "true or false", prefix=prefix)
    elif annotation.startswith("tuple[str"):
        check(isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
              key, value, "a list of strings", prefix=prefix)
        return tuple(value)
    elif annotation.startswith("tuple[float"):
        check(isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value), key, value, "a list of finite numbers", prefix=prefix)
        return tuple(float(v) for v in value)
    elif annotation.startswith("dict[str, float]"):
        check(isinstance(value, dict), key, value, "a table of numbers", prefix=prefix)
        return {k: typed(f"{key}.{k}", v, "float", prefix=prefix) for k, v in value.items()}
    return value
