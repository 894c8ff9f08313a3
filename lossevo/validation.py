"""One wording for a refused value: ``<key> = <value> is not allowed; allowed: <what is>``.

Every edge that takes user values (task TOML, campaign and compare configs, loss and scheme
hyperparameters, the fraction of training done ``t``) names the bad value and what would be
accepted in these words, so a user meets one message shape and tests can match on it. A
prefix ("task key", "config key", "compare config key") says which document the key is from.
Imports nothing from lossevo: every part may use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check", "not_allowed"]


def not_allowed(key: str, value: Any, allowed: str, *, prefix: str = "",
                sep: str = " = ") -> ValueError:
    """The error for ``value`` at ``key``, returned so that call sites read
    ``raise not_allowed(...)`` (and type checkers see the raise). With a ``prefix`` the key is
    quoted after it (``task key 'budget.lr'``); without, it is written as given (``t``).

    >>> str(not_allowed("budget.lr", -1.0, "a finite float > 0", prefix="task key"))
    "task key 'budget.lr' = -1.0 is not allowed; allowed: a finite float > 0"
    """
    where = f"{prefix} {key!r}" if prefix else key
    return ValueError(f"{where}{sep}{value!r} is not allowed; allowed: {allowed}")


def check(ok: bool, key: str, value: Any, allowed: str, *, prefix: str = "") -> None:
    """Raise :func:`not_allowed` unless ``ok``."""
    if not ok:
        raise not_allowed(key, value, allowed, prefix=prefix)
